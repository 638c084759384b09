"""The seed's notebook, executed headless (nbclient, ipykernel) against the
fabric; any failing cell fails the test."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

import ferry  # noqa: F401  (the kernel imports it from this environment)

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "notebooks" / "seed.ipynb"


def test_the_seed_notebook_runs(client, guests, monkeypatch) -> None:
    # Small sizes: the same code, a CI's worth of work.
    monkeypatch.setenv("SEED_PI_POINTS", "20000")
    monkeypatch.setenv("SEED_KMEANS_POINTS", "20000")
    monkeypatch.setenv("FERRY_KMEANS_WASM", str(guests["kmeans"]))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "| block size | blocks | total seconds | mean pi |" in outputs
    assert "| 100 | 1 |" in outputs
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "the k-means plot was not drawn"
    assert os.environ["FERRY_URL"]
