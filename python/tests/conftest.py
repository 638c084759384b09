"""The fabric these tests run against: the one ``tests/python.rs`` starts
(a real ``ferry serve`` and endpoint ``local``), named by ``FERRY_URL`` and
``FERRY_TOKEN``, with the Rust example components it built listed in
``FERRY_TEST_GUESTS`` (``name=path`` pairs, ``:``-separated)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import ferry

HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get("FERRY_URL"):
        message = "FERRY_URL is not set: run these tests through `cargo test --test python`, which starts a fabric"
        if os.environ.get("CI") == "true":
            raise pytest.UsageError(message)
        print(f"skipping: {message}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("FERRY_URL"):
        skip = pytest.mark.skip(reason="no fabric: FERRY_URL is not set (cargo test --test python starts one)")
        for item in items:
            if "fabric" in item.fixturenames or "client" in item.fixturenames:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def client() -> ferry.Client:
    c = ferry.connect(os.environ["FERRY_URL"], os.environ.get("FERRY_TOKEN"))
    yield c
    c.close()


@pytest.fixture(scope="session")
def guests() -> dict[str, Path]:
    pairs = [p.split("=", 1) for p in os.environ.get("FERRY_TEST_GUESTS", "").split(":") if p]
    return {k: Path(v) for k, v in pairs}


@pytest.fixture(scope="session")
def probe(client: ferry.Client, guests: dict[str, Path]) -> ferry.Function:
    return client.register(guests["dataflow-probe"])


@pytest.fixture(scope="session")
def faults(client: ferry.Client, guests: dict[str, Path]) -> ferry.Function:
    return client.register(guests["faults"])


@pytest.fixture(scope="session")
def app_module(tmp_path_factory: pytest.TempPathFactory) -> ferry.builder.Built:
    """modules/app.py built once: every supported type, a failure, blobs."""
    out = tmp_path_factory.mktemp("app") / "app.wasm"
    return ferry.build(HERE / "modules" / "app.py", out)


@pytest.fixture(scope="session")
def app(client: ferry.Client, app_module: ferry.builder.Built) -> ferry.Function:
    return client.register(app_module.path)
