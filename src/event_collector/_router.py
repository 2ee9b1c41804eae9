"""
Routers: which collectors receive a payload, and running them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar, final

import trio
from trio.lowlevel import disable_ki_protection

from ._collector import Collector
from ._data import _KEY, _TOPIC, Error, Ok, Payload, Result, ResultList, _result_list
from ._delivery import InFlight, in_flight, log_failure
from ._eager import Join, finish
from ._errors import ShutdownError

__all__ = ["Router", "SimpleRouter"]

T = TypeVar("T")

#: The result of an event that matched no collector: one ``Ok(None)``, nothing delivered.
NOT_DELIVERED: ResultList[Any] = _result_list((Ok(None),), (None,))


class Router(Generic[T]):
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

    def __init__(self, collectors: Sequence[Collector[T]]) -> None:
        self.collectors: tuple[Collector[T], ...] = tuple(collectors)
        # The 1-tuple of each collector's key, made once: a one-collector result keeps it.
        self._keys = {collector: (collector.key,) for collector in self.collectors}
        self._selects = type(self).handle_event is Router.handle_event
        # Collectors by key, where select() is SimpleRouter's own: _route looks a one-key
        # payload up here itself, without the call.
        self._key_routes: dict[str, tuple[Collector[T], ...]] | None = None

    def select(self, payload: Payload[Any]) -> Sequence[Collector[T]]:
        """
        Return the collectors ``payload`` goes to, in the order results should come back.

        An empty sequence means nothing is delivered: the event gets a single ``Ok(None)``.
        """
        raise NotImplementedError(f"{type(self).__name__} must override select or handle_event")

    async def handle_event(self, payload: Payload[Any]) -> ResultList[T]:
        """
        Deliver ``payload`` and return one result per collector reached.

        The default runs the collectors :meth:`select` picks. An override may return any
        ResultList; an exception other than cancellation, or a return value that is not a
        ResultList, becomes the event's single ``Error``.

        This is a checkpoint exactly when the processors are. On cancellation (queue
        shutdown) the running processors are cancelled and the queue resolves the event.
        """
        return await self.deliver(payload, self.select(payload))

    async def deliver(
        self, payload: Payload[Any], collectors: Sequence[Collector[T]]
    ) -> ResultList[T]:
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
        if len(collectors) == 1:
            collector = collectors[0]
            if flight is not None:
                flight.collectors = collectors
            return _result_list((await collector.process(payload),), (collector.key,))
        if not collectors:
            return NOT_DELIVERED
        results: list[Result[T] | None] = [None] * len(collectors)
        if flight is not None:
            flight.collectors, flight.results = collectors, results
        await _gather(payload, collectors, results)
        if flight is not None:
            flight.results = None  # on cancellation they stay, for the consumer to read
        return _result_list(
            tuple(r for r in results if r is not None), tuple(c.key for c in collectors)
        )

    async def _fan_out(
        self, payload: Payload[Any], collectors: Sequence[Collector[T]], flight: InFlight
    ) -> ResultList[T]:
        """
        :meth:`deliver` for a consumer of the queue, without a task per collector.

        Only where the queue itself routes (``select``): no cancel scope of a router's own
        lies between the consumer and the processors, so the collectors' tasks may live in
        the pool's nursery (see _eager). Each processor starts in this task; those that
        finish without waiting cost a call; at the first that waits, the rest start as tasks
        beside it. A BaseException (not an Exception: ``process`` catches those) from one
        stops the others, as out of a nursery.
        """
        if not collectors:
            return NOT_DELIVERED
        nursery = flight.nursery
        assert nursery is not None
        results: list[Result[T] | None] = [None] * len(collectors)
        flight.collectors, flight.results = collectors, results
        for index, collector in enumerate(collectors):
            coro = collector.process(payload)
            try:
                trap = coro.send(None)  # a BaseException propagates: the rest never start
            except StopIteration as done:
                results[index] = done.value
                continue
            rest = range(index + 1, len(collectors))
            join = Join(len(rest))
            for later in rest:
                nursery.start_soon(_run, payload, collectors[later], results, later, join)
            try:
                results[index] = await finish(coro, trap)
            except BaseException:
                join.cancel()  # the rest stop too, as a nursery's children would
                raise
            finally:
                await join.wait()
            if None in results:  # one of the rest was cancelled (a shutdown): so is this
                await trio.lowlevel.checkpoint_if_cancelled()
            break
        flight.results = None  # on cancellation they stay, for the consumer to read
        return _result_list(
            tuple(Error(ShutdownError()) if r is None else r for r in results),
            tuple(c.key for c in collectors),
        )

    @disable_ki_protection
    async def _route(
        self, payload: Payload[Any], flight: InFlight
    ) -> tuple[ResultList[T] | Result[T], tuple[str | None, ...]]:
        """
        Deliver ``payload`` for a consumer: the results, or a lone result and its key.

        The consumer's own code is protected from KeyboardInterrupt; this runs the router's
        and the processors' code, which is not, as no task's code is by default.

        A router failure (an exception from ``select`` or ``handle_event``, or a
        ``handle_event`` that returns no ResultList) is the event's single ``Error``.
        """
        try:
            if not self._selects:
                flight.collectors = ()  # until the router calls deliver
                results = await self.handle_event(payload)
                if type(results) is not ResultList:
                    raise TypeError(
                        f"router must return a ResultList, got {type(results).__name__}"
                    )
                return results, ()
            collectors: Sequence[Collector[T]]
            routes = self._key_routes
            if routes is not None and payload.delivery is _KEY and len(payload.keys) == 1:
                collectors = routes.get(payload.keys[0], ())  # SimpleRouter.select, inlined
            else:
                collectors = self.select(payload)
            if len(collectors) != 1:
                if flight.nursery is None:
                    return await self.deliver(payload, collectors), ()
                return await self._fan_out(payload, collectors, flight), ()
            collector = collectors[0]
            flight.collectors = collectors
            result = await collector.process(payload)
            return result, self._keys.get(collector) or (collector.key,)
        except Exception as exc:
            log_failure("router_failed", exc)
            return Error(exc), (None,)


async def _run(
    payload: Payload[Any],
    collector: Collector[T],
    results: list[Result[T] | None],
    index: int,
    join: Join,
) -> None:
    """
    Run one collector of a fan-out in a task of its own.
    """
    try:
        with join.scope():
            results[index] = await collector.process(payload)
    finally:
        join.ended()


async def _gather(
    payload: Payload[Any], collectors: Sequence[Collector[T]], results: list[Result[T] | None]
) -> None:
    """
    Run ``collectors`` concurrently in a nursery, nested in the caller's cancel scopes.
    """

    async def run(index: int, collector: Collector[T]) -> None:
        results[index] = await collector.process(payload)

    last = len(collectors) - 1
    async with trio.open_nursery() as nursery:
        for index in range(last):
            nursery.start_soon(run, index, collectors[index])
        await run(last, collectors[last])  # in this task: one spawn fewer


@final
class SimpleRouter(Router[T]):
    """
    The default router: delivery by key, by topic or to everyone, as the payload says.

    - ``Delivery.KEY``: the collectors whose key is in ``payload.keys``;
    - ``Delivery.TOPIC``: the collectors sharing at least one exact topic with the payload;
    - ``Delivery.BROADCAST``: every collector.

    Results follow collector registration order. A payload that matches no collector gets a
    single ``Ok(None)`` and is not delivered (``ResultList.delivered`` is False).
    """

    def __init__(self, collectors: Sequence[Collector[T]]) -> None:
        super().__init__(collectors)
        self._by_key: dict[str, tuple[Collector[T], ...]] = {
            collector.key: (collector,) for collector in self.collectors
        }
        if type(self).select is SimpleRouter.select:
            self._key_routes = self._by_key

    def select(self, payload: Payload[Any]) -> tuple[Collector[T], ...]:
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
