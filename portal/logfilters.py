"""The log formatter of every process (``LOGGING`` in settings): a credential written into a
URL (``scheme://user:password@``) never reaches a log line, tracebacks included."""

import logging

from portal.urlsecrets import redact_embedded_credentials


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact_embedded_credentials(super().format(record))
