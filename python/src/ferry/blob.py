"""Blobs: large data that goes to a function by reference.

A blob is named by the blake3 of its bytes. A function takes it as a
``blob-ref`` and reads it from its endpoint's cache, so that a gigabyte
array is uploaded once and never travels inside a task's arguments. Uploads
and downloads stream 1 MiB at a time: memory stays flat whatever the size.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Union

import blake3
import grpc

from ._errors import ArgumentError, FerryError
from .v1 import ferry_pb2 as pb

if TYPE_CHECKING:
    from .client import Client

CHUNK = 1 << 20

Source = Union[str, os.PathLike, bytes, bytearray, memoryview, IO[bytes]]


@dataclasses.dataclass(frozen=True)
class Blob:
    """A blob on the service; as an argument it is the function's
    ``blob-ref`` (``{hash, size}``)."""

    hash: str
    size: int

    @staticmethod
    def from_file(path: str | os.PathLike[str], client: Client | None = None) -> Blob:
        """Uploads a file (streamed) and returns its blob."""
        from . import default_client

        return upload(client or default_client(), Path(path))

    @staticmethod
    def from_buffer(data: bytes | bytearray | memoryview, client: Client | None = None) -> Blob:
        """Uploads any buffer (an ``array.array``, a ``memoryview`` of a
        larger one, bytes) without copying it whole."""
        from . import default_client

        return upload(client or default_client(), memoryview(data))

    def read(self, client: Client | None = None) -> bytes:
        """The blob's bytes."""
        from . import default_client

        return download(client or default_client(), self, None)

    def save(self, path: str | os.PathLike[str], client: Client | None = None) -> Path:
        """Writes the blob to ``path``, checked against its hash."""
        from . import default_client

        return download(client or default_client(), self, path)


def _pieces(source: Source) -> Iterator[memoryview]:
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            yield from _pieces(f)
        return
    if isinstance(source, (bytes, bytearray, memoryview)):
        view = memoryview(source).cast("B")
        for i in range(0, len(view), CHUNK):
            yield view[i : i + CHUNK]
        return
    if isinstance(source, io.IOBase) or hasattr(source, "readinto"):
        buf = bytearray(CHUNK)
        while n := source.readinto(buf):  # type: ignore[union-attr]
            yield memoryview(buf)[:n]
        return
    raise ArgumentError(
        f"cannot upload a {type(source).__name__}: give a path, bytes, a memoryview or a binary file"
    )


def _rewind(source: Source) -> None:
    if hasattr(source, "seek"):
        source.seek(0)  # type: ignore[union-attr]


def upload(client: Client, source: Source) -> Blob:
    """One pass hashes, and a second sends only if the service lacks it."""
    hasher, size = blake3.blake3(max_threads=blake3.blake3.AUTO), 0
    for piece in _pieces(source):
        hasher.update(piece)
        size += len(piece)
    blob = Blob(hasher.hexdigest(), size)
    info = client._call(client._blobs.Stat, pb.StatBlobRequest(hash=blob.hash), "upload")
    if info.present and info.size == size:
        return blob
    _rewind(source)

    def chunks() -> Iterator[pb.BlobChunk]:
        first = True
        for piece in _pieces(source):
            if first:
                yield pb.BlobChunk(hash=blob.hash, size=size, data=bytes(piece))
                first = False
            else:
                yield pb.BlobChunk(data=bytes(piece))
        if first:
            yield pb.BlobChunk(hash=blob.hash, size=0)

    try:
        r = client._blobs.Put(chunks(), metadata=client._md)
    except grpc.RpcError as e:
        from .client import _error

        raise _error(e, "upload") from None
    return Blob(r.hash, r.size)


def _blob(value: Any) -> Blob:
    if isinstance(value, Blob):
        return value
    if isinstance(value, dict) and "hash" in value and "size" in value:
        return Blob(value["hash"], int(value["size"]))
    if isinstance(value, str):
        return Blob(value, -1)
    raise ArgumentError(f"not a blob: {value!r}")


def download(client: Client, blob: Any, path: str | os.PathLike[str] | None) -> Any:
    """The blob's bytes, or written to ``path`` (appearing only once whole
    and verified)."""
    from .client import _error

    blob = _blob(blob)
    hasher = blake3.blake3()
    out = bytearray() if path is None else None
    part = Path(str(path) + ".part") if path is not None else None
    try:
        stream = client._blobs.Get(pb.GetBlobRequest(hash=blob.hash), metadata=client._md)
        with open(part, "wb") if part is not None else _Null() as f:
            for chunk in stream:
                hasher.update(chunk.data)
                if out is not None:
                    out += chunk.data
                else:
                    f.write(chunk.data)
    except grpc.RpcError as e:
        if part is not None:
            part.unlink(missing_ok=True)
        raise _error(e, f"download {blob.hash[:12]}") from None
    if hasher.hexdigest() != blob.hash:
        if part is not None:
            part.unlink(missing_ok=True)
        raise FerryError(f"blob {blob.hash[:12]} arrived damaged: its bytes do not hash to its name")
    if part is not None:
        part.replace(path)  # type: ignore[arg-type]
        return Path(path)  # type: ignore[arg-type]
    return bytes(out)  # type: ignore[arg-type]


class _Null:
    def __enter__(self) -> _Null:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def write(self, data: bytes) -> None:
        return None
