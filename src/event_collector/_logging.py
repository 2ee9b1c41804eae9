"""
The library's structlog logger, and the silent logger of a queue built with ``logging=False``.

The library never configures structlog: entries go through whatever the application set up
(or structlog's defaults).
"""

from __future__ import annotations

from typing import Any, NoReturn

import structlog
from structlog.typing import FilteringBoundLogger

__all__ = ["FilteringBoundLogger", "get_logger"]

#: Module-level logger on the ``event_collector`` name; queues bind their id to it.
logger: FilteringBoundLogger = structlog.get_logger("event_collector")


def _drop(_: Any, __: str, ___: Any) -> NoReturn:
    raise structlog.DropEvent


_silent: FilteringBoundLogger = structlog.wrap_logger(
    structlog.PrintLogger(), processors=[_drop], wrapper_class=structlog.BoundLogger
)


def get_logger(enabled: bool, **bindings: Any) -> FilteringBoundLogger:
    """
    Return the library logger with ``bindings``, or one that emits nothing.
    """
    if not enabled:
        return _silent
    return logger.bind(**bindings)
