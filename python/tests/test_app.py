"""@ferry.app: Parsl's decorator, with the dataflow run in the service."""

from __future__ import annotations

import pytest

import ferry


@ferry.app(endpoint="local")
def F(x: int, y: int) -> int:
    return x + y


@ferry.app(endpoint="local")
def G(a: int, b: int) -> int:
    return a * b


def test_the_seeds_figure_2(client: ferry.Client) -> None:
    f = F(2, 3)
    g = G(f, 4)  # submitted at once: f is a reference, resolved in the service
    assert isinstance(g, ferry.TaskFuture)
    assert client.status(g.task_id)["depends_on"] == [f.task_id]
    assert g.result(120) == 20
    assert f.result(5) == 5
    # The same functions, natively.
    assert G.local(F.local(2, 3), 4) == 20


def test_a_failed_producer_fails_its_consumer(client: ferry.Client) -> None:
    f = F(1 << 62, 1 << 62)  # past s64: the Python int overflows WIT's s64 on the way out
    with pytest.raises(ferry.TaskFailed):
        f.result(120)
    with pytest.raises(ferry.TaskFailed):
        G(f, 2).result(120)
    assert F(1, 2).result(120) == 3, "the endpoint lives on"


def test_type_errors_at_the_call(client: ferry.Client) -> None:
    with pytest.raises(TypeError, match="parameter `y` expects an int"):
        F(1, "2")
