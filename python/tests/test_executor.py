"""ferry.Executor: a concurrent.futures.Executor, as Globus Compute's is."""

from __future__ import annotations

import concurrent.futures as cf

import pytest

import ferry


def test_submit_and_map(client: ferry.Client, probe: ferry.Function) -> None:
    with ferry.Executor(endpoint="local", client=client) as ex:
        f = ex.submit(probe.square, 12)
        assert isinstance(f, cf.Future)
        assert f.result(60) == 144
        assert list(ex.map(probe.square, range(200))) == [i * i for i in range(200)]
        assert list(ex.map(probe.add, [1, 2, 3], [10, 20, 30])) == [11, 22, 33]
        # The standard helpers work on its futures.
        fs = [ex.submit(probe.add, i, i) for i in range(20)]
        done, _ = cf.wait(fs, timeout=60)
        assert sorted(f.result() for f in done) == [2 * i for i in range(20)]
        assert sorted(f.result() for f in cf.as_completed(fs, timeout=60)) == [2 * i for i in range(20)]


def test_exceptions_carry_their_kind(client: ferry.Client, faults: ferry.Function) -> None:
    ex = ferry.Executor(endpoint="local", client=client)
    f = ex.submit(faults.boom, "executor")
    assert isinstance(f.exception(60), ferry.TaskFailed)
    assert f.exception().kind == "trap"
    # A limit is a kind of its own.
    slow = ferry.Executor(endpoint="local", client=client, limits={"timeout": 0.5})
    with pytest.raises(ferry.TaskFailed) as e:
        slow.submit(faults.spin).result(60)
    assert e.value.kind == "timeout"
    ex.shutdown()


def test_cancellation(client: ferry.Client, probe: ferry.Function) -> None:
    ex = ferry.Executor(endpoint="local", client=client)
    f = ex.submit(probe.slow, 5, 60_000)
    assert f.cancel()
    with pytest.raises(cf.CancelledError):
        f.result(5)
    # shutdown(cancel_futures=True) cancels what has not finished.
    g = ex.submit(probe.slow, 6, 60_000)
    ex.shutdown(wait=True, cancel_futures=True)
    assert g.cancelled()
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(probe.square, 1)


def test_a_plain_python_function(client: ferry.Client) -> None:
    # The notebook's funcX-style function: the same source, the same component.
    def double(x: int) -> int:
        return 2 * x

    with ferry.Executor(endpoint="local", client=client) as ex:
        assert ex.submit(double, 21).result(120) == 42
        assert list(ex.map(double, [1, 2, 3])) == [2, 4, 6]
