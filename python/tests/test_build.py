"""ferry build: Python modules into components, each type round-tripped
through a real fabric, and unsupported hints refused by name."""

from __future__ import annotations

import hashlib
import os
import textwrap
from pathlib import Path

import pytest

import ferry

HERE = Path(__file__).resolve().parent


def native(name: str):
    """modules/app.py imported here, in CPython, for comparison."""
    return getattr(ferry.builder._import(HERE / "modules" / "app.py", "app_native"), name)


def test_the_wit_is_generated_from_hints(app_module) -> None:
    wit = app_module.wit
    assert "export %pi: func(%num-points: s64, %seed: s64) -> result<f64, string>;" in wit
    assert "record %point {\n        %x: f64,\n        %y-coord: f64,\n    }" in wit
    assert "%end: option<point>" in wit
    assert wit.index("record %point") < wit.index("record %segment"), "a record comes after what it holds"
    assert "export %checksum: func(%blob: blob-ref) -> result<string, string>;" in wit
    assert "export %nothing: func() -> result<_, string>;" in wit
    assert app_module.path.stat().st_size > 1_000_000


@pytest.mark.parametrize(
    "export, value",
    [
        ("echo_int", -(1 << 62)),
        ("echo_float", 2.5e-300),
        ("echo_str", "ünïcode ✓"),
        ("echo_bytes", bytes(range(256))),
        ("echo_bool", True),
        ("echo_list", [[1, 2], [], [3]]),
        ("echo_tuple", (7, "seven", 7.5)),
        ("echo_option", None),
        ("echo_option", "some"),
        ("echo_record", {"start": {"x": 1.0, "y_coord": 2.0}, "end": None, "label": "s"}),
        ("echo_record", {"start": {"x": 1.0, "y_coord": 2.0}, "end": {"x": 3.0, "y_coord": 4.0}, "label": ""}),
        ("echo_records", [{"x": 0.5, "y_coord": -0.5}]),
    ],
)
def test_each_type_round_trips(client: ferry.Client, app: ferry.Function, export: str, value) -> None:
    assert client.submit("local", app[export.replace("_", "-")], value).result(120) == value


def test_dataclasses_go_in_and_come_back(client: ferry.Client, app: ferry.Function) -> None:
    Point = native("Point")
    assert client.submit("local", app.shift, Point(1.0, 2.0), 0.5).result(120) == {"x": 1.5, "y_coord": 2.0}
    assert client.submit("local", app.nothing).result(120) is None


def test_an_exception_is_the_callers(client: ferry.Client, app: ferry.Function) -> None:
    with pytest.raises(ferry.RemoteError, match="ValueError: no such thing") as e:
        client.submit("local", app.fail, "no such thing").result(120)
    assert "in fail" in e.value.message


def test_pi_matches_native_cpython(client: ferry.Client, app: ferry.Function) -> None:
    """The same code and the same seeded generator give the same value."""
    for n, seed in [(10_000, 1), (100_000, 42)]:
        assert client.submit("local", app.pi, n, seed).result(120) == native("pi")(n, seed)


def test_blobs_in_a_python_function(client: ferry.Client, app: ferry.Function) -> None:
    data = bytes(range(256)) * 20_000
    blob = ferry.Blob.from_buffer(data, client)
    assert client.submit("local", app.checksum, blob).result(120) == hashlib.sha256(data).hexdigest()
    made = client.submit("local", app.make_blob, 300_000).result(120)
    assert made["size"] == 300_000
    assert client.download(made) == bytes(i % 251 for i in range(300_000))


def write(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "bad.py"
    path.write_text(textwrap.dedent(source))
    return path


@pytest.mark.parametrize(
    "source, message",
    [
        ("def f(x: dict) -> int:\n    return 1\n", "function `f`: parameter `x` has type dict"),
        ("def g(x: int, y) -> int:\n    return 1\n", "function `g`: parameter `y` has no type hint"),
        ("def h(x: int):\n    return 1\n", "function `h` has no return type hint"),
        ("from typing import Any\ndef k(x: list) -> int:\n    return 1\n", "function `k`: parameter `x` has type list"),
        ("def m(*xs: int) -> int:\n    return 1\n", "function `m`: parameter `xs`: \\*args"),
        ("def n(x: int | str) -> int:\n    return 1\n", "function `n`: parameter `x` has type"),
        ("import numpy as np\ndef p(x: int) -> int:\n    return 1\n", "numpy, a native extension.*no WASI builds"),
        ("def q(:\n    pass\n", "bad.py, line 1: invalid syntax"),
    ],
)
def test_unsupported_hints_are_refused_by_name(tmp_path: Path, source: str, message: str) -> None:
    with pytest.raises(ferry.BuildError, match=message):
        ferry.build(write(tmp_path, source))


def test_the_stubs_are_generated_from_the_proto(tmp_path: Path) -> None:
    """ferry/v1 is what grpcio-tools makes of proto/ferry/v1/ferry.proto."""
    from grpc_tools import protoc

    root = HERE.parents[1]
    args = ["protoc", f"-I{root / 'proto'}", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}", "ferry/v1/ferry.proto"]
    assert protoc.main(args) == 0
    for name in ("ferry_pb2.py", "ferry_pb2.pyi", "ferry_pb2_grpc.py"):
        fresh = (tmp_path / "ferry" / "v1" / name).read_text()
        ours = (root / "python" / "src" / "ferry" / "v1" / name).read_text()
        assert fresh == ours, f"python/src/ferry/v1/{name} is stale: regenerate it (see python/README.md)"


def test_gpu_compute_from_python(client: ferry.Client, app: ferry.Function) -> None:
    """A WGSL kernel dispatched from a Python function (lavapipe in CI)."""
    try:
        f = client.submit("local", app.double_on_gpu, list(range(1000)), options={"requires": ["gpu"]})
    except ferry.Refused as e:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"endpoint local has no GPU adapter: {e}")
    doubled, adapter = f.result(120)
    assert doubled == [2 * i for i in range(1000)]
    assert adapter


def test_a_pure_python_package_from_pypi_is_bundled(client: ferry.Client, app: ferry.Function) -> None:
    from packaging.version import Version

    versions = ["1.10.0", "1.9.3", "1.10.0rc1", "0.99"]
    assert client.submit("local", app.newest, versions).result(120) == str(max(versions, key=Version)) == "1.10.0"


def test_a_record_named_with_a_digit(client: ferry.Client, app: ferry.Function) -> None:
    got = client.submit("local", app.norm, {"x": 3.0, "y": 0.0, "z": 4.0}).result(120)
    assert got == {"x": 0.6, "y": 0.0, "z": 0.8}
