"""Blobs by reference (``ferry:host/blobs``): a function takes a
:class:`Blob` and reads it from its endpoint's cache, or writes one and
returns it, so that large data never travels in arguments or results."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

#: Bytes a read asks the host for at once.
CHUNK = 1 << 20


class NotInComponent(RuntimeError):
    """A host import used outside a ferry component."""


@dataclasses.dataclass(frozen=True)
class Blob:
    """A blob: the blake3 of its bytes, and its size."""

    hash: str
    size: int


def _host() -> Any:
    try:
        from wit_world.imports import blobs as host
    except ImportError:
        raise NotInComponent("ferry_guest.blobs works inside a ferry function only") from None
    return host


def _fail(e: Exception) -> Exception:
    value = getattr(e, "value", e)
    return OSError(f"blob: {value}")


def chunks(blob: Blob, size: int = CHUNK) -> Iterator[bytes]:
    """The blob's bytes, ``size`` at a time."""
    host = _host()
    try:
        reader = host.open(host.BlobRef(hash=blob.hash, size=blob.size))
        with reader:
            while reader.remaining() > 0:
                data = reader.read(size)
                if not data:
                    break
                yield data
    except host.Err as e:  # type: ignore[attr-defined]
        raise _fail(e) from None


def read(blob: Blob) -> bytes:
    """The whole blob."""
    return b"".join(chunks(blob))


def write(data: bytes | Iterable[bytes]) -> Blob:
    """Writes bytes (or pieces of them) as a new blob and returns it."""
    host = _host()
    pieces = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
    try:
        writer = host.create()
        for piece in pieces:
            view = memoryview(piece).cast("B")
            for i in range(0, len(view), CHUNK):
                writer.write(bytes(view[i : i + CHUNK]))
        ref = host.finish(writer)
    except host.Err as e:  # type: ignore[attr-defined]
        raise _fail(e) from None
    return Blob(ref.hash, ref.size)
