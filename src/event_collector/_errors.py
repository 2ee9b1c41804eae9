"""
Exceptions raised or reported by event-collector.

The library reuses trio's exceptions where they fit (``trio.ClosedResourceError`` for a
publisher of a queue that is shutting down, ``trio.WouldBlock`` for a full queue,
``trio.TooSlowError`` for a processor that exceeded its timeout) and adds only these.
"""

from __future__ import annotations

from typing import final

__all__ = ["CollectorError", "ProcessingError", "ShutdownError"]


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
