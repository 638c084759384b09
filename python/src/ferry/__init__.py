"""ferry for Python: a client of a ferry service, and the builder of
functions written in Python.

>>> import ferry
>>> client = ferry.Client("http://127.0.0.1:7171")
>>> pi = client.register("pi.wasm")
>>> with ferry.Executor(endpoint="local", client=client) as ex:
...     print(ex.submit(pi.pi, 1_000_000, 42).result())

Functions written in Python become components with ``ferry build app.py``
(or :func:`ferry.function`); the user never writes WIT.
"""

from __future__ import annotations

import threading

from ._errors import (
    ArgumentError,
    AuthError,
    BuildError,
    ConnectError,
    FerryError,
    NotFound,
    Refused,
    RemoteError,
    TaskFailed,
)
from .blob import Blob
from .builder import Built, build, function
from .client import Client, Export, Function, TaskFuture
from .executor import App, Executor, app

__all__ = [
    "App",
    "ArgumentError",
    "AuthError",
    "Blob",
    "BuildError",
    "Built",
    "Client",
    "ConnectError",
    "Executor",
    "Export",
    "FerryError",
    "Function",
    "NotFound",
    "Refused",
    "RemoteError",
    "TaskFailed",
    "TaskFuture",
    "app",
    "build",
    "connect",
    "default_client",
    "function",
]

__version__ = "0.1.0"

_default: Client | None = None
_default_lock = threading.Lock()


def connect(url: str | None = None, token: str | None = None, **kwargs: object) -> Client:
    """Connects, and makes this the client that ``@app``, ``Executor`` and
    ``Blob`` use when given none."""
    global _default
    client = Client(url, token, **kwargs)  # type: ignore[arg-type]
    with _default_lock:
        _default = client
    return client


def default_client() -> Client:
    """The client :func:`connect` made, else one to ``FERRY_URL`` (or
    ``http://127.0.0.1:7171``) with the token found for it."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Client()
        return _default
