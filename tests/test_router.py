"""
Routing: SimpleRouter's selection, delivery, and custom routers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings

from event_collector import (
    Collector,
    CollectorQueue,
    Delivery,
    Error,
    Ok,
    Payload,
    ResultList,
    Router,
    SimpleRouter,
)

from .conftest import echo, fail, sleeper
from .strategies import collector_keys, payloads


def collectors() -> list[Collector]:
    return [
        Collector("a", echo, topics=["t1"]),
        Collector("b", echo, topics=["t2", "t1"]),
        Collector("c", echo),
    ]


def keys(chosen: Sequence[Collector]) -> list[str]:
    return [c.key for c in chosen]


class TestSelect:
    """SimpleRouter picks collectors by key, topic or all, in registration order."""

    def test_key(self) -> None:
        router = SimpleRouter(collectors())
        assert keys(router.select(Payload(1, Delivery.KEY, ["b"]))) == ["b"]
        assert keys(router.select(Payload(1, Delivery.KEY, ["c", "a"]))) == ["a", "c"]
        assert keys(router.select(Payload(1, Delivery.KEY, ["nobody"]))) == []
        assert keys(router.select(Payload(1, Delivery.KEY, ["nobody", "c"]))) == ["c"]

    def test_topic(self) -> None:
        router = SimpleRouter(collectors())
        assert keys(router.select(Payload(1, Delivery.TOPIC, topics=["t1"]))) == ["a", "b"]
        assert keys(router.select(Payload(1, Delivery.TOPIC, topics=["t2"]))) == ["b"]
        assert keys(router.select(Payload(1, Delivery.TOPIC, topics=["t"]))) == []  # exact

    def test_broadcast(self) -> None:
        router = SimpleRouter(collectors())
        assert keys(router.select(Payload(1))) == ["a", "b", "c"]


class TestDeliver:
    """deliver runs the chosen collectors concurrently and keeps their order."""

    async def test_nothing_matched(self) -> None:
        results = await SimpleRouter(collectors()).deliver(Payload(1), [])
        assert results == ResultList([Ok(None)], [None])
        assert not results.delivered

    async def test_concurrent_in_order(self, autojump_clock: trio.abc.Clock) -> None:
        chosen = [
            Collector("slow", sleeper(1)),
            Collector("boom", fail),
            Collector("slower", sleeper(1)),
        ]
        results = await SimpleRouter(chosen).deliver(Payload("x"), chosen)
        assert trio.current_time() == 1  # not 2: they ran at the same time
        assert results.keys == ("slow", "boom", "slower")
        assert results[0] == Ok("x")
        assert results[2] == Ok("x")
        assert isinstance(results[1], Error)


class TestCustomRouters:
    """A router overrides select or handle_event; the base class alone cannot route."""

    async def test_select_override(self) -> None:
        class OnlyLast(Router):
            def select(self, payload: Payload[Any]) -> Sequence[Collector]:
                return self.collectors[-1:]

        async with CollectorQueue(
            collectors(), router=OnlyLast, autoscale=False, max_consumers=1
        ) as queue:
            results = await (await queue.get_publisher().send(1)).wait()
        assert results == ResultList([Ok(1)], ["c"])

    async def test_handle_event_override(self) -> None:
        class Doubler(Router):
            async def handle_event(self, payload: Payload[Any]) -> ResultList:
                first = await self.deliver(payload, self.collectors[:1])
                return ResultList([*first, Ok(payload.value * 2)], [*first.keys, None])

        async with CollectorQueue(
            collectors(), router=Doubler, autoscale=False, max_consumers=1
        ) as queue:
            results = await (await queue.get_publisher().send(3)).wait()
        assert results == ResultList([Ok(3), Ok(6)], ["a", None])

    def test_base_router_cannot_select(self) -> None:
        with pytest.raises(NotImplementedError, match="must override select or handle_event"):
            Router(collectors()).select(Payload(1))


@settings(max_examples=100, deadline=None)
@given(specs=collector_keys, payload=payloads())
def test_routing_reaches_exactly_the_matching_collectors(
    specs: list[tuple[str, list[str]]], payload: Payload[int]
) -> None:
    chosen = [Collector(key, echo, topics=topics) for key, topics in specs]
    router = SimpleRouter(chosen)
    if payload.delivery is Delivery.KEY:
        expected = [c for c in chosen if c.key in payload.keys]
    elif payload.delivery is Delivery.TOPIC:
        expected = [c for c in chosen if set(c.topics) & set(payload.topics)]
    else:
        expected = chosen
    selected = list(router.select(payload))
    assert selected == expected
    results = trio.run(router.deliver, payload, selected)
    if expected:
        assert results.keys == tuple(c.key for c in expected)
        assert all(result == Ok(payload.value) for result in results)
    else:
        assert results == ResultList([Ok(None)], [None])
