"""
Routers: which collectors receive a payload, and running them.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any, final

import attrs
import trio

from ._collector import Collector
from ._data import _KEY, _TOPIC, Error, Ok, Payload, ResultList, _AnyResult, _result_list
from ._errors import ShutdownError
from ._logging import FilteringBoundLogger, logger

__all__ = ["Router", "SimpleRouter"]


#: The result of an event that matched no collector: one ``Ok(None)``, nothing delivered.
NOT_DELIVERED = _result_list((Ok(None),), (None,))


@attrs.define(eq=False)
class InFlight:
    """
    What one consumer task is delivering right now.

    :meth:`Router.deliver` records the collectors it runs and their results as they come, so
    that when shutdown cancels the consumer mid-event the event still gets one result per
    collector: ``Ok`` for those that finished, ``Error(ShutdownError())`` for the rest.
    """

    log: FilteringBoundLogger
    #: The collectors of the event being delivered (set before any of them runs).
    collectors: Sequence[Collector] = ()
    #: Their results so far, while a fan-out to several collectors is running.
    results: list[_AnyResult | None] | None = None

    def cancelled_results(self) -> ResultList:
        """
        Return the results of the event whose delivery was cancelled.
        """
        collectors, results = self.collectors, self.results
        if not collectors:
            return _result_list((Error(ShutdownError()),), (None,))
        done = results if results is not None else [None] * len(collectors)
        return _result_list(
            tuple(Error(ShutdownError()) if r is None else r for r in done),
            tuple(c.key for c in collectors),
        )


#: Set once in each consumer task; read by :meth:`Router.deliver`.
in_flight: ContextVar[InFlight] = ContextVar("event_collector_in_flight")


class Router:
    """
    Base class of routers: given a payload, run the right collectors and return results.

    The queue builds its router once, as ``router_class(collectors)``, and its consumers
    hand it every event. A subclass overrides one of two methods:

    - :meth:`select`, to choose the collectors; the queue then runs them (concurrently
      when there are several) and gathers their results. This is the fast path;
    - :meth:`handle_event`, to take over delivery entirely (the reference API). Running the
      chosen collectors through :meth:`deliver` keeps concurrency, ordered results, logging
      and a per-collector answer at shutdown.

    Args:
        collectors: The queue's collectors, in registration order.
    """

    def __init__(self, collectors: Sequence[Collector]) -> None:
        self.collectors: tuple[Collector, ...] = tuple(collectors)

    @classmethod
    def _selects(cls) -> bool:
        """
        Whether delivery is the default one, driven by :meth:`select`.
        """
        return cls.handle_event is Router.handle_event

    def select(self, payload: Payload[Any]) -> Sequence[Collector]:
        """
        Return the collectors ``payload`` goes to, in the order results should come back.

        An empty sequence means nothing is delivered: the event gets a single ``Ok(None)``.
        """
        raise NotImplementedError(f"{type(self).__name__} must override select or handle_event")

    async def handle_event(self, payload: Payload[Any]) -> ResultList:
        """
        Deliver ``payload`` and return one result per collector reached.

        The default runs the collectors :meth:`select` picks. An override may return any
        ResultList; an exception other than cancellation, or a return value that is not a
        ResultList, becomes the event's single ``Error``.

        This is a checkpoint exactly when the processors are. On cancellation (queue
        shutdown) the running processors are cancelled and the queue resolves the event.
        """
        return await self.deliver(payload, self.select(payload))

    async def deliver(self, payload: Payload[Any], collectors: Sequence[Collector]) -> ResultList:
        """
        Run ``payload`` through ``collectors`` concurrently and gather their results.

        Args:
            payload: The payload to deliver.
            collectors: Who receives it; results come back in this order.

        Returns:
            One result per collector, keyed by collector, or ``Ok(None)`` with no key when
            ``collectors`` is empty (nothing delivered).

        This is a checkpoint exactly when the processors are. On cancellation the running
        processors are cancelled and ``trio.Cancelled`` propagates.
        """
        flight = in_flight.get(None)
        log = logger if flight is None else flight.log
        if len(collectors) == 1:
            collector = collectors[0]
            if flight is not None:
                flight.collectors = collectors
            result = await collector.process(payload, log=log)
            return _result_list((result,), (collector.key,))
        if not collectors:
            return NOT_DELIVERED
        results: list[_AnyResult | None] = [None] * len(collectors)
        if flight is not None:
            flight.collectors, flight.results = collectors, results

        async def run(index: int, collector: Collector) -> None:
            results[index] = await collector.process(payload, log=log)

        last = len(collectors) - 1
        async with trio.open_nursery() as nursery:
            for index in range(last):
                nursery.start_soon(run, index, collectors[index])
            await run(last, collectors[last])  # in this task: one spawn fewer
        if flight is not None:
            flight.results = None  # on cancellation they stay, for the consumer to read
        return _result_list(
            tuple(r for r in results if r is not None), tuple(c.key for c in collectors)
        )


@final
class SimpleRouter(Router):
    """
    The default router: delivery by key, by topic or to everyone, as the payload says.

    - ``Delivery.KEY``: the collectors whose key is in ``payload.keys``;
    - ``Delivery.TOPIC``: the collectors sharing at least one exact topic with the payload;
    - ``Delivery.BROADCAST``: every collector.

    Results follow collector registration order. A payload that matches no collector gets a
    single ``Ok(None)`` and is not delivered (``ResultList.delivered`` is False).
    """

    def __init__(self, collectors: Sequence[Collector]) -> None:
        super().__init__(collectors)
        self._by_key = {collector.key: (collector,) for collector in self.collectors}

    def select(self, payload: Payload[Any]) -> tuple[Collector, ...]:
        """
        Return the collectors ``payload`` goes to, in registration order.
        """
        delivery = payload.delivery
        if delivery is _KEY:
            keys = payload.keys
            if len(keys) == 1:
                return self._by_key.get(keys[0], ())
            wanted = set(keys)
            return tuple(c for c in self.collectors if c.key in wanted)
        if delivery is _TOPIC:
            topics = set(payload.topics)
            return tuple(c for c in self.collectors if not topics.isdisjoint(c.topics))
        return self.collectors
