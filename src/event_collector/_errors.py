"""
Exceptions raised or reported by event-collector.

The library reuses trio's exceptions where they fit (``trio.ClosedResourceError`` for a
publisher of a queue that is shutting down, ``trio.WouldBlock`` for a full queue,
``trio.TooSlowError`` for a processor that exceeded its timeout) and adds only these.
"""

from __future__ import annotations

from typing import final

__all__ = ["CollectorError", "GatewayError", "ProcessingError", "RemoteError", "ShutdownError"]


class CollectorError(Exception):
    """
    Base class of every exception defined by event-collector.
    """


@final
class ProcessingError(CollectorError):
    """
    A processing failure described by text.

    ``Error("bad input")`` wraps its text in this exception, so that
    ``Error("bad input").unwrap()`` raises ``ProcessingError("bad input")``. Two of them are
    equal when their messages are, so ``Error("bad input") == Error("bad input")`` and tests
    can compare results directly.
    """

    def __eq__(self, other: object) -> bool:
        if type(other) is not ProcessingError:
            return NotImplemented
        return self.args == other.args

    def __hash__(self) -> int:
        return hash((ProcessingError, self.args))


@final
class ShutdownError(CollectorError):
    """
    The event was cancelled by queue shutdown before its collectors finished.

    An event that never left the queue resolves with a single ``Error(ShutdownError())``;
    an event whose collectors were running gets this error for each collector that had not
    finished when the shutdown timeout expired or the queue was aborted.
    """

    def __init__(self, message: str = "event cancelled by queue shutdown") -> None:
        super().__init__(message)

    def __eq__(self, other: object) -> bool:
        if type(other) is not ShutdownError:
            return NotImplemented
        return self.args == other.args

    def __hash__(self) -> int:
        return hash((ShutdownError, self.args))


@final
class RemoteError(CollectorError):
    """
    A failure on a worker of the distributed mode, carried back to the producer.

    The exception itself does not cross the wire (no pickle): its type's name, its message
    and its traceback as text do. ``str(error)`` is ``"TypeName: message"``.

    Args:
        type_name: The qualified name of the original exception's type
            (``"builtins.ValueError"``, ``"mypackage.errors.Rejected"``).
        message: ``str()`` of the original exception.
        traceback: The original traceback, formatted as text ("" if there was none).
    """

    def __init__(self, type_name: str, message: str, traceback: str = "") -> None:
        super().__init__(f"{type_name}: {message}")
        #: The qualified name of the original exception's type.
        self.type_name = type_name
        #: ``str()`` of the original exception.
        self.message = message
        #: The original traceback as text.
        self.traceback = traceback

    def __eq__(self, other: object) -> bool:
        if type(other) is not RemoteError:
            return NotImplemented
        return (self.type_name, self.message) == (other.type_name, other.message)

    def __hash__(self) -> int:
        return hash((RemoteError, self.type_name, self.message))

    def __reduce__(self) -> tuple[type[RemoteError], tuple[str, str, str]]:
        return RemoteError, (self.type_name, self.message, self.traceback)


@final
class GatewayError(CollectorError):
    """
    The distributed mode could not run a task; the message says why.

    No gateway, a gateway that lost the task, a task refused, or one that took down every
    worker it was given to. The task may or may not have run.
    """

    def __eq__(self, other: object) -> bool:
        if type(other) is not GatewayError:
            return NotImplemented
        return self.args == other.args

    def __hash__(self) -> int:
        return hash((GatewayError, self.args))
