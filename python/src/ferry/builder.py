"""Python functions into components: ``ferry build app.py``.

The type hints of a module's public functions become a WIT world (int is
``s64``, float ``f64``, str ``string``, bytes ``list<u8>``, bool ``bool``,
``list[T]``, ``tuple[...]``, ``Optional[T]`` an ``option``, a dataclass a
``record``, :class:`ferry_guest.Blob` a ``blob-ref``), and componentize-py
bundles the module, what it imports and CPython into one component. Every
export returns ``result<T, string>``: an exception the function raises
reaches the caller, with its traceback. The user never writes WIT.

Native extensions (numpy, scipy, pandas, ...) cannot go in: componentize-py
needs WASI builds of them, and PyPI has none. Pure-Python packages that the
building interpreter can import are bundled.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ._errors import BuildError
from .guest._entry import wit_name

if TYPE_CHECKING:
    from .client import Client, Export

#: componentize-py, the one ``.ci/setup`` installs and ``ferry-fabric[build]`` pins.
COMPONENTIZE_PY = "0.25.1"

#: Packages that are native extensions, whose WASI builds are not on PyPI.
NATIVE = {"numpy", "scipy", "pandas", "torch", "tensorflow", "jax", "sklearn", "cv2", "PIL", "matplotlib", "numba", "polars", "pyarrow"}

SUPPORTED = "int, float, str, bytes, bool, list[T], tuple[T, ...], Optional[T], a dataclass, or ferry_guest.Blob"

_HERE = Path(__file__).resolve().parent
_WORD = re.compile(r"^[a-z][a-z0-9]*(-[a-z][a-z0-9]*)*$")


@dataclasses.dataclass
class Built:
    """A component built from Python: where it is, and what it exports."""

    path: Path
    wit: str
    exports: list[str]
    seconds: float
    cached: bool


def _wit_name(name: str, what: str) -> str:
    wit = wit_name(name)
    if not _WORD.match(wit):
        raise BuildError(
            f"{what} `{name}` has no WIT name: use letters and digits in words joined by single "
            "underscores, each word starting with a letter"
        )
    return wit


def _blob_types() -> tuple[type, ...]:
    from .blob import Blob as ClientBlob

    out: list[type] = [ClientBlob]
    guest = sys.modules.get("ferry_guest.blobs")
    if guest is not None:
        out.append(guest.Blob)
    return tuple(out)


class _Types:
    """Hints as WIT types, gathering the records they need (in the order
    WIT must declare them: a record after the records it holds)."""

    def __init__(self) -> None:
        self.records: dict[type, tuple[str, list[tuple[str, str]]]] = {}
        self.uses_blob = False

    def wit(self, hint: Any, where: str) -> str:
        if hint is bool:
            return "bool"
        if hint is int:
            return "s64"
        if hint is float:
            return "f64"
        if hint is str:
            return "string"
        if hint is bytes:
            return "list<u8>"
        if isinstance(hint, type) and hint in _blob_types():
            self.uses_blob = True
            return "blob-ref"
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            return self._record(hint, where)
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            rest = [a for a in args if a is not type(None)]
            if len(rest) == 1 and len(args) == 2:
                return f"option<{self.wit(rest[0], where)}>"
        if origin is list and len(args) == 1:
            return f"list<{self.wit(args[0], where)}>"
        if origin is tuple and args and Ellipsis not in args and args != ((),):
            return "tuple<" + ", ".join(self.wit(a, where) for a in args) + ">"
        shown = hint.__name__ if isinstance(hint, type) else repr(hint).replace("typing.", "")
        if hint in (list, tuple):
            shown += f" without its item types (write {hint.__name__}[int], ...)"
        raise BuildError(
            f"{where} has type {shown}, which a ferry function cannot take or return; "
            f"use {SUPPORTED}"
        )

    def _record(self, cls: type, where: str) -> str:
        if cls in self.records:
            return self.records[cls][0]
        name = _wit_name(cls.__name__, "dataclass")
        self.records[cls] = (name, [])  # a recursive record fails below, not forever
        try:
            hints = typing.get_type_hints(cls)
        except Exception as e:
            raise BuildError(f"{where}: the hints of dataclass {cls.__name__} do not resolve: {e}") from None
        fields = [
            (_wit_name(f.name, f"field of {cls.__name__}"), self.wit(hints[f.name], f"{where} (field `{f.name}` of {cls.__name__})"))
            for f in dataclasses.fields(cls)
        ]
        # Declared after what it holds.
        del self.records[cls]
        self.records[cls] = (name, fields)
        return name


@dataclasses.dataclass
class _Export:
    name: str  # the Python function's
    wit: str  # its WIT name
    params: list[tuple[str, str]]
    result: str | None


def _signature(fn: Callable[..., Any], types_: _Types) -> _Export:
    name = fn.__name__
    try:
        hints = typing.get_type_hints(fn)
    except Exception as e:
        raise BuildError(f"function `{name}`: its type hints do not resolve: {e}") from None
    params = []
    for p in inspect.signature(fn).parameters.values():
        where = f"function `{name}`: parameter `{p.name}`"
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise BuildError(f"{where}: *args and **kwargs cannot be a WIT signature; name each parameter")
        if p.name not in hints:
            raise BuildError(f"{where} has no type hint; ferry needs one to build the signature ({SUPPORTED})")
        params.append((_wit_name(p.name, f"function `{name}`: parameter"), types_.wit(hints[p.name], where)))
    if "return" not in hints:
        raise BuildError(f"function `{name}` has no return type hint (write `-> None` if it returns nothing)")
    ret = hints["return"]
    result = None if ret is None or ret is type(None) else types_.wit(ret, f"function `{name}`: its return value")
    return _Export(name, _wit_name(name, "function"), params, result)


def _native_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        found += [n for n in names if n.split(".")[0] in NATIVE]
    return found


def _refuse_native(source: str, what: str) -> None:
    native = _native_imports(source)
    if native:
        raise BuildError(
            f"{what} imports {', '.join(sorted(set(native)))}, a native extension: a ferry function "
            "runs in WebAssembly, and PyPI has no WASI builds of numpy and its kin, so it cannot go "
            "in. Write the numeric part in pure Python, or as a Rust function that the Python code "
            "calls through ferry."
        )


def world_for(module: str, exports: list[_Export], types_: _Types, imports: list[str]) -> str:
    """The WIT world of a module's exports."""
    lines = [f"package ferry-py:{module};", "", f"world {module} {{"]
    for i in imports:
        lines.append(f"    import ferry:host/{i}@0.1.0;")
    if types_.uses_blob:
        lines.append("    use ferry:host/blobs@0.1.0.{blob-ref};")
    for name, fields in types_.records.values():
        lines.append("")
        lines.append(f"    record %{name} {{")
        lines += [f"        %{f}: {t}," for f, t in fields]
        lines.append("    }")
    lines.append("")
    for e in exports:
        ps = ", ".join(f"%{n}: {t}" for n, t in e.params)
        lines.append(f"    export %{e.wit}: func({ps}) -> result<{e.result or '_'}, string>;")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _imported(source: str) -> list[str]:
    """Every module the source imports, at its top or inside a function."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return sorted(set(names))


def _entry(module: str, exports: list[_Export], source: str) -> str:
    # componentize-py keeps the modules imported while it pre-initializes
    # the component, and no others: a function that imports inside its body
    # (as Parsl's apps do) finds its modules only if they are imported here.
    lines = [
        "# Written by ferry build: the component's WitWorld, calling the module's functions.",
        "import importlib",
        "",
        "import wit_world",
        "from ferry_guest._entry import Call",
        "",
        f"for _name in {_imported(source)!r}:",
        "    try:",
        "        importlib.import_module(_name)",
        "    except ImportError:",
        "        pass  # the function's own import raises it, if it runs",
        "",
        f"import {module} as _m",
        "",
    ]
    for e in exports:
        lines.append(f"_{e.wit.replace('-', '_')} = Call(_m.{e.name})")
    lines += ["", "", "class WitWorld(wit_world.WitWorld):"]
    for e in exports:
        py = e.wit.replace("-", "_")
        lines.append(f"    def {py}(self, *args):")
        lines.append(f"        return _{py}(args)")
        lines.append("")
    return "\n".join(lines)


def _componentize_py() -> str:
    here = Path(sys.executable).parent / "componentize-py"
    if here.exists():
        return str(here)
    found = shutil.which("componentize-py")
    if found:
        return found
    raise BuildError(
        f"componentize-py is not installed: pip install 'ferry-fabric[build]' (componentize-py=={COMPONENTIZE_PY})"
    )


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("FERRY_BUILD_CACHE", Path(base) / "ferry" / "build"))


def _import(path: Path, name: str) -> types.ModuleType:
    """Imports the module to read its hints, with ferry_guest importable."""
    guest_parent = str(_HERE)
    sys.path.insert(0, guest_parent)  # ferry/guest is ferry_guest
    added = []
    try:
        if "ferry_guest" not in sys.modules:
            spec = importlib.util.spec_from_file_location(
                "ferry_guest", _HERE / "guest" / "__init__.py", submodule_search_locations=[str(_HERE / "guest")]
            )
            assert spec and spec.loader
            mod = importlib.util.module_from_spec(spec)
            sys.modules["ferry_guest"] = mod
            spec.loader.exec_module(mod)
            added.append("ferry_guest")
        spec = importlib.util.spec_from_file_location(f"_ferry_build_{name}", path)
        if spec is None or spec.loader is None:
            raise BuildError(f"{path}: not a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
        except BuildError:
            raise
        except Exception as e:
            raise BuildError(f"{path.name}: importing it failed: {type(e).__name__}: {e}") from None
        return module
    finally:
        sys.path.remove(guest_parent)


def _public_functions(module: types.ModuleType) -> list[Callable[..., Any]]:
    return [
        f
        for n, f in vars(module).items()
        if inspect.isfunction(f) and not n.startswith("_") and f.__module__ == module.__name__
    ]


def build(
    path: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    functions: list[str] | None = None,
) -> Built:
    """Builds the module at ``path`` (its public functions, or those named)
    into a component; returns where it went (``output``, else beside the
    module as ``NAME.wasm``). Built once per source: a rebuild of unchanged
    code comes from the cache."""
    path = Path(path)
    try:
        source = path.read_text()
    except OSError as e:
        raise BuildError(f"cannot read {path}: {e.strerror}") from None
    name = path.stem
    try:
        ast.parse(source, filename=path.name)
    except SyntaxError as e:
        raise BuildError(f"{path.name}, line {e.lineno}: {e.msg}") from None
    _refuse_native(source, path.name)
    module = _import(path, name)
    fns = _public_functions(module)
    if functions is not None:
        missing = set(functions) - {f.__name__ for f in fns}
        if missing:
            raise BuildError(f"{path.name} has no public function {', '.join(sorted(missing))}")
        fns = [f for f in fns if f.__name__ in functions]
    if not fns:
        raise BuildError(f"{path.name} has no public function to export (names starting with _ are private)")
    return _componentize(name, source, fns, path.parent, Path(output) if output else path.with_suffix(".wasm"))


def _componentize(name: str, source: str, fns: list[Callable[..., Any]], src_dir: Path, output: Path) -> Built:
    import time

    start = time.monotonic()
    module = _wit_name(name, "module")
    types_ = _Types()
    exports = [_signature(f, types_) for f in fns]
    imports = ["log", "blobs"]
    # Only what the module may use: an endpoint built without a GPU or a
    # camera (the lean one) links neither.
    imports += [i for i in ("camera", "gpu") if i in source]
    world = world_for(module, exports, types_, imports)
    py_module = module.replace("-", "_")
    entry = _entry(py_module, exports, source)
    guest = _HERE / "guest"
    key = hashlib.blake2b(digest_size=16)
    for part in (world, entry, source, COMPONENTIZE_PY, *(p.read_text() for p in sorted(guest.glob("*.py")))):
        key.update(part.encode())
        key.update(b"\0")
    cached = _cache_dir() / f"{key.hexdigest()}.wasm"
    names = [e.wit for e in exports]
    if cached.exists():
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, output)
        return Built(output, world, names, time.monotonic() - start, True)
    with tempfile.TemporaryDirectory(prefix="ferry-build-") as tmp:
        t = Path(tmp)
        (t / "wit" / "deps" / "ferry-host").mkdir(parents=True)
        shutil.copyfile(_HERE / "wit" / "host.wit", t / "wit" / "deps" / "ferry-host" / "host.wit")
        (t / "wit" / "world.wit").write_text(world)
        (t / "src").mkdir()
        (t / "src" / f"{py_module}.py").write_text(source)
        (t / "src" / "ferry_entry.py").write_text(entry)
        shutil.copytree(guest, t / "src" / "ferry_guest", ignore=shutil.ignore_patterns("__pycache__"))
        cmd = [_componentize_py(), "-d", str(t / "wit"), "-w", module, "componentize", "ferry_entry", "-p", str(t / "src")]
        cmd += ["-p", str(src_dir)]
        for p in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
            if Path(p).is_dir():
                cmd += ["-p", p]
        out = t / "out.wasm"
        cmd += ["-o", str(out)]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        if r.returncode != 0:
            raise BuildError(_explain(r.stderr or r.stdout, name))
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, output)
        cached.parent.mkdir(parents=True, exist_ok=True)
        part = cached.with_suffix(".part")
        shutil.copyfile(out, part)
        part.replace(cached)
    return Built(output, world, names, time.monotonic() - start, False)


def _explain(text: str, name: str) -> str:
    missing = re.search(r"No module named '([^']+)'", text)
    if missing:
        top = missing.group(1).split(".")[0]
        if top in NATIVE:
            return (
                f"{name}: {top} is a native extension and PyPI has no WASI build of it; "
                "a ferry function cannot import it"
            )
        return (
            f"{name}: module {missing.group(1)!r} is not importable where ferry build runs; "
            "pip install it (pure-Python packages are bundled into the component)"
        )
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return f"{name}: componentize-py failed: " + "\n".join(lines[-8:])


def function_source(fn: Callable[..., Any]) -> str:
    """A function's own module: its source, without decorators, after the
    dataclasses its hints name and the imports that hints use. Like a Parsl
    app, the function imports what else it needs inside its body."""
    try:
        src = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        raise BuildError(f"function `{fn.__name__}`: its source is not available (define it in a file or a notebook cell)") from None
    tree = ast.parse(src)
    node = tree.body[0]
    if not isinstance(node, ast.FunctionDef):
        raise BuildError(f"`{fn.__name__}` is not a plain function (async functions and lambdas cannot be built)")
    node.decorator_list = []
    head = [
        "from __future__ import annotations",
        "import dataclasses",
        "from dataclasses import dataclass",
        "from typing import Optional, Union, List, Tuple",
        "from ferry_guest import Blob, blobs, log",
        "",
    ]
    records: list[str] = []
    try:
        hints = typing.get_type_hints(fn)
    except Exception as e:
        raise BuildError(f"function `{fn.__name__}`: its type hints do not resolve: {e}") from None

    def gather(h: Any) -> None:
        if dataclasses.is_dataclass(h) and isinstance(h, type):
            for t in typing.get_type_hints(h).values():
                gather(t)
            text = textwrap.dedent(inspect.getsource(h))
            if text not in records:
                records.append(text)
        for a in typing.get_args(h):
            gather(a)

    for h in hints.values():
        gather(h)
    return "\n".join(head + records + [ast.unparse(node), ""])


def function(fn: Callable[..., Any], *, client: Client | None = None) -> Export:
    """Builds one Python function into a component (cached by its source),
    registers it, and returns its export, ready to submit."""
    from . import default_client

    client = client or default_client()
    source = function_source(fn)
    _refuse_native(source, f"function `{fn.__name__}`")
    with tempfile.TemporaryDirectory(prefix="ferry-fn-") as tmp:
        path = Path(tmp) / f"{fn.__name__.lower()}_fn.py"
        path.write_text(source)
        module = _import(path, path.stem)
        target = getattr(module, fn.__name__)
        built = _componentize(path.stem, source, [target], Path(tmp), Path(tmp) / "fn.wasm")
        registered = client.register(built.path)
    export = registered.export()
    result = typing.get_type_hints(fn).get("return")
    export.convert = lambda value: _to_python(result, value)
    return export


def _to_python(hint: Any, value: Any) -> Any:
    """A decoded result as the function's return hint names it: its
    dataclasses, tuples and blobs, not dicts and lists."""
    if value is None or hint is None:
        return value
    if isinstance(hint, type) and hint in _blob_types() and isinstance(value, dict):
        from .blob import Blob

        return Blob(value["hash"], value["size"])
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        hints = typing.get_type_hints(hint)
        return hint(**{k: _to_python(hints.get(k), v) for k, v in value.items()})
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return _to_python(rest[0], value) if len(rest) == 1 else value
    if origin is list and args:
        return [_to_python(args[0], v) for v in value]
    if origin is tuple and args:
        return tuple(_to_python(t, v) for t, v in zip(args, value))
    return value
