"""
The consumer pool: tasks that take events off the queue and hand them to the router.

Each consumer runs under a cancel scope of its own. Growing the pool spawns consumers at
once; shrinking it cancels the scopes of idle consumers only, so no consumer is ever stopped
in the middle of an event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, final

import attrs
import trio

from ._data import Error, Ok, ResultList
from ._logging import FilteringBoundLogger
from ._publisher import SCHEDULE_EVERY, CollectorEvent
from ._router import InFlight, Router, in_flight

__all__ = ["ConsumerPool"]


@attrs.define(eq=False)
class _Consumer(InFlight):
    #: Cancelled to retire the consumer, and only while it is idle.
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    #: True while waiting for an event (or just handed one and not yet awake).
    idle: bool = False
    #: Set with the scope's cancellation (``CancelScope.cancel_called`` reads the clock).
    retired: bool = False


class EventReceiver(Protocol):
    """
    The receive side of the queue's channel: a trio memory channel or an ordered one.
    """

    async def receive(self) -> CollectorEvent: ...
    def receive_nowait(self) -> CollectorEvent: ...
    def statistics(self) -> trio.MemoryChannelStatistics: ...
    def close(self) -> None: ...


#: Called after each event: (seconds it waited in the queue, seconds in service).
ServiceHook = Callable[[float, float], None]


@final
class ConsumerPool:
    """
    The consumers of one queue, all children of one nursery.

    Args:
        nursery: Where consumers run.
        channel: The queue's receive side.
        router: Delivers each event's payload.
        log: The queue's logger.
        now: The run's clock (``trio.current_time``).
        on_served: Told the wait and service time of every completed event.
        on_empty: Called once the last consumer has exited after :meth:`close`.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        channel: EventReceiver,
        router: Router,
        log: FilteringBoundLogger,
        now: Callable[[], float],
        on_served: ServiceHook,
        on_empty: Callable[[], None],
    ) -> None:
        self._nursery = nursery
        self._channel = channel
        self._router = router
        self._log = log
        self._now = now
        self._on_served = on_served
        self._on_empty = on_empty
        self._consumers: dict[_Consumer, None] = {}  # ordered: oldest first
        # Consumers spawned and not yet exited, run or not: the nursery's children. It closes
        # for good once its body is done (sealed) and this reaches 0.
        self._active = 0
        self._sealed = False
        self._closing = False
        self._finished = False
        #: Consumers waiting for an event, including those handed one and not yet awake.
        self.idle = 0
        #: Events sent to waiting consumers that have not woken up yet (so ``idle - handed``
        #: consumers are free), and events sent when none was free. The publisher counts
        #: them up, each consumer that takes an event counts one down: together they are
        #: the events sent and not yet taken.
        self.handed = 0
        self.unclaimed = 0

    @property
    def size(self) -> int:
        """
        Number of consumers running or starting.
        """
        return self._active

    @property
    def closing(self) -> bool:
        """
        Whether :meth:`close` was called.
        """
        return self._closing

    def busy(self) -> int:
        """
        Return the number of consumers processing an event now, or handed one.
        """
        return len(self._consumers) - self.idle + self.handed

    def grow(self, count: int) -> None:
        """
        Spawn ``count`` consumers, counted in :attr:`size` from now on.

        Each runs at the next schedule point and, until then, is neither idle nor busy:
        events sent meanwhile wait in the channel, which the consumer reads first. Not
        ``nursery.start``: waiting for each consumer to be ready bought nothing, since an
        event waits for a consumer either way, and it cost 3 ms per hundred consumers where
        spawning costs 0.5 ms. Growing goes on during a graceful shutdown (to drain faster)
        and stops once the last consumer has exited, when the nursery is closed.
        """
        if self._finished or count <= 0 or (self._sealed and self._active == 0):
            return
        self._active += count
        for _ in range(count):
            self._nursery.start_soon(self._consume, _Consumer(self._log), None)

    def retire(self, count: int) -> int:
        """
        Stop up to ``count`` idle consumers, newest first, and return how many were stopped.

        A retired consumer that was handed an event in the same instant passes the event on
        to a fresh consumer, so the pool may be back one consumer later.
        """
        retired = 0
        for consumer in reversed(self._consumers):
            if retired == count:
                break
            if consumer.idle and not consumer.retired:
                consumer.retired = True
                consumer.scope.cancel()
                retired += 1
        return retired

    def close(self) -> None:
        """
        Note that the queue is shutting down: the last consumer out calls ``on_empty``.
        """
        self._closing = True
        if self._active == 0:
            self._empty()

    def seal(self) -> None:
        """
        Note that the body of the pool's nursery is done.

        Once the last consumer has left, the nursery is closed and the pool starts no more.
        """
        self._sealed = True

    async def _consume(
        self,
        consumer: _Consumer,
        event: CollectorEvent | None,
    ) -> None:
        in_flight.set(consumer)
        self._consumers[consumer] = None
        router, log, now, on_served = self._router, self._log, self._now, self._on_served
        receive = self._channel.receive
        receive_nowait = self._channel.receive_nowait
        taken = 0  # events taken from the buffer since the last schedule point
        select = router.select if router._selects() else None
        key_tuples = {collector: (collector.key,) for collector in router.collectors}
        try:
            with consumer.scope:
                while True:
                    if event is None and self.unclaimed and taken < SCHEDULE_EVERY:
                        # Events are waiting: take the next without a schedule point (a
                        # cancel point still), as send() does, up to SCHEDULE_EVERY in a row.
                        await trio.lowlevel.checkpoint_if_cancelled()
                        try:
                            event = receive_nowait()
                        except trio.WouldBlock:
                            pass
                        except trio.EndOfChannel:
                            return
                        else:
                            taken += 1
                            self.unclaimed -= 1
                    if event is None:
                        taken = 0
                        consumer.idle = True
                        self.idle += 1
                        try:
                            event = await receive()
                        except trio.EndOfChannel:
                            return
                        consumer.idle = False
                        self.idle -= 1
                        if self.handed:
                            self.handed -= 1
                        elif self.unclaimed:
                            self.unclaimed -= 1
                        if consumer.retired:
                            # Retired in the instant between being handed this event and
                            # waking up: run it in a fresh consumer, not under a cancelled
                            # scope.
                            self._active += 1
                            fresh = _Consumer(self._log)
                            self._nursery.start_soon(self._consume, fresh, event)
                            return
                    payload = event.payload
                    started = now()
                    # A lone result is kept with its key; the event builds a list if asked.
                    outcome: ResultList | Ok[Any] | Error
                    key: tuple[str | None, ...] = ()
                    try:
                        if select is None:
                            consumer.collectors = ()  # until the router calls deliver
                            outcome = await router.handle_event(payload)
                            if type(outcome) is not ResultList:
                                raise TypeError(
                                    f"router must return a ResultList, got {type(outcome).__name__}"
                                )
                        else:
                            collectors = select(payload)
                            if len(collectors) == 1:
                                collector = collectors[0]
                                consumer.collectors = collectors
                                if collector.timeout is not None:
                                    result = await collector.process(payload, log=log)
                                else:
                                    # Collector.process without its own coroutine frame:
                                    # this is the per-event path.
                                    try:
                                        # typed Ok | Error, but user code may return anything
                                        returned: object = await collector.processor(
                                            payload, collector.ctx
                                        )
                                    except Exception as exc:
                                        result = collector._failed(exc, log)
                                    else:
                                        if type(returned) is Ok or type(returned) is Error:
                                            result = returned
                                        else:
                                            result = collector._wrong_type(returned)
                                outcome = result
                                key = key_tuples.get(collector) or (collector.key,)
                            else:
                                outcome = await router.deliver(payload, collectors)
                    except Exception as exc:
                        log.error("router_failed", exc_info=exc)
                        outcome, key = Error(exc), (None,)
                    except BaseException:
                        event._resolve(consumer.cancelled_results())
                        raise
                    event._resolve(outcome, key)
                    on_served(started - event.sent_at, now() - started)
                    event = None
        finally:
            del self._consumers[consumer]
            if consumer.idle:
                self.idle -= 1
                self.handed = min(self.handed, self.idle)
            self._gone()

    def _gone(self) -> None:
        """
        Account for a consumer that has exited.
        """
        self._active -= 1
        if self._closing and self._active == 0:
            self._empty()

    def _empty(self) -> None:
        self._finished = True
        self._on_empty()
