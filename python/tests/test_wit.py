"""Signatures and values, without a fabric."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest

import ferry
from ferry import _wit


def test_signatures_parse_with_nested_and_structural_types() -> None:
    s = _wit.Signature.parse(
        "func(p: record { x: f64, y-coord: f64 }, t: tuple<s64, list<string>>) -> result<list<s64>, string>"
    )
    assert s.params == (("p", "record { x: f64, y-coord: f64 }"), ("t", "tuple<s64, list<string>>"))
    assert s.result == "result<list<s64>, string>"
    assert _wit.Signature.parse("func()") == _wit.Signature((), None)
    with pytest.raises(ValueError):
        _wit.Signature.parse("add")


def test_arguments_bind_by_position_and_keyword() -> None:
    s = _wit.Signature.parse("func(num-points: u64, seed: u64) -> f64")
    assert _wit.bind("pi", s, (10,), {"seed": 2}) == [10, 2]
    assert _wit.bind("pi", s, (), {"num_points": 10, "seed": 2}) == [10, 2]
    with pytest.raises(ferry.ArgumentError, match="no parameter colour"):
        _wit.bind("pi", s, (1, 2), {"colour": 3})
    with pytest.raises(ferry.ArgumentError, match="takes 2 arguments"):
        _wit.bind("pi", s, (1, 2, 3), {})
    with pytest.raises(TypeError, match=r"parameter `seed` expects an int \(u64\), got bool True"):
        _wit.bind("pi", s, (1, True), {})


def test_values_encode_as_the_service_reads_them() -> None:
    @dataclasses.dataclass
    class Pair:
        left_side: int
        right: int

    data = _wit.encode([Pair(1, 2), {"num_points": 3}, (1, "a"), b"\x00", memoryview(b"ab"), None])
    assert msgpack.unpackb(data) == [{"left-side": 1, "right": 2}, {"num-points": 3}, [1, "a"], b"\x00", b"ab", None]


def test_results_decode_by_their_type() -> None:
    pack = msgpack.packb
    assert _wit.decode(pack({"ok": [1, "a"]}), "result<tuple<s64, string>, string>") == (True, (1, "a"))
    assert _wit.decode(pack({"err": "bad"}), "result<s64, string>") == (False, "bad")
    assert _wit.decode(pack({"ok": None}), "result<_, string>") == (True, None)
    assert _wit.decode(pack({"y-coord": 1.0}), "record { y-coord: f64 }") == (True, {"y_coord": 1.0})
    assert _wit.decode(pack([[1, 2]]), "list<tuple<s64, s64>>") == (True, [(1, 2)])
