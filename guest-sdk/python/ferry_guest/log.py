"""Structured log lines and progress (``ferry:host/log``)."""

from __future__ import annotations

import sys
from typing import Any

_LEVELS = ("trace", "debug", "info", "warn", "error")


def _emit(level: str, message: str, fields: dict[str, Any]) -> None:
    try:
        from wit_world.imports import log as host
    except ImportError:
        extra = "".join(f" {k}={v}" for k, v in fields.items())
        print(f"{level.upper()} {message}{extra}", file=sys.stderr)
        return
    host.emit(host.Level[level.upper()], message, [(k, str(v)) for k, v in fields.items()])


def trace(message: str, **fields: Any) -> None:
    _emit("trace", message, fields)


def debug(message: str, **fields: Any) -> None:
    _emit("debug", message, fields)


def info(message: str, **fields: Any) -> None:
    _emit("info", message, fields)


def warn(message: str, **fields: Any) -> None:
    _emit("warn", message, fields)


def error(message: str, **fields: Any) -> None:
    _emit("error", message, fields)


def progress(done: int, total: int, message: str = "") -> None:
    """The current task's progress: ``done`` units out of ``total``."""
    try:
        from wit_world.imports import log as host
    except ImportError:
        print(f"PROGRESS {done}/{total} {message}", file=sys.stderr)
        return
    host.progress(done, total, message)
