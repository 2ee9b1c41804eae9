"""
The producer side: :class:`EventPublisher`, which turns payloads into events on the queue.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

import trio

from ._channels import QueueChannel
from ._completions import DEFAULT_WINDOW, END, Completions
from ._data import Payload
from ._event import SEND_PAUSE, YIELD_AFTER, CollectorEvent, Sink
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

    __slots__ = (
        "_channel",
        "_now",
        "_offer",
        "_pacer",
        "_sent_at",
        "_supervisor",
        "_wake",
        "_woken_at",
    )

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
        # The channel's send_nowait without its closed check, which send() makes itself.
        self._offer = channel.offerer()
        self._now = now
        self._pacer = pacer
        self._supervisor = supervisor
        # The last wake of a consumer this publisher saw (the channel's count of wakes), and
        # when it first saw it: how long that consumer has waited for its turn to run.
        self._wake = 0
        self._woken_at = 0.0
        self._sent_at = -math.inf  # when the last send() was called

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

        Always a cancel point. A schedule point when it waits for room, when it wakes a
        consumer after a pause (:data:`~event_collector.queue.SEND_PAUSE`) or a consumer it
        woke has waited :data:`~event_collector.queue.YIELD_AFTER`, and every
        :data:`~event_collector.queue.SCHEDULE_EVERY` sends otherwise.

        On cancellation nothing is queued.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        now = self._now()
        event: CollectorEvent[T] = CollectorEvent(
            payload if type(payload) is Payload else Payload(payload), now, self._pacer
        )
        channel, supervisor = self._channel, self._supervisor
        if channel.closed:
            raise _closed()
        try:
            self._offer(event)
        except trio.WouldBlock:
            supervisor.wake()  # a full queue: grow the pool for it now
            try:
                await channel.send(event)
            except trio.ClosedResourceError:
                raise _closed() from None
            if len(channel.buffer) > supervisor.wake_above:
                supervisor.wake()  # in at last, behind a backlog the pool did not absorb
            return event
        if len(channel.buffer) > supervisor.wake_above:
            supervisor.wake()
        previous, self._sent_at = self._sent_at, now
        if channel.waking:
            # A consumer woken for the queue's events is waiting for this task to yield.
            # Yield at once if this send woke it after a pause (the task did something
            # else since its last send: its events come one by one, and each starts now);
            # else once the consumer has waited YIELD_AFTER (sends in a tight loop hand
            # over a batch of events per task switch, not one event).
            if channel.wakes != self._wake:
                self._wake, self._woken_at = channel.wakes, now
                due = now - previous >= SEND_PAUSE
            else:
                due = now - self._woken_at >= YIELD_AFTER
            if due:
                await trio.lowlevel.cancel_shielded_checkpoint()
                return event
        if self._pacer():
            await trio.lowlevel.cancel_shielded_checkpoint()
        return event

    async def send_many(self, payloads: Iterable[Payload[Any] | object]) -> list[CollectorEvent[T]]:
        """
        Queue each of ``payloads`` in order, waiting for room as :meth:`send` does.

        Args:
            payloads: Payloads (or plain values, as for :meth:`send`).

        Returns:
            Their events, in the order of ``payloads``.

        Raises:
            trio.ClosedResourceError: The queue is shutting down or has stopped: the payloads
                before it were queued and are processed.

        Always a cancel point, and a schedule point when it wakes a consumer or waits for
        room. Cancelled on entry, it sends nothing; cancelled while it waits for room, the
        payloads queued so far are processed and the rest are not sent. To take the results
        as they come, see :meth:`as_completed`.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        events: list[CollectorEvent[T]] = []
        send_nowait = self.send_nowait
        for payload in payloads:
            try:
                events.append(send_nowait(payload))
            except trio.WouldBlock:
                events.append(await self.send(payload))
        if self._channel.waking:
            await trio.lowlevel.cancel_shielded_checkpoint()  # let the consumers start
        return events

    def as_completed(
        self, payloads: Iterable[Payload[Any] | object], *, window: int = DEFAULT_WINDOW
    ) -> Completions[T]:
        """
        Send ``payloads`` and iterate over their events as each completes.

        ``async for event in publisher.as_completed(payloads): ...`` gives every event once
        its results are in (``event.get_result()``), in the order they complete. It sends
        as it goes, with at most ``window`` of its events sent and not yet given, and waits
        for room in the queue as :meth:`send` does: an endless iterable works too, and a
        slow loop does not make it hold more. No task and
        no ``trio.Event`` per event: the cheapest way to run a batch.

        Args:
            payloads: Payloads (or plain values, as for :meth:`send`), read lazily: from
                the first step of the iteration on, as room allows.
            window: How many of its events may be sent and not yet given at once.

        Raises:
            ValueError: ``window`` is not a positive int.

        Each step is a cancel point. Leaving the loop early stops the sending; events
        already sent are processed as usual. If the queue stops, the events sent before
        are given first, then the iteration raises ``trio.ClosedResourceError``. An
        exception from ``payloads`` comes out of the iteration at once (the events sent
        before it are processed as usual).
        """
        return Completions(self, payloads, window)

    def _send_some(
        self, first: object, payloads: Iterator[object], room: int, sink: Sink
    ) -> tuple[int, object, BaseException | None]:
        """
        Queue ``first`` and what follows in ``payloads``, at most ``room``, while room lasts.

        :meth:`send_nowait` in a loop, for :meth:`as_completed`: each event is told to
        ``sink``, and all are sent at the same time (one clock reading).

        Returns:
            How many were queued; the first payload not queued (``END`` if none is left);
            the exception ``payloads`` raised or a payload caused, if any (what was
            queued before stays queued).

        Raises:
            trio.ClosedResourceError: As :meth:`send_nowait`, before queuing anything.
        """
        channel, pacer = self._channel, self._pacer
        if channel.closed:
            raise _closed()
        offer, now, sent = self._offer, self._now(), 0
        payload = first
        try:
            while sent < room:
                event: CollectorEvent[T] = CollectorEvent(
                    payload if type(payload) is Payload else Payload(payload), now, pacer
                )
                offer(event)  # send_nowait without the closed check made above
                event._done = sink  # event._notify(sink), inlined: it cannot be done yet
                sent += 1
                payload = next(payloads, END)
                if payload is END:
                    break
        except trio.WouldBlock:
            self._supervisor.wake()  # a full queue: grow the pool for it now
        except BaseException as exc:  # from the payloads' iterator, or a payload it gave
            return sent, END, exc  # (not queued: Payload(...) refused it, or its priority)
        finally:
            if len(channel.buffer) > self._supervisor.wake_above:
                self._supervisor.wake()
        return sent, payload, None

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
        if channel.closed:
            raise _closed()
        try:
            self._offer(event)
        except trio.WouldBlock:
            supervisor.wake()  # a full queue: grow the pool for it now
            raise
        if len(channel.buffer) > supervisor.wake_above:
            supervisor.wake()
        return event
