"""Log output of a node: one event per line, text or JSON, with request ids.

`configure` installs the root handler (``raftcoord serve --log-format``). Code that
serves a request runs `with request_context(id):` and every line logged inside it,
by any module, carries ``request_id`` (trio tasks started inside inherit it, as
context variables do).

Text lines: ``TIME LEVEL LOGGER [req=ID]: MESSAGE``. JSON lines: an object with
``ts``, ``level``, ``logger``, ``message``, ``request_id`` when set, any ``extra``
fields given to the log call, and ``exc`` for a traceback.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import time
from typing import Any, Iterator, Optional

_request_id: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar(
    "raftcoord_request_id", default=None)

# Attributes every LogRecord has; anything else came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "request_id"}

FORMATS = ("text", "json")


@contextlib.contextmanager
def request_context(request_id: str) -> Iterator[None]:
    """Tag every log line inside with `request_id`."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


def current_request_id() -> Optional[str]:
    return _request_id.get()


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True


class TextFormatter(logging.Formatter):
    """Human-readable single lines (newlines in messages are escaped)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(req)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        record.req = f" [req={request_id}]" if request_id else ""
        return super().format(record).replace("\n", "\\n")


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            event["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key != "req" and key not in event:
                event[key] = value
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str)


def handler(log_format: str = "text", stream: Any = None) -> logging.Handler:
    """A handler writing `log_format` lines (to stderr by default)."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}, got {log_format!r}")
    out = logging.StreamHandler(stream)
    out.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    out.addFilter(_RequestIdFilter())
    return out


def configure(level: str = "info", log_format: str = "text") -> None:
    """Send every log line of the process to stderr in `log_format`."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler(log_format))
    root.setLevel(level.upper())
