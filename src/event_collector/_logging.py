"""
The library's structlog logger, and the silent logger of a queue built with ``logging=False``.

The library never configures structlog: entries go through whatever the application set up.
While structlog is not configured at all, the library's entries below WARNING are dropped and
the rest go to standard error, as the standard library's ``logging`` does for an
application that set nothing up: an unconfigured program sees problems, not chatter.

Levels (the "Logging" section of the docs has the full table):

- DEBUG: pool resizes (``consumers_scaled``);
- INFO: a queue starting and stopping, the periodic metrics report;
- WARNING, by default, tunable per queue with ``failure_log_level``: one entry per failed
  event (``processor_failed``, ``processor_returned_wrong_type``, ``processor_timed_out``,
  ``router_failed``), without a traceback (the ``Error`` result holds the exception);
  ``events_cancelled_by_shutdown``;
- ERROR, with the traceback: failures of the application's own setup code, which no result
  reports (``lifecycle_setup_failed``, ``lifecycle_teardown_failed``,
  ``message_handler_failed``).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, NoReturn

import structlog
from structlog.typing import FilteringBoundLogger

__all__ = ["FilteringBoundLogger", "get_logger", "logger"]

#: Module-level logger on the ``event_collector`` name; queues bind their id to it.
logger: FilteringBoundLogger = structlog.get_logger("event_collector")


def _drop(_: Any, __: str, ___: Any) -> NoReturn:
    raise structlog.DropEvent


# Below CRITICAL every method is a no-op, ``log(level, ...)`` included; CRITICAL is dropped.
_silent: FilteringBoundLogger = structlog.wrap_logger(
    structlog.PrintLogger(),
    processors=[_drop],
    wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
)


def _unconfigured() -> FilteringBoundLogger:
    """
    Return the logger used while structlog is unconfigured: WARNING and up, to stderr.
    """
    wrapped: FilteringBoundLogger = structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    return wrapped


def get_logger(enabled: bool, **bindings: Any) -> FilteringBoundLogger:
    """
    Return the library logger with ``bindings``, or one that emits nothing.

    Call it when a queue starts, not when it is built: the application may configure
    structlog in between.
    """
    if not enabled:
        return _silent
    if not structlog.is_configured():
        return _unconfigured().bind(**bindings)
    return logger.bind(**bindings)
