"""
Events: what a send returns, a future of the event's :class:`~event_collector.ResultList`.

:class:`SentEvent` is the protocol every kind of event implements (``done``, ``get_result()``,
``await wait()``); :class:`CollectorEvent` is the in-process one, resolved by the queue's
consumers. Code that only waits for results takes a ``SentEvent`` and works the same with
the events of the distributed modes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, Final, Generic, Protocol, TypeVar, final, runtime_checkable

import trio

from ._data import Payload, Result, ResultList, _result_list, _set_result_keys, _set_results

__all__ = [
    "SCHEDULE_EVERY",
    "SCHEDULE_SLICE",
    "SEND_PAUSE",
    "YIELD_AFTER",
    "CollectorEvent",
    "EventBase",
    "SentEvent",
    "Sink",
    "make_pacer",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

#: How many non-blocking steps in a row may skip the schedule point: a ``send`` that adds to
#: a backlog, a ``wait`` on a done event, a consumer taking a waiting event. Each ``send`` and
#: ``wait`` is still a cancel point, and every ``SCHEDULE_EVERY``-th (counted per queue for
#: send/wait, per consumer for takes) yields: a task looping on them still lets the others
#: run, and a task switch (costlier than the queue's own work for a no-op event) is paid
#: once per batch instead of once per event. Consumers also yield after
#: :data:`SCHEDULE_SLICE`, and a send after :data:`YIELD_AFTER` when a consumer it woke is
#: waiting. (``trio.lowlevel.checkpoint``
#: allows the scheduler the same choice; trio issue #1757 proposes making it by time.)
SCHEDULE_EVERY: Final = 64

#: Seconds a consumer runs events in a row (processors that return without waiting) before
#: it yields, whatever the count: a slow synchronous processor does not hold the run longer.
SCHEDULE_SLICE: Final = 0.5e-3

#: Seconds a consumer woken by a ``send`` in a tight loop of sends may wait for the sending
#: task to yield: the first send after it has waited this long yields. Sends a few
#: microseconds apart then hand the consumers a batch of events per task switch, and none
#: waits much longer than this for its start.
YIELD_AFTER: Final = 100e-6

#: Seconds between two sends that make a pause: a send after a pause that wakes a consumer
#: yields to it at once. The task did something else in between (it slept, it read a
#: socket, it parsed a message), so its events come one at a time, and each starts now.
SEND_PAUSE: Final = 10e-6


def make_pacer() -> Callable[[], bool]:
    """
    Return a function that is True on every ``SCHEDULE_EVERY``-th call, for one queue.
    """
    return itertools.cycle((False,) * (SCHEDULE_EVERY - 1) + (True,)).__next__


class Sink(Protocol):
    """
    Told when each event it was given resolves (:meth:`EventBase._notify`).
    """

    def resolved(self, event: EventBase[Any]) -> None:
        """
        ``event`` has its results; called once per event, from the task that resolved it.
        """

    async def wait_for(self, event: EventBase[Any]) -> None:
        """
        Wait until ``event`` is resolved (for a ``wait()`` on an event given to a sink).
        """


@runtime_checkable
class SentEvent(Protocol[T_co]):
    """
    An event that was sent and resolves, exactly once, with a ResultList.

    Implemented by the in-process :class:`CollectorEvent` and by the events of the
    distributed modes, so that code waiting for results does not depend on where they run.
    """

    @property
    def done(self) -> bool:
        """
        Whether the results are in.
        """

    def get_result(self) -> ResultList[T_co] | None:
        """
        Return the results, or None while the event is pending.
        """

    async def wait(self) -> ResultList[T_co]:
        """
        Wait until the event is done and return its results.

        On cancellation nothing happens to the event: wait again later.
        """


class EventBase(Generic[T]):
    """
    What every event shares: a payload, and its results once they are in.

    Resolved exactly once with :meth:`_resolve`; any number of tasks may wait.
    """

    __slots__ = ("_done", "_key", "_outcome", "_pacer", "payload")

    #: The payload as sent.
    payload: Payload[Any]

    def __init__(self, payload: Payload[Any], pacer: Callable[[], bool]) -> None:
        self.payload = payload
        self._pacer = pacer
        # The results once done: a ResultList, or the lone result of a one-collector
        # delivery with its key in _key (the ResultList is then built when asked for, so a
        # finished event keeps no list and tuple of its own alive: they are per-event GC
        # load).
        self._outcome: ResultList[T] | Result[T] | None = None
        self._key: tuple[str | None, ...] = ()
        # Created by the first wait() that has to block: most events are never waited for
        # before they are done, so most never need one. Or a sink told of the resolution
        # (see _notify), which keeps its own waiters.
        self._done: trio.Event | Sink | None = None

    def __repr__(self) -> str:
        state = "pending" if self._outcome is None else "done"
        return f"<{type(self).__name__} {state} payload={self.payload!r}>"

    @property
    def done(self) -> bool:
        """
        Whether the results are in.
        """
        return self._outcome is not None

    def get_result(self) -> ResultList[T] | None:
        """
        Return the results, or None while the event is still queued or processing.

        Synchronous (the asyncio library this API comes from awaited it): use
        ``await event.wait()`` to wait for the results. Every call returns an equal
        ResultList (not always the same object).
        """
        outcome = self._outcome
        if outcome is None or type(outcome) is ResultList:
            return outcome
        return _result_list((outcome,), self._key)

    async def wait(self) -> ResultList[T]:
        """
        Wait until the event is done and return its results.

        Any number of tasks may wait; each gets an equal ResultList. Returns at once if the
        event is already done: a cancel point, and a schedule point every
        :data:`~event_collector.queue.SCHEDULE_EVERY` such calls on one queue.

        On cancellation nothing happens to the event: wait again later.
        """
        if self._outcome is not None:
            if self._pacer():
                await trio.lowlevel.checkpoint()
            else:
                await trio.lowlevel.checkpoint_if_cancelled()
        elif self._done is None or type(self._done) is trio.Event:
            if self._done is None:
                self._done = trio.Event()
            await self._done.wait()
        else:
            await self._done.wait_for(self)
        outcome = self._outcome
        if type(outcome) is ResultList:
            return outcome
        # _result_list((outcome,), self._key), inlined: one per wait.
        results: ResultList[T] = object.__new__(ResultList)
        _set_results(results, (outcome,))
        _set_result_keys(results, self._key)
        return results

    def _resolve(
        self, outcome: ResultList[T] | Result[T], key: tuple[str | None, ...] = ()
    ) -> None:
        """
        Set the results: a ResultList, or one result and its key (a 1-tuple).
        """
        if self._outcome is not None:
            raise RuntimeError("event resolved twice")
        self._outcome = outcome
        self._key = key
        done = self._done
        if done is not None:
            if type(done) is trio.Event:
                done.set()
            else:
                done.resolved(self)

    def _notify(self, sink: Sink) -> None:
        """
        Tell ``sink`` when this event resolves (at once if it has), instead of an Event.

        For code that collects many events as they complete without a task or a
        ``trio.Event`` per event; call it before anyone waits on the event.
        """
        if self._outcome is not None:
            sink.resolved(self)
        else:
            assert self._done is None, "_notify must come before any wait()"
            self._done = sink


@final
class CollectorEvent(EventBase[T]):
    """
    A payload sent to a queue and, once its collectors are done, its results.

    Returned by :meth:`~event_collector.EventPublisher.send`; works like a future and
    implements :class:`SentEvent`. Every event sent to a queue resolves exactly once,
    shutdown included.
    """

    __slots__ = ("sent_at",)

    #: ``trio.current_time()`` when the event entered the queue.
    sent_at: float

    def __init__(self, payload: Payload[Any], sent_at: float, pacer: Callable[[], bool]) -> None:
        # EventBase.__init__, inlined: one event per send.
        self.payload = payload
        self._pacer = pacer
        self._outcome = None
        self._key = ()
        self._done = None
        self.sent_at = sent_at
