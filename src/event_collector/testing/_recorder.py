"""
:class:`Recorder`: processors for tests that keep what they received and behave as told.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, final

import attrs
import trio

from .._collector import Collector, Lifecycle
from .._data import Context, Error, Ok, Payload, Result

__all__ = ["Received", "Recorder", "recorder_of"]


@final
@attrs.frozen
class Received:
    """
    One payload as a recording collector received it.

    Attributes:
        key (str): The key of the collector that received the payload.
        payload (Payload[Any]): The payload, as the router handed it over.
        ctx (Context): The collector's context (the one its lifecycle set up).
        at (float): ``trio.current_time()`` when the processor was called.
    """

    key: str
    payload: Payload[Any]
    ctx: Context
    at: float


def _check_delay(delay: object) -> float:
    if type(delay) is bool or not isinstance(delay, int | float):
        raise TypeError(f"delay must be a number of seconds, got {delay!r}")
    if not delay >= 0:  # NaN too
        raise ValueError(f"delay must be >= 0, got {delay!r}")
    return float(delay)


def _check_result(result: object) -> None:
    if result is None or type(result) is Ok or type(result) is Error or callable(result):
        return
    raise TypeError(
        f"result must be Ok, Error, a function of the payload or None, got {result!r}: "
        f"use Ok({result!r})"
    )


@final
class Recorder:
    """
    The processor of one or more test collectors: it records every payload, then behaves.

    Each call appends a :class:`Received` to ``received`` (before any checkpoint, so
    the order is the order in which the queue started processing), then sleeps ``delay``
    seconds if it is positive, then raises ``raises`` if given, else returns ``result``.
    Build the collectors with :meth:`collector`; one recorder may serve several of them.

    Args:
        result: What the processor returns: ``None`` (the default) for
            ``Ok(payload.value)``, an ``Ok`` or ``Error`` to return every time, or a
            function of the payload returning one (it may raise, too).
        raises: An exception raised on every call instead of returning (its traceback is
            reset each time): an ``Exception`` becomes an ``Error`` result, while a
            ``BaseException`` (``KeyboardInterrupt``, say) comes out of the queue as itself.
        delay: Seconds to sleep before returning or raising; ``math.inf`` never returns
            (the collector's ``timeout`` or the queue's shutdown ends the call). 0, the
            default, returns without a checkpoint.

    Raises:
        TypeError: ``result``, ``raises`` or ``delay`` has the wrong type.
        ValueError: ``delay`` is negative.

    Attributes:
        received (list[Received]): Every payload received, in the order the calls started.
        result: The ``result`` given.
        raises: The exception given, or None.
        delay (float): The delay given, in seconds.
    """

    def __init__(
        self,
        *,
        result: Result[Any] | Callable[[Payload[Any]], Result[Any]] | None = None,
        raises: BaseException | None = None,
        delay: float = 0.0,
    ) -> None:
        _check_result(result)
        if raises is not None and not isinstance(raises, BaseException):
            raise TypeError(f"raises must be an exception instance or None, got {raises!r}")
        self.result = result
        self.raises = raises
        self.delay = _check_delay(delay)
        self.received: list[Received] = []

    def __repr__(self) -> str:
        options = [
            f"{name}={value!r}"
            for name, value, default in (
                ("result", self.result, None),
                ("raises", self.raises, None),
                ("delay", self.delay, 0.0),
            )
            if value != default
        ]
        return f"Recorder({', '.join(options)})"

    def collector(
        self,
        key: str,
        *,
        topics: Iterable[str] = (),
        timeout: float | None = None,
        lifecycle: Lifecycle | None = None,
        ctx: Context | None = None,
    ) -> Collector[Any]:
        """
        Return a collector named ``key`` whose processor is this recorder.

        Args:
            key: The collector's key; recorded with each payload it receives.
            topics: As for :class:`~event_collector.Collector`.
            timeout: As for :class:`~event_collector.Collector`.
            lifecycle: As for :class:`~event_collector.Collector`.
            ctx: As for :class:`~event_collector.Collector`.
        """
        return Collector(
            key,
            _RecordingProcessor(self, key),
            topics=topics,
            timeout=timeout,
            lifecycle=lifecycle,
            ctx=ctx,
        )

    @property
    def payloads(self) -> list[Payload[Any]]:
        """
        The payloads received, in order.
        """
        return [received.payload for received in self.received]

    @property
    def values(self) -> list[Any]:
        """
        The values of the payloads received, in order.
        """
        return [received.payload.value for received in self.received]

    def received_by(self, key: str) -> list[Payload[Any]]:
        """
        Return the payloads the collector named ``key`` received, in order.
        """
        return [received.payload for received in self.received if received.key == key]

    def clear(self) -> None:
        """
        Forget what was received (between the runs of one test).
        """
        self.received.clear()

    async def _process(self, key: str, payload: Payload[Any], ctx: Context) -> Result[Any]:
        self.received.append(Received(key, payload, ctx, trio.current_time()))
        if self.delay > 0:  # math.inf: forever
            await trio.sleep(self.delay)
        if self.raises is not None:
            raise self.raises.with_traceback(None)
        if self.result is None:
            return Ok(payload.value)
        if type(self.result) is Ok or type(self.result) is Error:
            return self.result
        assert callable(self.result)
        return self.result(payload)


@final
@attrs.frozen
class _RecordingProcessor:
    """
    The processor of one collector of a recorder: the recorder and the collector's key.
    """

    recorder: Recorder
    key: str

    def __repr__(self) -> str:
        return repr(self.recorder)

    async def __call__(self, payload: Payload[Any], ctx: Context) -> Result[Any]:
        return await self.recorder._process(self.key, payload, ctx)


def recorder_of(collector: Collector[Any]) -> Recorder:
    """
    Return the recorder behind a collector made by :meth:`Recorder.collector`.

    For collectors drawn by :func:`event_collector.testing.strategies.collector_sets`.

    Raises:
        TypeError: The collector's processor is not a recorder.
    """
    processor = collector.processor
    if not isinstance(processor, _RecordingProcessor):
        raise TypeError(
            f"collector {collector.key!r} was not made by Recorder.collector(): "
            f"its processor is {processor!r}"
        )
    return processor.recorder
