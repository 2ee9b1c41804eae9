"""
The consumer pool: tasks that take events off the queue's channel and hand them to the router.

Each consumer runs under a cancel scope of its own. Growing the pool spawns consumers at
once; shrinking it cancels the scopes of consumers parked in the channel only, so no consumer
is ever stopped with an event in hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar, final

import attrs
import trio
from trio.lowlevel import Task, enable_ki_protection

from ._channels import EMPTY, QueueChannel
from ._delivery import InFlight, in_flight
from ._event import SCHEDULE_EVERY, SCHEDULE_SLICE, CollectorEvent
from ._logging import FilteringBoundLogger
from ._router import Router

__all__ = ["ConsumerPool"]

T = TypeVar("T")

#: Called after each event: (seconds it waited in the queue, seconds in service, its
#: outcome: the ResultList, or the lone result).
ServiceHook = Callable[[float, float, object], None]


@final
@attrs.define(eq=False)
class _Consumer:
    #: Cancelled to retire the consumer (only while it is parked), or by shutdown.
    scope: trio.CancelScope
    #: What it is delivering, for partial results if it is cancelled mid-event.
    flight: InFlight


@final
class ConsumerPool(Generic[T]):
    """
    The consumers of one queue, all children of one nursery.

    Args:
        nursery: Where consumers run.
        channel: The queue's channel, which the consumers receive from.
        router: Delivers each event's payload.
        log: The queue's logger.
        failure_level: The level at which per-event failures are logged (None: not).
        now: The run's clock (``trio.current_time``).
        on_served: Told the wait and service time of every completed event, and its
            outcome (its ResultList, or its lone result).
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        channel: QueueChannel[CollectorEvent[T]],
        router: Router[T],
        log: FilteringBoundLogger,
        failure_level: int | None,
        now: Callable[[], float],
        on_served: ServiceHook,
    ) -> None:
        self._nursery = nursery
        self._channel = channel
        self._router = router
        self._log = log
        self._failure_level = failure_level
        self._now = now
        self._on_served = on_served
        self._consumers: dict[Task, _Consumer] = {}  # the running ones
        self._size = 0  # spawned, not exited and not retired
        self._starting = 0  # spawned and not yet running
        self._all_started: trio.Event | None = None  # for wait_started()
        # The last consumer not retired has left, so their nursery is closing: none can
        # start any more. Retiring never empties the pool (min_consumers >= 1); only a
        # shutdown does, or a cancellation from outside, which may come before the queue
        # has closed the pool.
        self._finished = False

    @property
    def size(self) -> int:
        """
        Consumers running or about to run; not those retired, which are on their way out.
        """
        return self._size

    @property
    def idle(self) -> int:
        """
        Consumers parked in the channel waiting for an event, or about to start.
        """
        return self._starting + self._channel.parked

    @property
    def busy(self) -> int:
        """
        Consumers with an event in hand (processing it, or handed it and about to wake).
        """
        return self._size - self._starting - self._channel.parked

    @property
    def closing(self) -> bool:
        """
        Whether the queue is shutting down (its channel is closed): the pool no longer shrinks.
        """
        return self._channel.closed

    def serves(self, flight: InFlight | None) -> bool:
        """
        Whether ``flight`` is the delivery record of one of this pool's consumers.
        """
        return flight is not None and flight.owner is self

    def grow(self, count: int) -> int:
        """
        Spawn ``count`` consumers, counted in :attr:`size` (and as idle) from now on.

        Each runs at the next schedule point; events sent meanwhile wait in the channel,
        which a new consumer reads first. Not ``nursery.start``: waiting for each consumer
        to be ready bought nothing, since an event waits for a consumer either way, and it
        cost 3 ms per hundred consumers where spawning costs 0.5 ms. Growing goes on during
        a graceful shutdown (to drain faster) and stops once the last consumer has left,
        when the nursery closes.

        Returns:
            How many were spawned: ``count``, or 0 once the last consumer has left.
        """
        if count <= 0 or self._finished:
            return 0
        self._size += count
        self._starting += count
        for _ in range(count):
            flight = InFlight(self._log, self._failure_level, owner=self, nursery=self._nursery)
            self._nursery.start_soon(self._consume, _Consumer(trio.CancelScope(), flight))
        return count

    def retire(self, count: int) -> int:
        """
        Stop up to ``count`` consumers parked in the channel, the last parked first.

        A parked consumer holds no event, and cancelling it takes it out of the channel at
        once, so no event sent afterwards can go to it: it leaves :attr:`size` at once too,
        and the pool can grow again before it has exited.

        Returns:
            How many were stopped.
        """
        if self._channel.closed:
            return 0
        retired = 0
        for task in self._channel.parked_receivers()[:count]:
            self._consumers[task].scope.cancel()
            retired += 1
        self._size -= retired
        return retired

    async def wait_started(self) -> None:
        """
        Wait until every consumer spawned so far has started (and so is parked, or busy).
        """
        if self._starting:
            self._all_started = trio.Event()
            await self._all_started.wait()
        else:
            await trio.lowlevel.checkpoint()

    @enable_ki_protection
    async def _consume(self, consumer: _Consumer) -> None:
        """
        Take events and deliver them until the channel ends or the consumer is cancelled.

        Protected from KeyboardInterrupt (which then reaches the main task at its next
        checkpoint, as in trio's own code) everywhere but inside the router and processors:
        an event taken from the channel is always resolved.
        """
        task = trio.lowlevel.current_task()
        self._starting -= 1
        if not self._starting and self._all_started is not None:
            self._all_started.set()  # it parks before the waiter runs
        self._consumers[task] = consumer
        flight = consumer.flight
        in_flight.set(flight)
        channel = self._channel
        take, park = channel.receive_nowait, channel.park
        route, now, on_served = self._router._route, self._now, self._on_served
        taken = 0  # events taken without a schedule point
        event: CollectorEvent[T] | None = None
        started = resumed = now()  # the current event's start; when this task last yielded
        try:
            with consumer.scope:
                while True:
                    # Take waiting events without a schedule point, up to SCHEDULE_EVERY in
                    # a row or for SCHEDULE_SLICE seconds, as send() does. (No cancel point
                    # per event either: processors that wait see a cancellation there, and
                    # a consumer running through instant ones sees it at the next yield.)
                    if taken >= SCHEDULE_EVERY or started - resumed >= SCHEDULE_SLICE:
                        taken = 0
                        if channel.buffer:
                            await trio.lowlevel.checkpoint()
                            started = now()
                        resumed = started
                    event = take()
                    if event is EMPTY:
                        event = None
                        taken = 0
                        event = await park()
                        started = resumed = now()
                    else:
                        taken += 1
                    outcome, key = await route(event.payload, flight)
                    event._resolve(outcome, key)
                    # One clock reading per event: this one's end is the next one's start
                    # (events taken in a row), or the next start is read after a wait.
                    ended = now()
                    on_served(started - event.sent_at, ended - started, outcome)
                    started = ended
                    event = None
        except trio.EndOfChannel:
            pass
        except BaseException:
            if event is not None:
                event._resolve(flight.cancelled_results())
            raise
        finally:
            del self._consumers[task]
            if not consumer.scope.cancel_called:  # retire() counted it out already
                self._size -= 1
            self._finished = not self._size
