"""
The producer side: :class:`EventPublisher`, which turns payloads into events on the queue.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

import trio

from ._channels import QueueChannel
from ._data import Payload
from ._event import YIELD_AFTER, CollectorEvent
from ._public import NoPublicConstructor

if TYPE_CHECKING:
    from ._scaling import Supervisor

__all__ = ["EventPublisher"]

T = TypeVar("T")


def _closed() -> trio.ClosedResourceError:
    return trio.ClosedResourceError(
        "the collector queue is shut down or shutting down: it takes no more events"
    )


@final
class EventPublisher(Generic[T], metaclass=NoPublicConstructor):
    """
    Sends payloads to a running :class:`~event_collector.CollectorQueue`.

    Get it with :meth:`CollectorQueue.get_publisher`; it is safe to share between tasks.
    """

    __slots__ = ("_channel", "_now", "_pacer", "_supervisor", "_yielded_at")

    @classmethod
    def _new(
        cls,
        channel: QueueChannel[CollectorEvent[T]],
        now: Callable[[], float],
        pacer: Callable[[], bool],
        supervisor: Supervisor,
    ) -> EventPublisher[T]:
        """
        Build the publisher of a starting queue (users never build one: no ``__init__``).
        """
        publisher: EventPublisher[T] = cls._create()
        publisher._init(channel, now, pacer, supervisor)
        return publisher

    def _init(
        self,
        channel: QueueChannel[CollectorEvent[T]],
        now: Callable[[], float],
        pacer: Callable[[], bool],
        supervisor: Supervisor,
    ) -> None:
        self._channel = channel
        self._now = now
        self._pacer = pacer
        self._supervisor = supervisor
        self._yielded_at = -math.inf  # when a send last yielded (trio clock)

    def __repr__(self) -> str:
        return f"<EventPublisher at {id(self):#x}>"

    async def send(self, payload: Payload[Any] | object) -> CollectorEvent[T]:
        """
        Queue ``payload``, waiting for room when the queue is at ``max_queue_size``.

        Args:
            payload: A :class:`~event_collector.Payload`; any other value is sent as
                ``Payload(value)`` (broadcast).

        Returns:
            The event, to ``await event.wait()`` for its results or to ignore.

        Raises:
            trio.ClosedResourceError: The queue is shutting down or has stopped.

        Always a cancel point. A schedule point when it wakes a consumer (to let it start)
        or waits for room; a send that adds to a backlog is one every
        :data:`~event_collector.queue.SCHEDULE_EVERY` such sends.

        On cancellation nothing is queued.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        now = self._now()
        event: CollectorEvent[T] = CollectorEvent(
            payload if type(payload) is Payload else Payload(payload), now, self._pacer
        )
        channel, supervisor = self._channel, self._supervisor
        try:
            channel.send_nowait(event)
        except trio.WouldBlock:
            supervisor.wake()  # a full queue: grow the pool for it now
            try:
                await channel.send(event)
            except trio.ClosedResourceError:
                raise _closed() from None
            if channel.queued > supervisor.wake_above:
                supervisor.wake()  # in at last, behind a backlog the pool did not absorb
            self._yielded_at = self._now()
            return event
        except trio.ClosedResourceError:
            raise _closed() from None
        if channel.queued > supervisor.wake_above:
            supervisor.wake()
        if channel.waking and now - self._yielded_at >= YIELD_AFTER:
            # A consumer woken for the queue's events waits for this task to yield, which
            # it has not done for a while: let the consumer start now. (Sends in a tight
            # loop go on, and it starts at the next schedule point: a task switch per
            # event would cost more than the event.)
            self._yielded_at = now
            await trio.lowlevel.cancel_shielded_checkpoint()
        elif self._pacer():
            self._yielded_at = now
            await trio.lowlevel.cancel_shielded_checkpoint()
        return event

    def send_nowait(self, payload: Payload[Any] | object) -> CollectorEvent[T]:
        """
        Queue ``payload`` if there is room now.

        Args:
            payload: As for :meth:`send`.

        Returns:
            The event.

        Raises:
            trio.WouldBlock: The queue is at ``max_queue_size``; nothing was queued.
            trio.ClosedResourceError: The queue is shutting down or has stopped.
        """
        event: CollectorEvent[T] = CollectorEvent(
            payload if type(payload) is Payload else Payload(payload), self._now(), self._pacer
        )
        channel, supervisor = self._channel, self._supervisor
        try:
            channel.send_nowait(event)
        except trio.WouldBlock:
            supervisor.wake()  # a full queue: grow the pool for it now
            raise
        except trio.ClosedResourceError:
            raise _closed() from None
        if channel.queued > supervisor.wake_above:
            supervisor.wake()
        return event
