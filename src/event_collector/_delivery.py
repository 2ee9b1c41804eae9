"""
What one consumer is delivering: its event's collectors, their results, where failures go.

The consumer sets an :class:`InFlight` record in its task's context; the router writes the
collectors and results into it as delivery goes, so that a consumer cancelled in the middle of
an event (queue shutdown) still resolves the event with one result per collector.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, final

import attrs
import trio

from ._data import Error, Result, ResultList, _result_list
from ._errors import ShutdownError
from ._logging import FilteringBoundLogger, get_logger

if TYPE_CHECKING:
    from ._collector import Collector

__all__ = ["InFlight", "in_flight", "log_failure"]


@final
@attrs.define(eq=False)
class InFlight:
    """
    The delivery under way in one consumer task.

    Args:
        log: The queue's logger.
        failure_level: The level of per-event failure entries (None: not logged).
        owner: The consumer pool the consumer belongs to.
    """

    log: FilteringBoundLogger
    failure_level: int | None = logging.WARNING
    owner: object = None
    #: Where a fan-out starts the collectors it runs concurrently (the pool's nursery).
    nursery: trio.Nursery | None = None
    #: The collectors of the event being delivered (set before any of them runs).
    collectors: Sequence[Collector[Any]] = ()
    #: Their results so far, while a fan-out to several collectors is running.
    results: list[Result[Any] | None] | None = None

    def cancelled_results(self) -> ResultList[Any]:
        """
        Return the results of the event whose delivery was cancelled.

        ``Ok``/``Error`` for the collectors that finished, ``Error(ShutdownError())`` for
        the rest; a single ``Error(ShutdownError())`` before any collector was chosen.
        """
        collectors, results = self.collectors, self.results
        if not collectors:
            return _result_list((Error(ShutdownError()),), (None,))
        done = results if results is not None else [None] * len(collectors)
        return _result_list(
            tuple(Error(ShutdownError()) if r is None else r for r in done),
            tuple(c.key for c in collectors),
        )


#: Set once in each consumer task (and so seen by the tasks a processor starts).
in_flight: ContextVar[InFlight] = ContextVar("event_collector_in_flight")


def log_failure(event: str, error: BaseException, **fields: Any) -> None:
    """
    Log one failed event at its queue's ``failure_level``, without a traceback.

    Outside a consumer (a processor called directly) the entry goes to the library logger
    at WARNING.
    """
    flight = in_flight.get(None)
    if flight is None:
        get_logger(True).warning(event, error=repr(error), **fields)
    elif flight.failure_level is not None:
        flight.log.log(flight.failure_level, event, error=repr(error), **fields)
