"""
Typing examples: mypy (strict) checks these with the tests, and a test runs them.

``assert_type`` fails type checking if the inferred type differs.
"""

from __future__ import annotations

from typing import Any, assert_type

import trio

from event_collector import (
    Collector,
    CollectorEvent,
    CollectorQueue,
    Context,
    Error,
    EventPublisher,
    Ok,
    Payload,
    Result,
    ResultList,
    SentEvent,
)


async def double(payload: Payload[Any], ctx: Context) -> Ok[int] | Error:
    """
    Return twice the payload's value.
    """
    value: int = payload.value
    return Ok(2 * value)


async def results_of(event: SentEvent[int]) -> Result[int]:
    """
    Take any kind of event, in-process or remote.
    """
    return (await event.wait()).first()


async def typed_round_trip() -> None:
    """
    Send one payload and check the result types along the way.
    """
    collector = Collector("double", double)
    assert_type(collector, Collector[int])
    queue = CollectorQueue([collector], logging=False)
    assert_type(queue, CollectorQueue[int])
    async with queue:
        publisher = queue.get_publisher()
        assert_type(publisher, EventPublisher[int])
        event = await publisher.send(Payload(21))
        assert_type(event, CollectorEvent[int])
        results = await event.wait()
        assert_type(results, ResultList[int])
        first = results.first()
        assert_type(first, Ok[int] | Error)
        match first:
            case Ok(value):
                assert_type(value, int)
                assert value == 42
            case Error():  # pragma: no cover
                raise AssertionError(first)
        assert await results_of(event) == Ok(42)
    await trio.lowlevel.checkpoint()
