"""
Collectors: a key, an async processor, an optional lifecycle, a context and topics.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeAlias, TypeVar, final

import attrs
import trio

from ._data import Context, Error, Ok, Payload, Result, _to_topics
from ._delivery import log_failure

__all__ = ["Collector", "Lifecycle", "Processor"]

T = TypeVar("T")

#: An event handler: ``async def processor(payload, ctx) -> Ok[T] | Error``.
Processor: TypeAlias = Callable[[Payload[Any], Context], Awaitable[Result[T]]]
#: Setup and teardown of a collector: called with the collector's context, it returns an
#: async context manager (an ``@asynccontextmanager`` function fits).
Lifecycle: TypeAlias = Callable[[Context], AbstractAsyncContextManager[object]]


def _is_async_callable(fn: object) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if isinstance(fn, type):
        return False  # calling a class builds an instance, it does not await anything
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 (objects with an async __call__)
    return call is not None and inspect.iscoroutinefunction(call)


def _check_key(_: object, __: attrs.Attribute[str], key: str) -> None:
    if not isinstance(key, str):
        raise TypeError(f"collector key must be a str, got {type(key).__name__}")
    if not key:
        raise ValueError("collector key must not be empty")


def _check_processor(_: object, __: object, processor: Processor[Any]) -> None:
    if not _is_async_callable(processor):
        raise TypeError(f"processor must be an async function (async def), got {processor!r}")


def _check_lifecycle(_: object, __: attrs.Attribute[Lifecycle | None], value: object) -> None:
    if value is None:
        return
    if isinstance(value, AbstractAsyncContextManager):
        raise TypeError(
            "lifecycle must be the function taking the context, not the context manager it "
            "returns: pass lifecycle, not lifecycle(ctx)"
        )
    if not callable(value):
        raise TypeError(f"lifecycle must be a callable taking the context, got {value!r}")


def _to_ctx(ctx: Context | None) -> Context:
    if ctx is None:
        return Context()
    if not isinstance(ctx, Context):
        raise TypeError(f"ctx must be a Context or None, got {type(ctx).__name__}")
    return ctx


def _check_timeout(_: object, __: attrs.Attribute[float | None], timeout: object) -> None:
    if timeout is None:
        return
    if type(timeout) is bool or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds or None, got {timeout!r}")
    if not timeout > 0 or math.isnan(timeout):
        raise ValueError(f"timeout must be > 0, got {timeout!r}")


@final
@attrs.frozen(eq=False)
class Collector(Generic[T]):
    """
    A named event handler the queue routes payloads to.

    Generic in the value its processor returns in ``Ok``: ``Collector("a", fn)`` where
    ``fn`` returns ``Ok[int] | Error`` is a ``Collector[int]``, and a queue of them gives
    ``ResultList[int]`` results.

    Args:
        key: Unique name of the collector within a queue; ``Delivery.KEY`` payloads name it.
        processor: ``async def processor(payload, ctx) -> Ok | Error``.
        lifecycle: Optional ``lifecycle(ctx)`` returning an async context manager, entered
            before the queue starts consuming and exited after it stops.
        ctx: The collector's :class:`~event_collector.Context`; None (the default) makes a new
            empty one.
        topics: Topics the collector listens to for ``Delivery.TOPIC`` payloads.
        timeout: Optional bound in seconds on each processor call; a call that exceeds it
            gives ``Error(trio.TooSlowError())``.

    Raises:
        TypeError: ``processor`` is not an async callable, ``lifecycle`` is not callable,
            ``key`` is not a str, ``topics`` is a bare str, ``ctx`` is not a Context.
        ValueError: ``key`` is empty or ``timeout`` is not positive.
    """

    key: str = attrs.field(validator=_check_key)
    processor: Processor[T] = attrs.field(validator=_check_processor)
    lifecycle: Lifecycle | None = attrs.field(
        default=None, kw_only=True, validator=_check_lifecycle
    )
    ctx: Context = attrs.field(default=None, kw_only=True, converter=_to_ctx)
    topics: tuple[str, ...] = attrs.field(default=(), kw_only=True, converter=_to_topics)
    timeout: float | None = attrs.field(default=None, kw_only=True, validator=_check_timeout)

    async def process(self, payload: Payload[Any]) -> Result[T]:
        """
        Run the processor on ``payload`` and always come back with a result.

        The one place where a processor runs. A processor that raises an exception gives
        ``Error(exc)``; one that returns anything but ``Ok``/``Error`` gives
        ``Error(TypeError)``; one that runs past ``timeout`` gives
        ``Error(trio.TooSlowError())``. Each of these is logged once, at the queue's
        ``failure_log_level``. Routers call this; custom routers should too.

        Args:
            payload: The payload to process.

        This is a checkpoint exactly when the processor is.

        On cancellation the processor sees ``trio.Cancelled``, which propagates; if the
        processor's own tasks fail while they are being cancelled (its nursery raises the
        cancellation together with their exceptions), those exceptions are its result and
        the cancellation is seen again at the caller's next checkpoint.
        """
        result: object
        try:
            if self.timeout is None:
                result = await self.processor(payload, self.ctx)
            else:
                with trio.move_on_after(self.timeout) as scope:
                    result = await self.processor(payload, self.ctx)
                if scope.cancelled_caught:
                    too_slow = trio.TooSlowError(f"processor exceeded {self.timeout} s")
                    log_failure("processor_timed_out", too_slow, collector=self.key)
                    return Error(too_slow)
        except Exception as exc:
            log_failure("processor_failed", exc, collector=self.key)
            return Error(exc)
        except BaseExceptionGroup as group:
            # A cancellation (shutdown) that reached the processor's own nursery, whose
            # children failed on their way out: the failures are this event's result.
            cancelled, failures = group.split(trio.Cancelled)
            if cancelled is None or not isinstance(failures, ExceptionGroup):
                raise
            log_failure("processor_failed", failures, collector=self.key)
            return Error(failures)
        if type(result) is Ok or type(result) is Error:
            return result
        error = TypeError(
            f"processor of collector {self.key!r} must return Ok or Error, "
            f"got {type(result).__name__}"
        )
        log_failure("processor_returned_wrong_type", error, collector=self.key)
        return Error(error)
