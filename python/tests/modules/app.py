"""A Python function module with every type ferry build supports."""

import random
from dataclasses import dataclass
from typing import Optional

from ferry_guest import Blob, blobs, log


@dataclass
class Point:
    x: float
    y_coord: float


@dataclass
class Segment:
    start: Point
    end: Optional[Point]
    label: str


def pi(num_points: int, seed: int) -> float:
    """The seed's pi, by Monte Carlo, with Python's own seeded generator."""
    rng = random.Random(seed)
    inside = 0
    for _ in range(num_points):
        x, y = rng.random(), rng.random()
        if x * x + y * y <= 1.0:
            inside += 1
    return 4.0 * inside / num_points


def echo_int(v: int) -> int:
    return v


def echo_float(v: float) -> float:
    return v


def echo_str(v: str) -> str:
    return v


def echo_bytes(v: bytes) -> bytes:
    return v


def echo_bool(v: bool) -> bool:
    return v


def echo_list(v: list[list[int]]) -> list[list[int]]:
    return v


def echo_tuple(v: tuple[int, str, float]) -> tuple[int, str, float]:
    return v


def echo_option(v: Optional[str]) -> Optional[str]:
    return v


def echo_record(v: Segment) -> Segment:
    assert isinstance(v, Segment) and isinstance(v.start, Point), "records arrive as the module's dataclasses"
    return v


def echo_records(v: list[Point]) -> list[Point]:
    return v


def shift(p: Point, dx: float) -> Point:
    log.info("shifting", dx=dx)
    return Point(p.x + dx, p.y_coord)


def fail(message: str) -> int:
    raise ValueError(message)


def checksum(blob: Blob) -> str:
    """sha256 of a blob, read by reference from the endpoint's cache."""
    import hashlib

    h = hashlib.sha256()
    for chunk in blobs.chunks(blob):
        h.update(chunk)
    return h.hexdigest()


def make_blob(size: int) -> Blob:
    return blobs.write(bytes(i % 251 for i in range(size)))


def nothing() -> None:
    return None


DOUBLE = """
@group(0) @binding(0) var<storage, read_write> xs: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < arrayLength(&xs)) {
        xs[id.x] = xs[id.x] * 2u;
    }
}
"""


def double_on_gpu(xs: list[int]) -> tuple[list[int], str]:
    """Doubles each number in a WGSL kernel on the endpoint's GPU."""
    import array

    from ferry_guest import gpu

    data = array.array("I", xs).tobytes()
    buf = gpu.buffer(len(data))
    buf.write(data)
    gpu.dispatch(gpu.kernel(DOUBLE), {0: buf}, ((len(xs) + 63) // 64, 1, 1))
    gpu.wait()
    out = array.array("I")
    out.frombytes(buf.read())
    return list(out), gpu.info()["name"]


def newest(versions: list[str]) -> str:
    """A pure-Python package from PyPI (packaging, which pytest installs),
    bundled from where ferry build ran."""
    from packaging.version import Version

    return str(max(versions, key=Version))


@dataclass
class Point3D:
    x: float
    y: float
    z: float


def norm(p: Point3D) -> Point3D:
    """A record whose name has a digit: named the same by the build and the glue."""
    n = (p.x * p.x + p.y * p.y + p.z * p.z) ** 0.5
    return Point3D(p.x / n, p.y / n, p.z / n)
