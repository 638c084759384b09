"""GPU compute through the endpoint's wgpu (``ferry:host/gpu``): buffers,
WGSL kernels and dispatches. A function that uses it is built with the gpu
import and runs where an endpoint offers a GPU (submit with
``requires=["gpu"]``); lavapipe counts, on a machine without one."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .blobs import NotInComponent

#: The usage a buffer gets unless told: read and written by kernels, and
#: copied both ways.
DEFAULT_USAGE = ("storage", "copy-src", "copy-dst")


class GpuError(RuntimeError):
    """What the host's GPU refused: no adapter, a WGSL compilation error, a
    validation error, out of memory or range, a lost device."""


def _host() -> Any:
    try:
        from wit_world.imports import gpu as host
    except ImportError:
        raise NotInComponent("ferry_guest.gpu works inside a ferry function built with it only") from None
    return host


def _call(f: Any, *args: Any) -> Any:
    host = _host()
    try:
        return f(*args)
    except host.Err as e:  # type: ignore[attr-defined]
        case = type(e.value).__name__.removeprefix("Error_")
        detail = getattr(e.value, "value", e.value)
        if hasattr(detail, "message"):
            detail = f"{detail.message} (line {detail.line}, column {detail.column})"
        raise GpuError(f"{case}: {detail}") from None


def info() -> dict[str, Any] | None:
    """The adapter (name, backend, device type, driver), or None."""
    a = _host().info()
    if a is None:
        return None
    return {"name": a.name, "backend": a.backend, "device_type": a.device_type.name.lower(), "driver": a.driver}


class Buffer:
    def __init__(self, raw: Any) -> None:
        self.raw = raw

    @property
    def size(self) -> int:
        return self.raw.size()

    def write(self, data: bytes, offset: int = 0) -> None:
        _call(self.raw.write, offset, bytes(data))

    def read(self, length: int | None = None, offset: int = 0) -> bytes:
        return _call(self.raw.read, offset, self.size - offset if length is None else length)


def buffer(size: int, usage: Iterable[str] = DEFAULT_USAGE) -> Buffer:
    """A buffer of ``size`` bytes (``usage``: storage, uniform, copy-src,
    copy-dst, map-read, map-write)."""
    host = _host()
    flags = host.BufferUsage(0)
    for u in usage:
        flags |= host.BufferUsage[u.upper().replace("-", "_")]
    return Buffer(_call(host.create_buffer, size, flags))


def kernel(wgsl: str, entry_point: str = "main") -> Any:
    """A compute kernel from WGSL source."""
    return _call(_host().create_kernel, wgsl, entry_point)


def dispatch(kernel: Any, bindings: dict[int, Buffer], workgroups: tuple[int, int, int]) -> None:
    """Runs ``kernel`` with ``bindings`` (group 0, by binding number)."""
    host = _host()
    binds = [host.Binding(binding=n, buffer=b.raw) for n, b in sorted(bindings.items())]
    _call(host.dispatch, kernel, binds, workgroups)


def wait() -> None:
    """Waits for the work submitted so far."""
    _call(_host().wait)
