"""
Results as they come: many payloads sent, their events taken in the order they complete.

:meth:`EventPublisher.as_completed <event_collector.EventPublisher.as_completed>` returns a
:class:`Completions`, an async iterator with no task of its own: it sends while there is room
and a window of events in flight, and hands over each event once its results are in. The
events tell it themselves as they resolve (it is their sink, see ``EventBase._notify``), so
no event needs a ``trio.Event`` of its own, and no task waits per event.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

import trio

from ._event import CollectorEvent, EventBase, make_pacer

if TYPE_CHECKING:
    from ._publisher import EventPublisher

__all__ = ["DEFAULT_WINDOW", "END", "Completions"]

T = TypeVar("T")

#: Events :meth:`~event_collector.EventPublisher.as_completed` keeps in flight by default.
DEFAULT_WINDOW = 1024

#: No payload left to send.
END: Any = object()
_UNREAD: Any = object()  # the first payload, not read yet


@final
class Completions(Generic[T]):
    """
    An async iterator of sent events, each given once its results are in.

    Returned by :meth:`EventPublisher.as_completed
    <event_collector.EventPublisher.as_completed>`.
    """

    __slots__ = (
        "_closed",
        "_done",
        "_lot",
        "_next",
        "_pacer",
        "_parked",
        "_payloads",
        "_pending",
        "_publisher",
        "_window",
    )

    def __init__(
        self, publisher: EventPublisher[T], payloads: Iterable[object], window: int
    ) -> None:
        if type(window) is not int or window < 1:
            raise ValueError(f"window must be a positive int, got {window!r}")
        self._publisher = publisher
        self._payloads: Iterator[object] = iter(payloads)
        self._next: object = _UNREAD  # read by the first step, not here
        self._window = window
        self._pending = 0  # sent and not resolved yet (with _done: at most the window)
        self._done: collections.deque[CollectorEvent[T]] = collections.deque()
        self._lot = trio.lowlevel.ParkingLot()  # this iterator's task, waiting for a result
        self._parked = 0  # tasks in the lot (cheaper to ask than the lot)
        self._pacer = make_pacer()
        self._closed: trio.ClosedResourceError | None = None  # the queue stopped taking more

    def __repr__(self) -> str:
        return f"<Completions pending={self._pending} done={len(self._done)}>"

    def __aiter__(self) -> Completions[T]:
        return self

    async def __anext__(self) -> CollectorEvent[T]:
        """
        Send what there is room for; return the next event to complete.

        A cancel point; a schedule point when it waits, and every ``SCHEDULE_EVERY`` calls
        that do not.

        Raises:
            StopAsyncIteration: Every payload was sent and every event returned.
            trio.ClosedResourceError: The queue is shutting down or has stopped (what was
                sent before still completes, and is given before this is raised).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._next is _UNREAD:
            self._next = END  # in case the payloads' iterator fails
            self._next = next(self._payloads, END)
        while True:
            held = self._pending + len(self._done)
            if self._next is not END and (held <= self._window >> 1 or not held):
                # Refill once half the window is free: one call sends a run of payloads,
                # not one per event handed over.
                try:
                    # Send what the window and the queue have room for.
                    sent, self._next, error = self._publisher._send_some(
                        self._next, self._payloads, self._window - held, self
                    )
                    self._pending += sent
                    if error is not None:
                        raise error  # the payloads' iterator failed; what was sent completes
                except trio.ClosedResourceError as exc:
                    self._closed, self._next = exc, END  # hand over what was sent first
            if self._done:
                if self._pacer():
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return self._done.popleft()
            if self._pending:
                await self._park()
            elif self._next is END:
                if self._closed is not None:
                    raise trio.ClosedResourceError(str(self._closed))
                raise StopAsyncIteration
            else:
                # None of ours in flight and still no room: the queue is full of others'
                # events. Wait for room as send() does.
                event = await self._publisher.send(self._next)
                self._pending += 1
                event._notify(self)
                self._next = END  # in case the payloads' iterator fails
                self._next = next(self._payloads, END)

    async def _park(self) -> None:
        self._parked += 1
        try:
            await self._lot.park()  # resolved() unparks
        finally:
            self._parked -= 1

    # -- the sink ------------------------------------------------------------------------

    def resolved(self, event: EventBase[Any]) -> None:
        """
        ``event`` (one of ours, a CollectorEvent) has its results: hand it over next.
        """
        self._pending -= 1
        self._done.append(event)  # type: ignore[arg-type]  # ours: sent as CollectorEvents
        if self._parked:
            self._lot.unpark_all()

    async def wait_for(self, event: EventBase[Any]) -> None:
        """
        Wait until ``event`` is resolved (events are handed over done: for completeness).
        """
        while not event.done:
            await self._park()
