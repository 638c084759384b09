"""Every way a ferry call fails, as Python exceptions.

A task's own failure carries its kind (ferry's one vocabulary: ``trap``,
``timeout``, ``out-of-memory``, ...), so that callers can tell a bug in a
function from a limit it ran into.
"""

from __future__ import annotations


class FerryError(Exception):
    """Anything ferry refuses or fails to do."""


class ConnectError(FerryError, ConnectionError):
    """The service cannot be reached, or its TLS is not trusted."""


class AuthError(FerryError, PermissionError):
    """The token is missing, wrong, expired or revoked, or lacks a right."""


class NotFound(FerryError, LookupError):
    """No such function, task, blob or endpoint."""


class ArgumentError(FerryError, TypeError):
    """The arguments do not fit the function's signature; nothing ran."""


class Refused(FerryError):
    """The service refused the request for another reason (a quota, a
    requirement no endpoint offers, a limit); its message says which."""


class TaskFailed(FerryError):
    """A task ran and failed, or could not run.

    ``kind`` is ferry's failure kind (``trap``, ``timeout``, ...), and
    ``output`` what the task printed, when the endpoint kept it.
    """

    def __init__(self, task_id: str, kind: str, message: str, output: str = "") -> None:
        super().__init__(f"task {task_id} failed ({kind}): {message}")
        self.task_id = task_id
        self.kind = kind
        self.message = message
        self.output = output


class RemoteError(TaskFailed):
    """The function returned an error value: for a Python function, the
    exception it raised, with its traceback in ``message``."""

    def __init__(self, task_id: str, message: str) -> None:
        super().__init__(task_id, "function-error", message)
        self.args = (f"task {task_id}: the function returned an error: {message}",)


class BuildError(FerryError):
    """A Python module cannot become a component; the message names the
    function and parameter at fault."""
