"""ferry's host imports for functions written in Python.

Inside a component built by ``ferry build``: ``log`` (structured lines and
progress that the endpoint streams to whoever watches the task), ``blobs``
(read and write blobs by reference) and ``camera`` (frames from the
endpoint's cameras, when it grants one). Files are Python's own ``open``
under the directories an endpoint mounts.

Outside a component (running the function natively, for comparison), log
lines go to stderr, and blobs and cameras raise :class:`NotInComponent`.
"""

from . import blobs, camera, gpu, log
from .blobs import Blob, NotInComponent

__all__ = ["Blob", "NotInComponent", "blobs", "camera", "gpu", "log"]
