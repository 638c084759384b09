"""ferry.Client against a real fabric: register, submit, status, cancel,
tokens and argument checks."""

from __future__ import annotations

import os

import pytest

import ferry


def test_register_submit_and_result(client: ferry.Client, probe: ferry.Function) -> None:
    assert len(probe.id) == 64 and "add" in probe.exports
    f = client.submit("local", probe.add, 40, 2)
    assert f.result(timeout=60) == 42
    assert client.status(f.task_id)["state"] == "succeeded"
    # By keyword, in snake_case, and as the attribute of its WIT name.
    assert client.submit("local", probe.sum_pair, p={"left": 3, "right": 4}).result(60) == 7
    # A second registration sends nothing.
    assert client.register(os.environ["FERRY_TEST_GUESTS"].split("dataflow-probe=")[1].split(":")[0]).id == probe.id
    # A task id alone: a future for a task submitted elsewhere.
    assert client.result(f.task_id, timeout=60) == 42


def test_arguments_are_checked_before_anything_runs(client: ferry.Client, probe: ferry.Function) -> None:
    before = client.status()["tasks"]
    with pytest.raises(TypeError, match=r"parameter `a` expects an int \(s64\), got str"):
        client.submit("local", probe.add, "forty", 2)
    with pytest.raises(ferry.ArgumentError, match="parameter `b` is missing"):
        client.submit("local", probe.add, 1)
    with pytest.raises(ferry.ArgumentError, match=r"parameter `ms` expects an int in \[0, 4294967295\]"):
        client.submit("local", probe.slow, 1, -5)
    with pytest.raises(ferry.ArgumentError, match=r"parameter `xs`\[1\] expects an int"):
        client.submit("local", probe.sum, [1, 2.5])
    # A record is the service's to check: its answer names the parameter too.
    with pytest.raises(ferry.ArgumentError, match="p"):
        client.submit("local", probe.sum_pair, {"left": 1, "right": "two"})
    assert client.status()["tasks"] == before, "a refused submission queued a task"


def test_failures_carry_their_kind(client: ferry.Client, faults: ferry.Function, probe: ferry.Function) -> None:
    f = client.submit("local", faults.boom, "on purpose")
    with pytest.raises(ferry.TaskFailed) as e:
        f.result(60)
    assert e.value.kind == "trap" and e.value.task_id == f.task_id
    assert "on purpose" in e.value.output or "on purpose" in e.value.message
    # A function's own err is a RemoteError, not a crash.
    with pytest.raises(ferry.RemoteError, match="7 is the bad value"):
        client.submit("local", probe.checked, 7, 7).result(60)
    assert client.submit("local", probe.checked, 7, 8).result(60) == 7
    # The endpoint survived both.
    assert client.submit("local", probe.square, 9).result(60) == 81


def test_a_wrong_token_is_refused(client: ferry.Client, probe: ferry.Function) -> None:
    url = os.environ["FERRY_URL"]
    bad = ferry.Client(url, token="ferry_" + "0" * 40)
    with pytest.raises(ferry.AuthError):
        bad.whoami()
    with pytest.raises(ferry.AuthError):
        bad.submit("local", probe.add, 1, 2)
    bad.close()
    with pytest.raises(ferry.AuthError, match="not a ferry token"):
        ferry.Client(url, token="has spaces in it")
    assert client.whoami()["admin"] is True


def test_an_unreachable_service_is_named(tmp_path) -> None:
    with pytest.raises(ferry.ConnectError, match="127.0.0.1:9"):
        ferry.Client("http://127.0.0.1:9", token="x", timeout=1)


def test_unknown_exports_and_functions_are_named(client: ferry.Client, probe: ferry.Function) -> None:
    with pytest.raises(ferry.NotFound, match="no export `nope`"):
        probe["nope"]
    with pytest.raises(ferry.NotFound):
        client.function("0" * 64)
    with pytest.raises(ferry.NotFound, match="cannot read the component no-such.wasm"):
        client.register("no-such.wasm")


def test_cancel(client: ferry.Client, probe: ferry.Function) -> None:
    f = client.submit("local", probe.slow, 1, 60_000)
    assert f.cancel()
    assert f.cancelled()
    assert client.status(f.task_id)["state"] == "cancelled"
