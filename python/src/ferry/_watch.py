"""The one watch stream that resolves every future of a client.

The service pushes each watched task's final state; nothing polls. The
stream is re-opened if it breaks, and every pending task id is sent again.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from .v1 import ferry_pb2 as pb

TERMINAL = {pb.TASK_STATE_SUCCEEDED, pb.TASK_STATE_FAILED, pb.TASK_STATE_CANCELLED}


class Watcher:
    def __init__(self, open_stream: Callable[[Iterator[Any]], Any]) -> None:
        self._open = open_stream
        self._lock = threading.Lock()
        self._pending: dict[str, list[Callable[[Any], None]]] = {}
        self._requests: queue.SimpleQueue[list[str] | None] | None = None
        self._call: Any = None
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="ferry-watch", daemon=True)
        self._thread.start()

    def watch(self, task_id: str, resolve: Callable[[Any], None]) -> None:
        """Calls ``resolve(TaskInfo)`` once the task is final."""
        with self._lock:
            self._pending.setdefault(task_id, []).append(resolve)
            requests = self._requests
        if requests is not None:
            requests.put([task_id])
        self._wake.set()

    def close(self) -> None:
        self._closed = True
        with self._lock:
            requests, call = self._requests, self._call
        if requests is not None:
            requests.put(None)
        if call is not None:
            call.cancel()
        self._wake.set()

    def _run(self) -> None:
        while not self._closed:
            requests: queue.SimpleQueue[list[str] | None] = queue.SimpleQueue()
            self._wake.clear()
            with self._lock:
                ids = list(self._pending)
                self._requests = requests
            if not ids:
                # Nothing to watch: open the stream with the first id.
                self._wake.wait()
                with self._lock:
                    self._requests = None
                continue
            requests.put(ids)

            def send(requests: queue.SimpleQueue[list[str] | None] = requests) -> Iterator[pb.WatchRequest]:
                while (batch := requests.get()) is not None:
                    while True:  # gather what else is queued into one message
                        try:
                            more = requests.get_nowait()
                        except queue.Empty:
                            break
                        if more is None:
                            yield pb.WatchRequest(task_ids=batch)
                            return
                        batch.extend(more)
                    yield pb.WatchRequest(task_ids=batch)

            try:
                call = self._open(send())
                with self._lock:
                    self._call = call
                for event in call:
                    if event.HasField("task"):
                        self._event(event.task)
            except grpc.RpcError as e:
                if e.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                    self._fail_all(e.details() or "refused")
            finally:
                requests.put(None)
                with self._lock:
                    self._requests = None
                    self._call = None
            if not self._closed:
                self._wake.wait(0.2)

    def _event(self, info: Any) -> None:
        done = info.state in TERMINAL or (
            info.state == pb.TASK_STATE_UNSPECIFIED and info.HasField("error")
        )
        if not done:
            return
        with self._lock:
            waiting = self._pending.pop(info.id, [])
        for resolve in waiting:
            resolve(info)

    def _fail_all(self, message: str) -> None:
        """The service refused the watch itself (a token revoked): every
        pending future ends with its answer, none waits forever."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for task_id, waiting in pending.items():
            info = pb.TaskInfo(id=task_id, error=pb.TaskError(kind="denied", message=message))
            for resolve in waiting:
                resolve(info)
