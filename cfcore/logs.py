"""Structured log lines for ``cf serve``: JSON lines (``--log-format json``) or key=value.

Every line has a UTC timestamp (``ts``, ISO 8601), ``level``, ``logger`` and ``msg``; an exception
adds ``exc`` (type and message, the traceback only at debug level). Personal data never reaches
a log: the core logs ids, never names or numbers, and the access log's query parameters that may
carry any (``t``, ``customer_number`` …) are masked before formatting (``cfcore.web``).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

FORMATS = ("text", "json", "kv")


def _fields(record: logging.LogRecord) -> dict[str, str]:
    out = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": record.levelname,
        "logger": record.name,
        "msg": record.getMessage(),
    }
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        out["exc"] = f"{type(exc).__name__}: {exc}"
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), ensure_ascii=False, sort_keys=False)


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = []
        for k, v in _fields(record).items():
            text = v if v and not any(c in v for c in ' "=\n\t') else json.dumps(v, ensure_ascii=False)
            parts.append(f"{k}={text}")
        return " ".join(parts)


def configure(fmt: str, level: int) -> None:
    """Send every log record (the core's, uvicorn's) to stderr in ``fmt``."""
    if fmt == "text":
        formatter: logging.Formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    elif fmt == "json":
        formatter = JsonFormatter()
    else:
        formatter = KeyValueFormatter()
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
        lg.setLevel(level)
