"""``python -m ferry build app.py``: what ``ferry build`` runs."""

from __future__ import annotations

import argparse
import sys

from ._errors import FerryError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ferry", description="ferry's Python tools")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build a Python module into a ferry component")
    b.add_argument("module", help="the module (app.py); its public functions become the exports")
    b.add_argument("-o", "--output", help="where the component goes (default: beside the module, .wasm)")
    b.add_argument("-f", "--function", action="append", dest="functions", help="export only this function (repeatable)")
    b.add_argument("--wit", action="store_true", help="print the generated WIT world too")
    args = parser.parse_args(argv)
    from .builder import build

    try:
        built = build(args.module, args.output, functions=args.functions)
    except FerryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.wit:
        print(built.wit)
    how = "from the cache" if built.cached else f"in {built.seconds:.1f} s"
    size = built.path.stat().st_size
    print(f"built {built.path} ({size / 1e6:.1f} MB, {how}): {', '.join(built.exports)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
