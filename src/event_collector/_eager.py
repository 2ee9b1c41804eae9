"""
Running a coroutine inline until it blocks: a fan-out costs no task when nothing waits.

A delivery to several collectors must run them concurrently, yet most processors finish
without ever waiting, and a task (or a nursery) per collector costs more than such a
processor. So the router starts each processor in the consumer's own task, by hand
(``coro.send(None)``): a processor that returns without yielding to trio is done, at the
cost of a call. The first one that does yield (it waits for something) is resumed in the
consumer's task as trio schedules it (:func:`finish`), and only the collectors after it go
to tasks of their own, started before it waits, so they run while it does (:class:`Join`
waits for them, and cancels them if the one in the consumer's task fails).

Resuming by hand forwards what the coroutine yields to trio and what trio sends back, so the
coroutine runs exactly as if awaited in this task: same task, same cancel scopes, same
context. Nothing here ever moves a started coroutine to another task.
"""

from __future__ import annotations

import types
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar, final

import trio

__all__ = ["Join", "finish"]

T = TypeVar("T")


@types.coroutine
def finish(coro: Coroutine[Any, Any, T], trap: object) -> Generator[Any, Any, T]:
    """
    Go on with ``coro`` from the ``trap`` it yielded, as if it had been awaited all along.
    """
    while True:
        try:
            sent = yield trap
        except BaseException as exc:  # thrown into this task: the coroutine's to handle
            try:
                trap = coro.throw(exc)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
        else:
            try:
                trap = coro.send(sent)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]


@final
class Join:
    """
    The tasks a delivery started: :meth:`wait` returns once every one has ended.

    Each task runs in a :meth:`scope` of its own, so that :meth:`cancel` stops them all, as a
    nursery cancels its children when one of them (or its own body) fails.
    """

    __slots__ = ("_cancelled", "_done", "_scopes", "pending")

    def __init__(self, pending: int) -> None:
        #: Tasks not ended yet.
        self.pending = pending
        self._done = trio.Event()
        self._scopes: list[trio.CancelScope] = []
        self._cancelled = False

    def scope(self) -> trio.CancelScope:
        """
        Return the cancel scope for one task to run in (cancelled already after cancel()).
        """
        scope = trio.CancelScope()
        if self._cancelled:
            scope.cancel()
        self._scopes.append(scope)
        return scope

    def cancel(self) -> None:
        """
        Cancel every task, those not started yet included.
        """
        self._cancelled = True
        for scope in self._scopes:
            scope.cancel()

    def ended(self) -> None:
        """
        One task has ended (however it ended).
        """
        self.pending -= 1
        if not self.pending:
            self._done.set()

    async def wait(self) -> None:
        """
        Wait until every task has ended, even if this task is cancelled meanwhile.

        The tasks write the delivery's results: the delivery must not end before they do,
        as a nursery would not. Whoever cancels this task cancels them too (the queue's
        shutdown encloses the pool's nursery), or calls :meth:`cancel` first.
        """
        if self.pending:
            with trio.CancelScope(shield=True):
                await self._done.wait()
