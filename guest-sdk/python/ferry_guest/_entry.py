"""The glue between componentize-py's bindings and a user's function.

``ferry build`` writes a module whose ``WitWorld`` methods call
:class:`Call`: it turns the bindings' values into the types the function's
hints name (its own dataclasses, :class:`~ferry_guest.Blob`), calls it, and
turns its result back. An exception becomes the export's ``err``: its type,
message and traceback reach the caller.
"""

from __future__ import annotations

import dataclasses
import inspect
import traceback
import types
import typing
from collections.abc import Callable
from typing import Any

from .blobs import Blob


def pascal(wit_name: str) -> str:
    return "".join(w.capitalize() for w in wit_name.split("-"))


def wit_name(name: str) -> str:
    """A Python name in WIT's kebab case: ``PiResult`` and ``pi_result`` are
    ``pi-result``. ``ferry build`` names records with it, and this glue finds
    their generated classes by it, so the two cannot disagree."""
    out = []
    for i, c in enumerate(name):
        if c.isupper() and i > 0 and name[i - 1].islower():
            out.append("-")
        out.append(c.lower())
    return "".join(out).replace("_", "-")


def _optional(hint: Any) -> Any | None:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return None


def into(hint: Any, value: Any) -> Any:
    """A bindings value as the function's hint wants it."""
    if value is None:
        return None
    if hint is Blob:
        return Blob(value.hash, value.size)
    if dataclasses.is_dataclass(hint):
        fields = typing.get_type_hints(hint)
        return hint(**{n: into(t, getattr(value, n)) for n, t in fields.items()})
    if (inner := _optional(hint)) is not None:
        return into(inner, value)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return [into(args[0], v) for v in value]
    if origin is tuple:
        return tuple(into(t, v) for t, v in zip(args, value))
    return value


def out(hint: Any, value: Any, world: Any) -> Any:
    """The function's value as the bindings want it."""
    if value is None:
        return None
    if hint is Blob:
        from wit_world.imports import blobs

        return blobs.BlobRef(hash=value.hash, size=value.size)
    if dataclasses.is_dataclass(hint):
        cls = getattr(world, pascal(wit_name(hint.__name__)))
        fields = typing.get_type_hints(hint)
        return cls(**{n: out(t, getattr(value, n), world) for n, t in fields.items()})
    if (inner := _optional(hint)) is not None:
        return out(inner, value, world)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return [out(args[0], v, world) for v in value]
    if origin is tuple:
        return tuple(out(t, v, world) for t, v in zip(args, value))
    if hint is float and isinstance(value, int):
        return float(value)
    return value


class Call:
    """One export: the user's function and its hints."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        hints = typing.get_type_hints(fn)
        self.result = hints.pop("return", None)
        self.params = [hints[p] for p in inspect.signature(fn).parameters]

    def __call__(self, args: tuple[Any, ...]) -> Any:
        import wit_world
        from componentize_py_types import Err

        try:
            value = self.fn(*(into(h, a) for h, a in zip(self.params, args)))
            return out(self.result, value, wit_world)
        except Exception as e:
            lines = traceback.format_exception(e)
            # The function's frames, not this glue's.
            text = "".join(lines[:1] + lines[2:]) if len(lines) > 2 else "".join(lines)
            raise Err(f"{type(e).__name__}: {e}\n{text}".rstrip()) from None
