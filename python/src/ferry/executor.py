"""What the seed's Python users know: a ``concurrent.futures.Executor``, as
Globus Compute's is, and a Parsl-style decorator.

Both submit to one endpoint. Results are pushed from the client's watch
stream; nothing polls. A future passed as an argument becomes a task
reference, so a chain of calls is a dataflow that runs in the service.
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor as _Executor
from concurrent.futures import wait as wait_all
from typing import Any, Generic, ParamSpec, TypeVar

from ._errors import ArgumentError, FerryError
from .client import Client, Export, Function, TaskFuture

P = ParamSpec("P")
R = TypeVar("R")


def _target(client: Client, fn: Any) -> Export:
    """What a submission runs: an export, a one-export function, a
    function id, an ``@app``, or a plain Python function (built once into
    a component and registered)."""
    if isinstance(fn, Export):
        return fn
    if isinstance(fn, Function):
        return fn.export()
    if isinstance(fn, App):
        return fn._export(client)
    if isinstance(fn, str):
        return client.function(fn).export()
    if callable(fn):
        from .builder import function as build_function

        return build_function(fn, client=client)
    raise ArgumentError(
        f"cannot submit a {type(fn).__name__}: give an export (fn.name), a registered function, "
        "or a Python function"
    )


class Executor(_Executor):
    """Runs calls on ``endpoint`` through ``client``.

    ``submit(fn, *args)`` returns a :class:`~ferry.TaskFuture` (a
    ``concurrent.futures.Future``); ``map`` submits in batches of a thousand
    a request. ``fn`` is an export of a registered component (``pi.pi``), or
    a plain Python function, which is built into a component the first time
    (see :func:`ferry.function`). ``options`` apply to every task (limits,
    memoize, retries, requires; see :meth:`ferry.Client.submit`).
    """

    def __init__(
        self,
        endpoint: str = "local",
        client: Client | None = None,
        **options: Any,
    ) -> None:
        from . import default_client

        self.endpoint = endpoint
        self.client = client or default_client()
        self.options = options
        self._futures: weakref.WeakSet[TaskFuture] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._shutdown = False

    def _track(self, futures: list[TaskFuture]) -> None:
        with self._lock:
            self._futures.update(futures)

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> TaskFuture:  # type: ignore[override]
        if self._shutdown:
            raise RuntimeError("cannot submit after shutdown")
        ex = _target(self.client, fn)
        f = self.client.submit(self.endpoint, ex, *args, options=self.options, **kwargs)
        self._track([f])
        return f

    def map(  # type: ignore[override]
        self,
        fn: Any,
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[Any]:
        """Like ``Executor.map``: results in order. Every call is submitted
        before the first result is awaited, a thousand a request."""
        if self._shutdown:
            raise RuntimeError("cannot submit after shutdown")
        ex = _target(self.client, fn)
        futures = self.client.submit_many(self.endpoint, ex, zip(*iterables), options=self.options)
        self._track(futures)

        def results() -> Iterator[Any]:
            end = None if timeout is None else time.monotonic() + timeout
            try:
                for f in futures:
                    yield f.result(None if end is None else max(0.0, end - time.monotonic()))
            finally:
                for f in futures:
                    if not f.done():
                        f.cancel()

        return results()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._shutdown = True
        with self._lock:
            pending = [f for f in self._futures if not f.done()]
        if cancel_futures:
            for f in pending:
                f.cancel()
        if wait:
            wait_all(pending)


class App(Generic[P, R]):
    """A Python function that, called, submits itself and returns a future.

    Built into a component on its first call (or :meth:`build`), registered
    once, then run on ``endpoint``. Arguments that are futures become task
    references, so ``g(f(x, y), b)`` is submitted at once and runs as a
    dataflow in the service.
    """

    def __init__(self, fn: Callable[P, R], endpoint: str, client: Client | None, options: dict[str, Any]) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.endpoint = endpoint
        self.client = client
        self.options = options
        self._exports: dict[int, Export] = {}
        self._lock = threading.Lock()

    def _export(self, client: Client) -> Export:
        with self._lock:
            if id(client) not in self._exports:
                from .builder import function as build_function

                self._exports[id(client)] = build_function(self.fn, client=client)
            return self._exports[id(client)]

    def build(self) -> Export:
        """Builds and registers now (otherwise the first call does)."""
        from . import default_client

        return self._export(self.client or default_client())

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> TaskFuture:
        from . import default_client

        client = self.client or default_client()
        ex = self._export(client)
        return client.submit(self.endpoint, ex, *args, options=self.options, **kwargs)

    def local(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Runs the plain Python function here, for comparison."""
        return self.fn(*args, **kwargs)


def app(
    endpoint: str = "local",
    *,
    client: Client | None = None,
    **options: Any,
) -> Callable[[Callable[P, R]], App[P, R]]:
    """``@ferry.app(endpoint="local")``: see :class:`App`."""
    if callable(endpoint):
        raise FerryError("write @ferry.app(...) with parentheses: @ferry.app(endpoint=\"local\")")

    def wrap(fn: Callable[P, R]) -> App[P, R]:
        return App(fn, endpoint, client, options)

    return wrap
