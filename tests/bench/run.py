import importlib
import os
import pkgutil
import sys
import traceback
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("BACKLINE_TESTING", "1")
# the benchmarks' servers, fleets and repositories are on loopback and under the temp folder
os.environ.setdefault(
    "BACKLINE_OUTBOUND_ALLOW", f"127.0.0.0/8,::1/128,file:{__import__('tempfile').gettempdir()}"
)

import django  # noqa: E402

django.setup()

from tests.bench.harness import Report, merge_markdown, render_markdown  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def main(argv):
    wanted = {a.replace("-", "_") for a in argv}  # ARGS=backstage-compare
    names = sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if m.name.startswith("bench_")
    )
    if wanted:
        names = [n for n in names if n in wanted]
    report = Report()
    for name in names:
        print(f"== {name}", flush=True)
        report.section = name
        try:
            importlib.import_module(f"tests.bench.bench_{name}").run(report)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other sections
            traceback.print_exc()
            report.errors.append(f"{name}: {exc.__class__.__name__}: {exc}")
    md = render_markdown(report, names)
    path = ROOT / "BENCHMARKS.md"
    path.write_text(merge_markdown(path.read_text() if path.exists() else "", md))
    print(md)
    return 1 if report.failed or report.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
