"""ferry's peers on the same workloads as `ferry bench`: no-op tasks a second,
the round trip of one task, and the seed's pi in blocks.

Runs Parsl (HighThroughputExecutor), Dask distributed (LocalCluster) and Ray,
each with one worker a core on this machine, and prints one JSON object a
peer on stdout. `ferry bench --peers` runs this between its own runs and
takes the ratios; `run.sh` makes the virtualenv it needs.
"""

import argparse
import json
import os
import sys
import time
import traceback


def noop() -> None:
    return None


def pi(num_points: int, seed: int) -> float:
    """The seed's Monte-Carlo pi, in pure Python as the seed wrote it."""
    import random

    rng = random.Random(seed)
    inside = 0
    for _ in range(num_points):
        x = rng.random()
        y = rng.random()
        if x * x + y * y <= 1.0:
            inside += 1
    return 4.0 * inside / num_points


class Peer:
    """One system: start it, submit, wait, stop."""

    name = ""

    def start(self, workers): ...

    def submit(self, fn, *args): ...

    def wait(self, futures): ...

    def stop(self): ...


class Parsl(Peer):
    name = "parsl"

    def start(self, workers):
        import parsl
        from parsl.config import Config
        from parsl.executors import HighThroughputExecutor
        from parsl.providers import LocalProvider

        self.version = parsl.__version__
        run_dir = os.path.join(self.scratch, "parsl-runinfo")
        config = Config(
            executors=[
                HighThroughputExecutor(
                    label="htex",
                    address="127.0.0.1",
                    loopback_address="127.0.0.1",
                    max_workers_per_node=workers,
                    provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1),
                )
            ],
            run_dir=run_dir,
            strategy="none",
        )
        self.dfk = parsl.load(config)
        self.apps = {f: parsl.python_app(f, executors=["htex"]) for f in (noop, pi)}

    def submit(self, fn, *args):
        return self.apps[fn](*args)

    def wait(self, futures):
        return [f.result() for f in futures]

    def stop(self):
        import parsl

        self.dfk.cleanup()
        parsl.clear()


class FerryPython(Peer):
    """ferry, from its Python package: the same Python functions, built into
    components (CPython in WebAssembly) and run on the endpoint of the
    service at FERRY_URL (`ferry up`)."""

    name = "ferry-python"

    def start(self, workers):
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, os.path.join(here, "..", "..", "python", "src"))
        import ferry

        self.version = ferry.__version__
        self.client = ferry.connect(os.environ.get("FERRY_URL"))
        endpoint = os.environ.get("FERRY_ENDPOINT", "local")
        self.apps = {f: ferry.app(endpoint=endpoint)(f) for f in (noop, pi)}
        # Ready as the others' workers are: built, registered, and compiled
        # on the endpoint by a first call.
        self.apps[noop]().result()
        self.apps[pi](1, 0).result()

    def submit(self, fn, *args):
        return self.apps[fn](*args)

    def wait(self, futures):
        return [f.result() for f in futures]

    def stop(self):
        self.client.close()


class Dask(Peer):
    name = "dask"

    def start(self, workers):
        import distributed
        from distributed import Client, LocalCluster

        self.version = distributed.__version__
        self.cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            local_directory=self.scratch,
        )
        self.client = Client(self.cluster)

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False)

    def wait(self, futures):
        return self.client.gather(futures)

    def stop(self):
        self.client.close()
        self.cluster.close()


class Ray(Peer):
    name = "ray"

    def start(self, workers):
        import ray

        self.version = ray.__version__
        # Ray puts its sockets under the temp dir, and a Unix socket's path
        # has at most 107 bytes: a short directory of its own in /tmp.
        import tempfile

        self.temp = tempfile.mkdtemp(prefix="ferry-ray-", dir="/tmp")
        ray.init(
            num_cpus=workers,
            include_dashboard=False,
            logging_level="ERROR",
            _temp_dir=self.temp,
        )
        self.ray = ray
        self.remote = {f: ray.remote(f) for f in (noop, pi)}
        # Workers start on first use; start them before the clock does.
        ray.get([self.remote[noop].remote() for _ in range(workers * 4)])

    def submit(self, fn, *args):
        return self.remote[fn].remote(*args)

    def wait(self, futures):
        return self.ray.get(list(futures))

    def stop(self):
        import shutil

        self.ray.shutdown()
        shutil.rmtree(self.temp, ignore_errors=True)


PEERS = {p.name: p for p in (Parsl, Dask, Ray, FerryPython)}


def measure_noop(peer, tasks, runs):
    rates = []
    for run in range(runs + 1):
        start = time.perf_counter()
        got = peer.wait([peer.submit(noop) for _ in range(tasks)])
        secs = time.perf_counter() - start
        if len(got) != tasks or any(g is not None for g in got):
            raise RuntimeError(f"noop: {len(got)} of {tasks} results, not all None")
        if run > 0:
            rates.append(tasks / secs)
    return {"tasks": tasks, "runs": runs, "rates": sorted(rates)}


def measure_rtt(peer, iterations):
    times = []
    for i in range(iterations + iterations // 10):
        start = time.perf_counter()
        peer.wait([peer.submit(noop)])
        if i >= iterations // 10:
            times.append(time.perf_counter() - start)
    times.sort()
    at = lambda q: times[int((len(times) - 1) * q)]
    return {"iterations": iterations, "p50_s": at(0.5), "p99_s": at(0.99),
            "p10_s": at(0.1), "p90_s": at(0.9)}


def measure_pi(peer, points, blocks, runs):
    out = {"points": points, "tasks": 100, "blocks": {}}
    expect = [pi(points, s) for s in range(100)] if points <= 100_000 else None
    for block in blocks:
        totals = []
        for _ in range(runs):
            start = time.perf_counter()
            total = 0.0
            for b in range(100 // block):
                got = peer.wait([peer.submit(pi, points, b * block + i) for i in range(block)])
                if expect is not None and got != expect[b * block:(b + 1) * block]:
                    raise RuntimeError(f"pi: block {b} of size {block} returned {got}")
                total += sum(got)
            totals.append(time.perf_counter() - start)
            if not 3.0 < total / 100 < 3.3:
                raise RuntimeError(f"pi: the mean estimate was {total / 100}")
        out["blocks"][str(block)] = sorted(totals)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peers", default="parsl,dask,ray")
    ap.add_argument("--workloads", default="noop,rtt,pi")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--pi-points", type=int, default=1_000_000)
    ap.add_argument("--pi-blocks", default="1,2,4,5,10,20,100")
    ap.add_argument("--pi-runs", type=int, default=1)
    ap.add_argument("--scratch", default=os.environ.get("TMPDIR", "/tmp"))
    a = ap.parse_args()
    workloads = a.workloads.split(",")
    blocks = [int(b) for b in a.pi_blocks.split(",")]
    failed = False
    for name in a.peers.split(","):
        if name not in PEERS:
            sys.exit(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
        peer = PEERS[name]()
        peer.scratch = os.path.join(a.scratch, f"ferry-peers-{os.getpid()}")
        os.makedirs(peer.scratch, exist_ok=True)
        result = {"peer": name, "workers": a.workers}
        try:
            start = time.perf_counter()
            peer.start(a.workers)
            result["version"] = peer.version
            result["start_s"] = time.perf_counter() - start
            if "pi" in workloads:
                t = time.perf_counter()
                pi(a.pi_points, 0)
                result["pi_single_s"] = time.perf_counter() - t
            if "noop" in workloads:
                result["noop"] = measure_noop(peer, a.tasks, a.runs)
            if "rtt" in workloads:
                result["rtt"] = measure_rtt(peer, a.iterations)
            if "pi" in workloads:
                result["pi"] = measure_pi(peer, a.pi_points, blocks, a.pi_runs)
        except Exception as e:
            failed = True
            result["error"] = f"{type(e).__name__}: {e}"
            traceback.print_exc(file=sys.stderr)
        finally:
            try:
                if "version" in result:
                    peer.stop()
            except Exception:
                traceback.print_exc(file=sys.stderr)
        print(json.dumps(result), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
