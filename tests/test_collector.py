"""
Collector construction rules and Collector.process.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import pytest
import structlog
import trio
import trio.testing

from event_collector import Collector, Context, Error, Ok, Payload, Result
from event_collector._logging import get_logger

from .conftest import echo, fail, sleeper


class AsyncCallable:
    async def __call__(self, payload: Payload[Any], ctx: Context) -> Result[Any]:
        return Ok("called")


class TestConstruction:
    """A collector refuses what it could not run, with a message naming the rule."""

    def test_defaults_and_own_context(self) -> None:
        first, second = Collector("a", echo), Collector("b", echo)
        assert (first.lifecycle, first.topics, first.timeout) == (None, (), None)
        assert isinstance(first.ctx, Context)
        assert first.ctx is not second.ctx

    def test_explicit_none_context(self) -> None:
        assert isinstance(Collector("a", echo, ctx=None).ctx, Context)

    def test_given_context_and_topics(self) -> None:
        ctx = Context(x=1)
        collector = Collector("a", echo, ctx=ctx, topics=["t1", "t2"], timeout=2)
        assert collector.ctx is ctx
        assert collector.topics == ("t1", "t2")
        assert collector.timeout == 2

    @pytest.mark.parametrize("processor", [AsyncCallable(), functools.partial(sleeper(0))])
    def test_async_callables_accepted(self, processor: Any) -> None:
        assert Collector("a", processor).processor is processor

    @pytest.mark.parametrize("processor", [lambda payload, ctx: Ok(1), print, "echo"])
    def test_non_async_processor(self, processor: Any) -> None:
        with pytest.raises(TypeError, match="processor must be an async function"):
            Collector("a", processor)

    def test_key_rules(self) -> None:
        with pytest.raises(ValueError, match="must not be empty"):
            Collector("", echo)
        with pytest.raises(TypeError, match="key must be a str"):
            Collector(1, echo)  # type: ignore[arg-type]  # the mistake under test

    def test_bad_lifecycle_ctx_topics(self) -> None:
        with pytest.raises(TypeError, match="lifecycle must be a callable"):
            Collector("a", echo, lifecycle="setup")  # type: ignore[arg-type]  # under test
        with pytest.raises(TypeError, match="ctx must be a Context or None"):
            Collector("a", echo, ctx={})  # type: ignore[arg-type]  # under test
        with pytest.raises(TypeError, match="topics must be a sequence of str, not a str"):
            Collector("a", echo, topics="t1")

    @pytest.mark.parametrize("timeout", [0, -1, math.nan])
    def test_timeout_must_be_positive(self, timeout: float) -> None:
        with pytest.raises(ValueError, match="timeout must be > 0"):
            Collector("a", echo, timeout=timeout)

    @pytest.mark.parametrize("timeout", [True, "1"])
    def test_timeout_must_be_a_number(self, timeout: Any) -> None:
        with pytest.raises(TypeError, match="timeout must be a number"):
            Collector("a", echo, timeout=timeout)


class TestProcess:
    """process() always comes back with a result, except on cancellation."""

    async def test_ok(self) -> None:
        assert await Collector("a", echo).process(Payload(5)) == Ok(5)

    async def test_exception_becomes_error_and_is_logged(self) -> None:
        with structlog.testing.capture_logs() as logs:
            result = await Collector("boom", fail).process(Payload("v"))
        assert isinstance(result, Error)
        assert isinstance(result.error, ValueError)
        assert logs[0]["event"] == "processor_failed"
        assert logs[0]["collector"] == "boom"
        assert logs[0]["log_level"] == "error"
        assert logs[0]["exc_info"] is result.error

    async def test_silent_logger(self) -> None:
        with structlog.testing.capture_logs() as logs:
            await Collector("boom", fail).process(Payload("v"), log=get_logger(False))
        assert logs == []

    async def test_wrong_return_type(self) -> None:
        async def wrong(payload: Payload[Any], ctx: Context) -> Result[Any]:
            return {"status": 200}  # type: ignore[return-value]  # the mistake under test

        result = await Collector("w", wrong).process(Payload(1))
        assert isinstance(result, Error)
        assert isinstance(result.error, TypeError)
        assert "collector 'w' must return Ok or Error, got dict" in str(result.error)

    async def test_timeout(self, autojump_clock: trio.abc.Clock) -> None:
        result = await Collector("slow", sleeper(5), timeout=2).process(Payload(1))
        assert isinstance(result, Error)
        assert isinstance(result.error, trio.TooSlowError)
        assert trio.current_time() == 2

    async def test_within_timeout(self, autojump_clock: trio.abc.Clock) -> None:
        assert await Collector("quick", sleeper(1), timeout=2).process(Payload(1)) == Ok(1)
        assert trio.current_time() == 1

    async def test_cancellation_propagates(self, autojump_clock: trio.abc.Clock) -> None:
        with trio.move_on_after(1) as scope:
            await Collector("slow", sleeper(5)).process(Payload(1))
            pytest.fail("not cancelled")  # pragma: no cover
        assert scope.cancelled_caught
