"""Frames from the endpoint's cameras (``ferry:host/camera``). A function
that uses it is built with the camera import, and runs only where an
endpoint grants it a camera (submit with ``requires=["camera"]``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from .blobs import NotInComponent


@dataclasses.dataclass(frozen=True)
class Frame:
    width: int
    height: int
    #: ``rgb8``, ``rgba8``, ``gray8``, ``yuyv`` or ``mjpeg``
    format: str
    timestamp_ns: int
    sequence: int
    data: bytes


def _host() -> Any:
    try:
        from wit_world.imports import camera as host
    except ImportError:
        raise NotInComponent(
            "ferry_guest.camera works inside a ferry function built with it only"
        ) from None
    return host


def devices() -> list[dict[str, Any]]:
    """The cameras granted to this function, with their modes."""
    host = _host()
    return [
        {
            "name": d.name,
            "backend": d.backend,
            "modes": [(m.width, m.height, m.format.name.lower(), m.fps) for m in d.modes],
        }
        for d in host.list()
    ]


def capture(
    device: str | None = None,
    width: int | None = None,
    height: int | None = None,
    format: str | None = None,
) -> Frame:
    """One frame from ``device`` (any granted camera, if None)."""
    host = _host()
    fmt = host.PixelFormat[format.upper()] if format else None
    try:
        f = host.capture(
            host.CaptureOptions(device=device, width=width, height=height, format=fmt, newer_than=None)
        )
    except host.Err as e:  # type: ignore[attr-defined]
        raise OSError(f"camera: {e.value}") from None
    return Frame(f.width, f.height, f.format.name.lower(), f.timestamp_ns, f.sequence, f.data)
