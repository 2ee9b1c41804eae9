"""
The producer side: :class:`EventPublisher` and the :class:`CollectorEvent` it returns.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol, final

import attrs
import trio

from ._data import Error, Ok, Payload, ResultList, _result_list

if TYPE_CHECKING:
    from ._metrics import MetricsRecorder
    from ._pool import ConsumerPool

__all__ = ["SCHEDULE_EVERY", "CollectorEvent", "EventPublisher"]

#: How many non-blocking steps in a row may skip the schedule point: a ``send`` that adds to
#: a backlog, a ``wait`` on a done event, a consumer taking a waiting event. Each is still a
#: cancel point, and every ``SCHEDULE_EVERY``-th (counted across the process for send/wait,
#: per consumer for takes) yields: a task looping on them still lets the others run, and
#: a task switch is paid once per batch instead of once per event. A ``send`` that wakes a
#: consumer always yields to it. (``trio.lowlevel.checkpoint`` allows the scheduler the same
#: choice; trio issue #1757 proposes making it by time.)
SCHEDULE_EVERY: Final = 16


#: Called per non-blocking ``send`` or ``wait``: True on every SCHEDULE_EVERY-th call, when
#: it is a schedule point.
_schedule_now = itertools.cycle((False,) * (SCHEDULE_EVERY - 1) + (True,)).__next__


@final
@attrs.define(eq=False, repr=False)
class CollectorEvent:
    """
    A sent payload and, once its collectors are done, its results.

    Returned by :meth:`EventPublisher.send`; works like a future. Every event sent to a
    queue resolves exactly once, shutdown included.
    """

    #: The payload as sent.
    payload: Payload[Any]
    #: ``trio.current_time()`` when the event entered the queue.
    sent_at: float
    # The results once done: a ResultList, or the lone result of a one-collector delivery
    # with its key in _key (the ResultList is then built when asked for, so a finished
    # event keeps no list and tuple of its own alive: they are per-event GC load).
    _outcome: ResultList | Ok[Any] | Error | None = attrs.field(default=None, init=False)
    _key: tuple[str | None, ...] = attrs.field(default=(), init=False)
    # Created by the first wait() that has to block: most events are never waited for
    # before they are done, so most never need one.
    _done: trio.Event | None = attrs.field(default=None, init=False)

    def __repr__(self) -> str:
        state = "pending" if self._outcome is None else "done"
        return f"<CollectorEvent {state} payload={self.payload!r}>"

    @property
    def done(self) -> bool:
        """
        Whether the results are in.
        """
        return self._outcome is not None

    def get_result(self) -> ResultList | None:
        """
        Return the results, or None while the event is still queued or processing.

        Every call returns an equal ResultList (not always the same object).
        """
        outcome = self._outcome
        if outcome is None or type(outcome) is ResultList:
            return outcome
        return _result_list((outcome,), self._key)

    async def wait(self) -> ResultList:
        """
        Wait until the event is done and return its results.

        Any number of tasks may wait; each gets an equal ResultList. Returns at once if the
        event is already done: a cancel point, and a schedule point every
        :data:`~event_collector.queue.SCHEDULE_EVERY` such calls. On cancellation nothing
        happens to the event: wait again later.
        """
        if self._outcome is not None:
            if _schedule_now():
                await trio.lowlevel.checkpoint()
            else:
                await trio.lowlevel.checkpoint_if_cancelled()
        else:
            if self._done is None:
                self._done = trio.Event()
            await self._done.wait()
        results = self.get_result()
        assert results is not None
        return results

    def _resolve(
        self, outcome: ResultList | Ok[Any] | Error, key: tuple[str | None, ...] = ()
    ) -> None:
        """
        Set the results: a ResultList, or one result and its key (a 1-tuple).
        """
        if self._outcome is not None:
            raise RuntimeError("event resolved twice")
        self._outcome = outcome
        self._key = key
        if self._done is not None:
            self._done.set()


class EventSender(Protocol):
    """
    The send side of the queue's channel: a trio memory channel or an ordered one.
    """

    async def send(self, value: CollectorEvent, /) -> None: ...
    def send_nowait(self, value: CollectorEvent, /) -> None: ...
    def close(self) -> None: ...


@final
class EventPublisher:
    """
    Sends payloads to a running :class:`~event_collector.CollectorQueue`.

    Get it with :meth:`CollectorQueue.get_publisher`; it is safe to share between tasks.
    """

    __slots__ = ("_channel", "_now", "_on_backlog", "_pool", "_recorder")

    def __init__(
        self,
        channel: EventSender,
        now: Callable[[], float],
        recorder: MetricsRecorder,
        pool: ConsumerPool,
        on_backlog: Callable[[], None] | None,
    ) -> None:
        self._channel = channel
        self._now = now
        self._recorder = recorder
        self._pool = pool
        self._on_backlog = on_backlog

    def _event(self, payload: object) -> CollectorEvent:
        if type(payload) is not Payload:
            payload = Payload(payload)
        return CollectorEvent(payload, self._now())

    def _sent(self) -> bool:
        """
        Count a queued event; return whether a waiting consumer takes it.
        """
        self._recorder.arrivals += 1
        pool = self._pool
        if pool.idle > pool.handed:
            pool.handed += 1  # a waiting consumer has it (or will take it from the buffer)
            return True
        pool.unclaimed += 1
        # A backlog: every consumer busy, or two events with no consumer to take them (one
        # is usually just the next of a consumer about to wake: no reason to grow).
        if self._on_backlog is not None and (not pool.idle or pool.unclaimed > 1):
            self._on_backlog()
        return False

    async def send(self, payload: Payload[Any] | object) -> CollectorEvent:
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
        :data:`~event_collector.queue.SCHEDULE_EVERY` such sends. On cancellation nothing is
        queued.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        event = self._event(payload)
        try:
            self._channel.send_nowait(event)
        except trio.WouldBlock:
            # The queue is full. Count the event as waiting before a consumer can take it
            # (it may be taken before this task resumes), and grow the pool for it now.
            pool = self._pool
            pool.unclaimed += 1
            if self._on_backlog is not None:
                self._on_backlog()
            try:
                await self._channel.send(event)
            except BaseException:
                if pool.unclaimed:  # not sent: no consumer took it
                    pool.unclaimed -= 1
                raise
            self._recorder.arrivals += 1
        else:
            # Yield to a consumer this event wakes; an event that joins a backlog waits
            # for a busy consumer anyway, so the sender may go on (up to a point).
            if self._sent() or _schedule_now():
                await trio.lowlevel.cancel_shielded_checkpoint()
        return event

    def send_nowait(self, payload: Payload[Any] | object) -> CollectorEvent:
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
        event = self._event(payload)
        self._channel.send_nowait(event)
        self._sent()
        return event
