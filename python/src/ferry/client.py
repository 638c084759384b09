"""The connection to a ferry service: functions, tasks, blobs.

One gRPC channel and one watch stream a client. Every call presents the
client's token (``authorization: Bearer``), found as the Rust client and the
``ferry`` command find it: the one given, else ``FERRY_TOKEN``, else the
credentials file that ``ferry login`` or ``ferry up`` wrote.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, InvalidStateError
from pathlib import Path
from typing import Any, TypeVar

import grpc

from . import _wit
from ._errors import (
    ArgumentError,
    AuthError,
    ConnectError,
    FerryError,
    NotFound,
    Refused,
    RemoteError,
    TaskFailed,
)
from ._watch import Watcher
from .v1 import ferry_pb2 as pb
from .v1 import ferry_pb2_grpc as rpc

DEFAULT_URL = "http://127.0.0.1:7171"
_MAX_MESSAGE = 64 << 20
_CHUNK = 1 << 20
#: Tasks a submission request carries at most (as the Rust client's batches).
BATCH = 1000

T = TypeVar("T")


def _config_dir() -> Path | None:
    for var, tail in (("FERRY_CONFIG_DIR", ""), ("XDG_CONFIG_HOME", "ferry")):
        if os.environ.get(var):
            return Path(os.environ[var]) / tail
    home = os.environ.get("HOME")
    return Path(home) / ".config" / "ferry" if home else None


def token_for(url: str, given: str | None = None) -> str | None:
    """The token for ``url``: the one given, else ``FERRY_TOKEN``, else the
    credentials file's (one ``URL TOKEN`` pair a line)."""
    if given:
        return given
    if os.environ.get("FERRY_TOKEN", "").strip():
        return os.environ["FERRY_TOKEN"].strip()
    config = _config_dir()
    if config is None:
        return None
    try:
        lines = (config / "credentials").read_text().splitlines()
    except OSError:
        return None
    key = url.strip().rstrip("/")
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            return parts[1]
    return None


def _error(e: grpc.RpcError, what: str) -> FerryError:
    """A status as the exception a caller can act on, with the service's
    own words (it never shows internals to a remote client)."""
    code, details = e.code(), e.details() or ""
    message = f"{what}: {details}" if details else what
    if code == grpc.StatusCode.UNAVAILABLE:
        return ConnectError(message)
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return AuthError(message)
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(message)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return ArgumentError(message)
    return Refused(message)


class TaskFuture(Future):
    """A task's result, resolved when the service pushes its final state.

    Passed as an argument of another submission, it stands for this task's
    result: the service runs the consumer once this task has succeeded, and
    the value never comes back through this process.
    """

    def __init__(self, client: Client, task_id: str, result_type: str | None = None) -> None:
        super().__init__()
        self.task_id = task_id
        self._client = client
        self._result_type = result_type
        self._convert: Callable[[Any], Any] | None = None

    def __repr__(self) -> str:
        return f"<TaskFuture {self.task_id} {self._state.lower()}>"

    def cancel(self) -> bool:
        """Cancels the task in the service; True if it will not run to its
        end (it had not finished)."""
        if self.done():
            return False
        try:
            info = self._client._tasks.Cancel(
                pb.CancelRequest(task_id=self.task_id), metadata=self._client._md
            )
        except grpc.RpcError:
            return False
        return info.state == pb.TASK_STATE_CANCELLED and self._mark_cancelled()

    def _mark_cancelled(self) -> bool:
        # Once only, though this thread and the watch's may both get here;
        # the condition's lock is re-entrant.
        with self._condition:
            if self._state == "FINISHED":
                return False
            if self._state != "CANCELLED_AND_NOTIFIED":
                super().cancel()
                # What `wait` and `as_completed` count as done.
                self.set_running_or_notify_cancel()
            return True

    def _resolve(self, info: Any) -> None:
        try:
            self._settle(info)
        except InvalidStateError:
            pass  # cancelled here while the service's answer was on its way

    def _settle(self, info: Any) -> None:
        if self.done():
            return
        if info.state == pb.TASK_STATE_SUCCEEDED:
            try:
                ok, value = _wit.decode(info.result, self._result_type)
                if ok and self._convert is not None:
                    value = self._convert(value)
            except Exception as e:  # a result this client cannot read
                self.set_exception(FerryError(f"task {self.task_id}: cannot decode its result: {e}"))
                return
            if ok:
                self.set_result(value)
            else:
                self.set_exception(RemoteError(self.task_id, str(value)))
        elif info.state == pb.TASK_STATE_CANCELLED:
            # Cancelled elsewhere: waiters see CancelledError.
            self._mark_cancelled()
        else:
            err = info.error
            output = ""
            if info.HasField("output"):
                output = (info.output.stderr or info.output.stdout).decode("utf-8", "replace")
            kind = err.kind or "internal"
            if kind == "denied":
                self.set_exception(AuthError(f"task {self.task_id}: {err.message}"))
            else:
                self.set_exception(TaskFailed(self.task_id, kind, err.message, output))


class Export:
    """One function of a registered component; calling it submits a task."""

    def __init__(self, function: Function, name: str, wire_name: str, signature: str) -> None:
        self.function = function
        self.name = name
        self._wire = wire_name
        self.signature = _wit.Signature.parse(signature)
        #: Turns a decoded result into the Python type a Python function
        #: returns (its dataclasses); set by :func:`ferry.function`.
        self.convert: Callable[[Any], Any] | None = None

    def __repr__(self) -> str:
        return f"<Export {self.name}: {self.signature}>"

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        return _wit.bind(self.name, self.signature, args, dict(kwargs))

    def submit(self, endpoint: str, *args: Any, **kwargs: Any) -> TaskFuture:
        return self.function.client.submit(endpoint, self, *args, **kwargs)


class Function:
    """A registered component: its id (the blake3 of its bytes) and its
    exports, reachable as attributes in snake_case (``fn.sum_pair``) or by
    their WIT names (``fn["sum-pair"]``)."""

    def __init__(self, client: Client, info: Any, uploaded: bool) -> None:
        self.client = client
        self.id: str = info.id
        self.size: int = info.size
        self.uploaded = uploaded
        self.imports: list[str] = list(info.imports)
        short = [e.name.rsplit("#", 1)[-1].rsplit("/", 1)[-1] for e in info.exports]
        self.exports: dict[str, Export] = {}
        for full, name in zip(info.exports, short):
            wire = name if short.count(name) == 1 else full.name
            key = name if short.count(name) == 1 else full.name
            self.exports[key] = Export(self, key, wire, full.signature)

    def __repr__(self) -> str:
        return f"<Function {self.id[:12]} exports={list(self.exports)}>"

    def __getitem__(self, name: str) -> Export:
        try:
            return self.exports[name]
        except KeyError:
            raise NotFound(
                f"function {self.id[:12]} has no export `{name}` (it has: {', '.join(self.exports)})"
            ) from None

    def __getattr__(self, name: str) -> Export:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[_wit.kebab(name)] if _wit.kebab(name) in self.exports else self[name]

    def export(self, name: str | None = None) -> Export:
        """The export named, or the only one."""
        if name is not None:
            return self[name]
        if len(self.exports) != 1:
            raise ArgumentError(
                f"function {self.id[:12]} has {len(self.exports)} exports; name one of: "
                + ", ".join(self.exports)
            )
        return next(iter(self.exports.values()))


class Client:
    """A connection to a ferry service.

    ``url`` defaults to ``FERRY_URL``, else ``http://127.0.0.1:7171``. An
    ``https://`` service is trusted through ``ca`` (a PEM file; default
    ``FERRY_CA``, else the system's roots), and presents ``client_cert`` and
    ``client_key`` (``FERRY_CLIENT_CERT``, ``FERRY_CLIENT_KEY``) to a service
    that asks for them.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        ca: str | os.PathLike[str] | None = None,
        client_cert: str | os.PathLike[str] | None = None,
        client_key: str | os.PathLike[str] | None = None,
        quota_patience: float = 600.0,
        timeout: float = 10.0,
    ) -> None:
        self.url = (url or os.environ.get("FERRY_URL") or DEFAULT_URL).rstrip("/")
        token = token_for(self.url, token)
        if token is not None and (not token.isascii() or any(c.isspace() for c in token)):
            raise AuthError("the token has spaces or non-ASCII characters; it is not a ferry token")
        self._md = (("authorization", f"Bearer {token}"),) if token else ()
        self.quota_patience = quota_patience
        options = [
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ("grpc.max_send_message_length", _MAX_MESSAGE),
        ]
        if self.url.startswith("https://"):
            target = self.url[len("https://") :]
            creds = grpc.ssl_channel_credentials(
                root_certificates=_read(ca or os.environ.get("FERRY_CA")),
                private_key=_read(client_key or os.environ.get("FERRY_CLIENT_KEY")),
                certificate_chain=_read(client_cert or os.environ.get("FERRY_CLIENT_CERT")),
            )
            self._channel = grpc.secure_channel(target, creds, options)
        elif self.url.startswith("http://"):
            self._channel = grpc.insecure_channel(self.url[len("http://") :], options)
        else:
            raise ConnectError(f"{self.url}: a service URL starts with http:// or https://")
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            self._channel.close()
            raise ConnectError(f"cannot reach the ferry service at {self.url}") from None
        self._functions = rpc.FunctionsStub(self._channel)
        self._tasks = rpc.TasksStub(self._channel)
        self._blobs = rpc.BlobsStub(self._channel)
        self._auth = rpc.AuthStub(self._channel)
        self._watcher = Watcher(lambda requests: self._tasks.Watch(requests, metadata=self._md))
        self._registered: dict[str, Function] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ plumbing

    def close(self) -> None:
        self._watcher.close()
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: Callable[..., T], request: Any, what: str) -> T:
        """One unary call, tried again while a quota refuses it (the
        service's hint, growing, up to ``quota_patience``)."""
        start, wait = time.monotonic(), 0.05
        while True:
            try:
                return method(request, metadata=self._md)
            except grpc.RpcError as e:
                trailers = dict(e.trailing_metadata() or ())
                quota = e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "ferry-quota" in trailers
                hint = trailers.get("ferry-retry-after-ms")
                if not quota or hint == "0" or time.monotonic() - start > self.quota_patience:
                    raise _error(e, what) from None
                pause = max(wait, int(hint) / 1000 if hint else wait)
                time.sleep(min(pause, 5.0) * (1 + random.random() / 10))
                wait = min(wait * 2, 5.0)

    def whoami(self) -> dict[str, Any]:
        r = self._call(self._auth.WhoAmI, pb.WhoAmIRequest(), "who am i")
        return {"user": r.user, "admin": r.admin, "token_id": r.token_id}

    # ------------------------------------------------------------ functions

    def register(self, component: str | os.PathLike[str] | bytes) -> Function:
        """Registers a component (a path or its bytes) under its blake3 hash;
        sends the bytes only if the service lacks them."""
        import blake3

        if isinstance(component, (str, os.PathLike)):
            try:
                data = Path(component).read_bytes()
            except OSError as e:
                raise NotFound(f"cannot read the component {component}: {e.strerror}") from None
        else:
            data = bytes(component)
        fid = blake3.blake3(data).hexdigest()
        with self._lock:
            if fid in self._registered:
                return self._registered[fid]
        has = self._call(self._functions.Has, pb.HasRequest(ids=[fid]), "register")
        uploaded = fid not in has.present

        def chunks() -> Iterator[pb.RegisterChunk]:
            if not uploaded or not data:
                yield pb.RegisterChunk(id=fid, total_size=len(data))
                return
            for i in range(0, len(data), _CHUNK):
                yield pb.RegisterChunk(
                    id=fid if i == 0 else "", total_size=len(data), data=data[i : i + _CHUNK]
                )

        try:
            info = self._functions.Register(chunks(), metadata=self._md)
        except grpc.RpcError as e:
            raise _error(e, "register") from None
        f = Function(self, info, uploaded)
        with self._lock:
            self._registered[fid] = f
        return f

    def function(self, function_id: str) -> Function:
        """A function registered earlier, by id."""
        info = self._call(self._functions.Get, pb.GetFunctionRequest(id=function_id), "function")
        return Function(self, info, False)

    # ------------------------------------------------------------ tasks

    def _export(self, function: Export | Function | str, export: str | None) -> Export:
        if isinstance(function, Export):
            return function
        if isinstance(function, str):
            function = self.function(function)
        return function.export(export)

    def _request(self, endpoint: str, ex: Export, args: list[Any], options: dict[str, Any]) -> Any:
        req = pb.SubmitRequest(
            endpoint=endpoint,
            function_id=ex.function.id,
            export=ex._wire,
            msgpack=_wit.encode(args),
        )
        limits = options.get("limits")
        if limits:
            req.limits.CopyFrom(
                pb.Limits(
                    timeout_ms=int(limits.get("timeout", 0) * 1000),
                    memory_bytes=int(limits.get("memory", 0)),
                    output_bytes=int(limits.get("output", 0)),
                )
            )
        if options.get("memoize"):
            req.memoize = True
        if options.get("retries"):
            req.retries = int(options["retries"])
            req.retry_on.extend(options.get("retry_on") or ["*"])
        for need in options.get("requires") or ():
            req.requires.append(_requirement(need))
        return req

    def submit(
        self,
        endpoint: str,
        function: Export | Function | str,
        *args: Any,
        export: str | None = None,
        options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> TaskFuture:
        """Submits one call and returns its future at once.

        ``function`` is an :class:`Export` (``fn.pi``), a :class:`Function`
        with one export (or ``export=`` naming one), or a function id. The
        arguments are checked against the export's signature first; a
        :class:`TaskFuture` among them stands for that task's result.
        ``options``: ``limits`` (``{"timeout": s, "memory": bytes,
        "output": bytes}``), ``memoize``, ``retries``, ``retry_on`` and
        ``requires`` (``"gpu"``, ``"camera"``, ``"camera:NAME"``,
        ``"mount:/PATH"``, ``"env:NAME"``).
        """
        ex = self._export(function, export)
        req = self._request(endpoint, ex, ex.bind(args, kwargs), options or {})
        r = self._call(self._tasks.Submit, req, f"submit {ex.name}")
        return self.future(r.task_id, ex)

    def submit_many(
        self,
        endpoint: str,
        function: Export | Function | str,
        arg_lists: Iterable[Iterable[Any]],
        *,
        export: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> list[TaskFuture]:
        """Submits many calls of one export, a thousand a request."""
        ex = self._export(function, export)
        reqs = [self._request(endpoint, ex, ex.bind(tuple(a), {}), options or {}) for a in arg_lists]
        futures: list[TaskFuture] = []
        for i in range(0, len(reqs), BATCH):
            r = self._call(
                self._tasks.SubmitBatch,
                pb.SubmitBatchRequest(tasks=reqs[i : i + BATCH]),
                f"submit {ex.name}",
            )
            futures.extend(self.future(t, ex) for t in r.task_ids)
        return futures

    def future(self, task_id: str, export: Export | None = None) -> TaskFuture:
        """A future for a task submitted earlier, by this process or another."""
        if export is None:
            # Its function's signature says how to read its result.
            info = self._call(self._tasks.Get, pb.GetTaskRequest(task_id=task_id), "result")
            if info.function_id:
                function = self._registered.get(info.function_id) or self.function(info.function_id)
                self._registered.setdefault(function.id, function)
                export = next((e for e in function.exports.values() if e._wire == info.export), None)
        result_type = export.signature.result if export is not None else None
        f = TaskFuture(self, task_id, result_type)
        f._convert = export.convert if export is not None else None
        self._watcher.watch(task_id, f._resolve)
        return f

    def result(self, task_id: str, timeout: float | None = None) -> Any:
        """Waits for a task's result (raises its failure)."""
        return self.future(task_id).result(timeout)

    def status(self, task_id: str | None = None) -> dict[str, Any]:
        """A task's state now (without waiting), or, with no id, the
        service's: endpoints and task counts."""
        if task_id is not None:
            info = self._call(self._tasks.Get, pb.GetTaskRequest(task_id=task_id), "status")
            return _task_dict(info)
        s = self._call(self._tasks.Status, pb.StatusRequest(), "status")
        return {
            "endpoints": [
                {
                    "name": e.name,
                    "online": e.online,
                    "sessions": e.sessions,
                    "capacity": e.capacity,
                    "in_flight": e.in_flight,
                    "queued": e.queued,
                }
                for e in s.endpoints
            ],
            "tasks": {_state_name(c.state): c.count for c in s.tasks},
        }

    def cancel(self, task_id: str) -> dict[str, Any]:
        """Cancels a task; returns its state after."""
        info = self._call(self._tasks.Cancel, pb.CancelRequest(task_id=task_id), "cancel")
        return _task_dict(info)

    # ------------------------------------------------------------ blobs

    def upload(self, source: Any) -> Any:
        """Uploads a file path, bytes, a memoryview or a binary file object
        as a blob, streamed in 1 MiB chunks; sends nothing if the service
        has it. Returns its :class:`~ferry.Blob`."""
        from .blob import upload

        return upload(self, source)

    def download(self, blob: Any, path: str | os.PathLike[str] | None = None) -> Any:
        """A blob's bytes, or, given ``path``, written there chunk by chunk
        (never held whole) and checked against its hash."""
        from .blob import download

        return download(self, blob, path)


def _read(path: str | os.PathLike[str] | None) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ConnectError(f"cannot read {path}: {e.strerror}") from None


def _requirement(need: str) -> Any:
    kind, _, arg = need.partition(":")
    if kind == "gpu":
        return pb.Requirement(gpu=pb.GpuNeed())
    if kind == "camera":
        return pb.Requirement(camera=pb.CameraNeed(name=arg))
    if kind == "mount" and arg:
        return pb.Requirement(mount=pb.MountNeed(guest=arg))
    if kind == "env" and arg:
        return pb.Requirement(env=pb.EnvNeed(name=arg))
    raise ArgumentError(
        f"unknown requirement {need!r}: use gpu, camera, camera:NAME, mount:/PATH or env:NAME"
    )


def _state_name(state: int) -> str:
    return pb.TaskState.Name(state).removeprefix("TASK_STATE_").lower()


def _task_dict(info: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": info.id,
        "endpoint": info.endpoint,
        "function": info.function_id,
        "export": info.export,
        "state": _state_name(info.state),
        "depends_on": list(info.depends_on),
        "attempts": info.attempts,
        "cache_hit": info.cache_hit,
    }
    if info.HasField("error"):
        d["error"] = {"kind": info.error.kind, "message": info.error.message}
    return d
