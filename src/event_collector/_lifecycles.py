"""
Collector lifecycles: entered in order before the queue consumes, exited in reverse after.

They exit after the queue's last consumer has stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeAlias

import trio

from ._collector import Collector
from ._logging import FilteringBoundLogger

__all__ = ["Entered", "enter_lifecycles", "exit_lifecycles"]

#: The lifecycles entered, with their collectors, in the order they were entered.
Entered: TypeAlias = list[tuple[Collector[Any], AbstractAsyncContextManager[object]]]


async def enter_lifecycles(
    collectors: Sequence[Collector[Any]], log: FilteringBoundLogger, timeout: float
) -> Entered:
    """
    Enter the lifecycle of each collector that has one, in order.

    Args:
        collectors: The queue's collectors.
        log: The queue's logger.
        timeout: Bounds the exits of those already entered, if one fails.

    Returns:
        What was entered, for :func:`exit_lifecycles`.

    Raises:
        TypeError: A lifecycle returned no async context manager.
        Exception: A lifecycle's setup failed; those entered before it have exited.

    On cancellation the lifecycles entered so far exit and ``trio.Cancelled`` propagates.
    """
    entered: Entered = []
    try:
        for collector in collectors:
            if collector.lifecycle is None:
                continue
            manager = collector.lifecycle(collector.ctx)
            if not isinstance(manager, AbstractAsyncContextManager):
                raise TypeError(
                    f"lifecycle of collector {collector.key!r} must return an async "
                    f"context manager, got {type(manager).__name__}"
                )
            await manager.__aenter__()
            entered.append((collector, manager))
    except BaseException as exc:
        if isinstance(exc, Exception):
            log.error("lifecycle_setup_failed", exc_info=exc)
        await exit_lifecycles(entered, log, timeout, failing=True)
        raise
    return entered


async def exit_lifecycles(
    entered: Entered, log: FilteringBoundLogger, timeout: float, *, failing: bool
) -> None:
    """
    Exit lifecycles in reverse order; a failing teardown does not stop the others.

    Teardowns are shielded from cancellation and together bounded by ``timeout`` seconds.

    Args:
        entered: What :func:`enter_lifecycles` returned.
        log: The queue's logger.
        timeout: Seconds all the teardowns together may take.
        failing: Whether the queue is already failing: then teardown errors are only
            logged.

    Raises:
        Exception: If nothing else is failing, a teardown error as itself, several in an
            ExceptionGroup (a teardown that timed out as ``trio.TooSlowError``).
    """
    errors: list[Exception] = []
    deadline = trio.current_time() + timeout
    with trio.CancelScope(shield=True):
        for collector, manager in reversed(entered):
            with trio.CancelScope(deadline=deadline) as scope:
                try:
                    await manager.__aexit__(None, None, None)
                except Exception as exc:
                    log.error("lifecycle_teardown_failed", collector=collector.key, exc_info=exc)
                    errors.append(exc)
            if scope.cancelled_caught:
                log.error("lifecycle_teardown_timed_out", collector=collector.key)
                errors.append(trio.TooSlowError(f"teardown of {collector.key!r} timed out"))
    if errors and not failing:
        if len(errors) == 1:
            raise errors[0]
        raise ExceptionGroup("lifecycle teardowns failed", errors)
