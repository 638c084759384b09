"""The Python figures: `ferry build` on the seed's pi (time, size), the
first call of a new Python component (upload, compile, run) against a call
once it is cached, and pi(10^6) as a component against the same code in
this CPython, in one run.

    python python/bench/figures.py        # against FERRY_URL (`ferry up`)
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import ferry

PI = '''
import random


def pi(num_points: int, seed: int) -> float:
    rng = random.Random(seed)
    inside = 0
    for _ in range(num_points):
        x, y = rng.random(), rng.random()
        if x * x + y * y <= 1.0:
            inside += 1
    return 4.0 * inside / num_points
'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint", default="local")
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    client = ferry.connect(os.environ.get("FERRY_URL"))
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FERRY_BUILD_CACHE"] = str(Path(tmp) / "cache")
        src = Path(tmp) / "pi.py"
        # A new component each run: a comment changes its hash, so that
        # nothing on the service or the endpoint knows it yet.
        src.write_text(f"# run {time.time_ns()}\n" + PI)
        built = ferry.build(src)
        print(f"| ferry build pi.py | {built.seconds:.1f} s | {built.path.stat().st_size / 1e6:.1f} MB |")
        rebuilt = ferry.build(src)
        print(f"| ferry build pi.py again (cached) | {rebuilt.seconds:.2f} s | |")

        start = time.perf_counter()
        fn = client.register(built.path)
        registered = time.perf_counter() - start
        first = client.submit(a.endpoint, fn.pi, 1, 1).result()
        first_s = time.perf_counter() - start
        assert first in (0.0, 4.0)
        warm = []
        for i in range(a.runs):
            t = time.perf_counter()
            client.submit(a.endpoint, fn.pi, 1, i).result()
            warm.append(time.perf_counter() - t)
        print(f"| first call of a new component (upload {registered:.2f} s, fetch, compile, run) | {first_s:.2f} s | |")
        print(f"| a call once cached (median of {a.runs}) | {statistics.median(warm) * 1000:.1f} ms | |")

        namespace: dict = {}
        exec(PI, namespace)
        native, wasm = [], []
        for i in range(a.runs):
            t = time.perf_counter()
            expect = namespace["pi"](a.points, i)
            native.append(time.perf_counter() - t)
            t = time.perf_counter()
            got = client.submit(a.endpoint, fn.pi, a.points, i).result()
            wasm.append(time.perf_counter() - t)
            assert got == expect, (got, expect)
        n, w = statistics.median(native), statistics.median(wasm)
        print(f"| pi({a.points:,}) in native CPython (median of {a.runs}) | {n:.3f} s | |")
        print(f"| pi({a.points:,}) as a component, round trip (median of {a.runs}) | {w:.3f} s | {w / n:.2f}× native |")
    client.close()


if __name__ == "__main__":
    main()
