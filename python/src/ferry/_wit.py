"""A function's WIT signature, and Python values checked and carried by it.

The service prints each export's signature (``func(n: u64, seed: u64) ->
f64``) and checks every submission against it. The client reads the same
text so that a wrong argument fails at the call, naming the parameter,
before a request is sent; named types (records, variants) are left to the
service's check, whose answer names the parameter as well.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack

from ._errors import ArgumentError

_INTS = {
    "s8": (-(1 << 7), (1 << 7) - 1),
    "s16": (-(1 << 15), (1 << 15) - 1),
    "s32": (-(1 << 31), (1 << 31) - 1),
    "s64": (-(1 << 63), (1 << 63) - 1),
    "u8": (0, (1 << 8) - 1),
    "u16": (0, (1 << 16) - 1),
    "u32": (0, (1 << 32) - 1),
    "u64": (0, (1 << 64) - 1),
}


def split_top(text: str) -> list[str]:
    """Splits at the commas outside any ``<...>`` or ``(...)``."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c in "<({":
            depth += 1
        elif c in ">)}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    tail = text[start:].strip()
    if tail:
        parts.append(tail)
    return parts


@dataclasses.dataclass(frozen=True)
class Signature:
    """``func(a: T, ...) -> R`` as parameters and a result type."""

    params: tuple[tuple[str, str], ...]
    result: str | None

    @staticmethod
    def parse(text: str) -> Signature:
        text = text.strip()
        if not text.startswith("func(") or ")" not in text:
            raise ValueError(f"not a function signature: {text!r}")
        depth, close = 0, -1
        for i, c in enumerate(text[4:], start=4):
            if c in "<({":
                depth += 1
            elif c in ">)}":
                depth -= 1
                if depth == 0:
                    close = i
                    break
        params = []
        for p in split_top(text[5:close]):
            name, _, ty = p.partition(":")
            params.append((name.strip(), ty.strip()))
        rest = text[close + 1 :].strip()
        result = rest[2:].strip() if rest.startswith("->") else None
        return Signature(tuple(params), result or None)

    def __str__(self) -> str:
        ps = ", ".join(f"{n}: {t}" for n, t in self.params)
        return f"func({ps})" + (f" -> {self.result}" if self.result else "")


def _generic(ty: str, name: str) -> list[str] | None:
    if ty.startswith(name + "<") and ty.endswith(">"):
        return split_top(ty[len(name) + 1 : -1])
    return None


def check(ty: str, value: Any, where: str) -> None:
    """Raises ArgumentError when ``value`` cannot be a ``ty``. Named types
    and task references pass: the service checks those."""
    from .client import TaskFuture  # a future stands for any type

    if isinstance(value, TaskFuture):
        return

    def fail(expected: str) -> None:
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        raise ArgumentError(
            f"{where} expects {expected} ({ty}), got {type(value).__name__} {shown}"
        )

    if ty == "bool":
        if not isinstance(value, bool):
            fail("a bool")
    elif ty in _INTS:
        lo, hi = _INTS[ty]
        if isinstance(value, bool) or not isinstance(value, int):
            fail("an int")
        if not lo <= value <= hi:
            raise ArgumentError(f"{where} expects an int in [{lo}, {hi}] ({ty}), got {value}")
    elif ty in ("f32", "f64"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail("a float")
    elif ty == "char":
        if not (isinstance(value, str) and len(value) == 1):
            fail("one character")
    elif ty == "string":
        if not isinstance(value, str):
            fail("a str")
    elif ty == "list<u8>":
        if not isinstance(value, (bytes, bytearray, memoryview)):
            fail("bytes")
    elif (inner := _generic(ty, "list")) is not None:
        if not isinstance(value, (list, tuple)):
            fail("a list")
        for i, v in enumerate(value):
            check(inner[0], v, f"{where}[{i}]")
    elif (inner := _generic(ty, "tuple")) is not None:
        if not isinstance(value, (list, tuple)) or len(value) != len(inner):
            fail(f"a tuple of {len(inner)}")
        for i, (t, v) in enumerate(zip(inner, value)):
            check(t, v, f"{where}[{i}]")
    elif (inner := _generic(ty, "option")) is not None:
        if value is not None:
            check(inner[0], value, where)
    elif ty.startswith("record {") and ty.endswith("}"):
        from .blob import Blob

        if isinstance(value, Blob):
            value = {"hash": value.hash, "size": value.size}
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        if not isinstance(value, dict):
            fail("a dict (a record)")
        keys = {kebab(k) for k in value if isinstance(k, str)}
        fields = []
        for part in split_top(ty[len("record {") : -1]):
            name, _, fty = part.partition(":")
            fields.append((name.strip(), fty.strip()))
        for name, fty in fields:
            if name not in keys:
                if not fty.startswith("option<"):
                    raise ArgumentError(f"{where} lacks field `{snake(name)}` ({ty})")
                continue
            v = value[name] if name in value else value[snake(name)]
            check(fty, v, f"{where}.{snake(name)}")
        unknown = keys - {n for n, _ in fields}
        if unknown:
            raise ArgumentError(f"{where} has no field {', '.join(sorted(unknown))} ({ty})")


def kebab(name: str) -> str:
    return name.replace("_", "-")


def snake(name: str) -> str:
    return name.replace("-", "_")


def _encodable(value: Any) -> Any:
    """msgpack's fallback: ferry's own types and dataclasses."""
    from .blob import Blob
    from .client import TaskFuture

    if isinstance(value, TaskFuture):
        return {"$task": value.task_id}
    if isinstance(value, Blob):
        return {"hash": value.hash, "size": value.size}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {kebab(f.name): getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, memoryview):
        return value.tobytes()
    raise ArgumentError(f"a {type(value).__name__} cannot be a ferry argument")


def _wire_keys(value: Any) -> Any:
    """Record keys as WIT spells them (``num_points`` is ``num-points``)."""
    if isinstance(value, dict):
        return {
            (kebab(k) if isinstance(k, str) and k != "$task" else k): _wire_keys(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_wire_keys(v) for v in value]
    return value


def encode(args: list[Any]) -> bytes:
    """The argument list as one MessagePack array."""
    try:
        return msgpack.packb(_wire_keys(args), default=_encodable, use_bin_type=True)
    except (TypeError, OverflowError) as e:
        raise ArgumentError(f"cannot encode the arguments: {e}") from None


def bind(export: str, sig: Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    """Positional and keyword arguments as the signature's list, checked."""
    names = [n for n, _ in sig.params]
    if len(args) > len(names):
        raise ArgumentError(f"{export} takes {len(names)} arguments ({sig}), got {len(args)}")
    out: list[Any] = list(args)
    for name in names[len(args) :]:
        for key in (name, snake(name)):
            if key in kwargs:
                out.append(kwargs.pop(key))
                break
        else:
            raise ArgumentError(f"{export}: parameter `{name}` is missing ({sig})")
    if kwargs:
        extra = ", ".join(sorted(kwargs))
        raise ArgumentError(f"{export} has no parameter {extra} ({sig})")
    for (name, ty), value in zip(sig.params, out):
        check(ty, value, f"{export}: parameter `{name}`")
    return out


def _from_wire(value: Any, ty: str | None) -> Any:
    if isinstance(value, dict):
        return {(snake(k) if isinstance(k, str) else k): _from_wire(v, None) for k, v in value.items()}
    if isinstance(value, list):
        inner = _generic(ty, "tuple") if ty else None
        if inner is not None:
            return tuple(_from_wire(v, t) for v, t in zip(value, inner))
        item = (_generic(ty, "list") or [None])[0] if ty else None
        return [_from_wire(v, item) for v in value]
    return value


def decode(data: bytes, ty: str | None) -> tuple[bool, Any]:
    """A result as ``(ok, value)``: ``ok`` is False for the err case of a
    ``result<T, E>``. Records come back as dicts keyed in snake_case."""
    if not data:
        return True, None
    value = msgpack.unpackb(data, raw=False, strict_map_key=False)
    if ty is not None and (cases := _generic(ty, "result")) is not None:
        if isinstance(value, dict) and len(value) == 1:
            ((case, inner),) = value.items()
            ok_ty = cases[0] if cases and cases[0] != "_" else None
            err_ty = cases[1] if len(cases) > 1 else None
            if case == "ok":
                return True, _from_wire(inner, ok_ty)
            return False, _from_wire(inner, err_ty)
    if ty is not None and ty.startswith("result") and isinstance(value, dict):
        # `result` with no types: {"ok": null} or {"err": null}.
        return ("ok" in value), None
    return True, _from_wire(value, ty)
