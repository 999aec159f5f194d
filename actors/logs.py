"""Logging: structlog, one JSON object per line (or readable console lines on a TTY).

The standard logging of libraries (requests, urllib3, peewee, pykka) is routed through
the same processors, and every line passes a filter that blanks known secrets, so a
token never reaches a log even if some library prints a header.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import date, datetime

import structlog

_secrets: set[str] = set()
_lock = threading.Lock()


def add_secret(value: str | None) -> None:
    """Never print `value` (a token) in any log line from now on."""
    if value and len(value) >= 8:
        with _lock:
            _secrets.add(value)


def _redact(_logger, _method, event_dict: dict) -> dict:
    with _lock:
        secrets = tuple(_secrets)
    if not secrets:
        return event_dict
    for key, value in event_dict.items():
        if isinstance(value, str) and any(s in value for s in secrets):
            for s in secrets:
                value = value.replace(s, "***")
            event_dict[key] = value
    return event_dict


def _json_default(value):
    """Datetimes as ISO-8601; anything else unknown as its text."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _dumps(event: dict, **kw) -> str:
    return json.dumps(event, default=_json_default, **{k: v for k, v in kw.items()
                                                       if k != "default"})


def configure(fmt: str | None = None, level: str = "INFO", stream=None) -> str:
    """Set up structlog and the standard library; returns the format chosen.

    `fmt` is "json" or "console"; by default JSON unless the stream is a terminal.
    """
    stream = stream or sys.stderr
    if fmt is None:
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    renderer = (structlog.processors.JSONRenderer(serializer=_dumps) if fmt == "json"
                else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        # a line below the level is dropped before any processor runs
        processors=[structlog.stdlib.filter_by_level, *shared,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer]))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("urllib3", "peewee", "pykka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    logging.captureWarnings(True)  # Python's warnings become log lines too
    return fmt
