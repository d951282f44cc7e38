# Backline container image: web (gunicorn), Celery worker and beat all run from this image
# (see docker-compose.yml). Configuration comes from environment variables only.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=portal.settings \
    BACKLINE_VAR_DIR=/app/var \
    STATIC_ROOT=/app/staticfiles \
    PORT=8000

# git: pipelines check out service repositories; ca-certificates: HTTPS to git hosts and APIs.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates openssh-client \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first (pyproject.toml declares no packages: `pip install .` installs only the
# dependencies), so code changes do not reinstall them.
COPY pyproject.toml ./
RUN pip install .

COPY . .

RUN useradd --system --create-home --uid 10001 backline \
    && python manage.py collectstatic --noinput --verbosity 0 \
    && mkdir -p /app/var \
    && chown -R backline:backline /app/var

USER backline
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"8000\")}/healthz', timeout=4)"

CMD ["sh", "-c", "exec gunicorn portal.wsgi --bind 0.0.0.0:${PORT} --workers ${WEB_WORKERS:-3} --threads ${WEB_THREADS:-4} --no-control-socket --error-logfile - --access-logfile -"]
