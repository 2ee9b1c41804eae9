"""
Routing: SimpleRouter's selection, Router.deliver, and custom routers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import structlog
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from event_collector import (
    Collector,
    CollectorQueue,
    Context,
    Delivery,
    Error,
    Ok,
    Payload,
    Result,
    ResultList,
    Router,
    SimpleRouter,
)
from event_collector.testing import Recorder, assert_routed_exactly, recorder_of
from event_collector.testing.strategies import collector_sets, payloads

from .conftest import Processor, echo, fail, sleeper


def collectors() -> list[Collector[Any]]:
    """
    Three collectors: a listens to t1, b to t2 and t1, c to nothing.
    """
    return [
        Collector("a", echo, topics=["t1"]),
        Collector("b", echo, topics=["t2", "t1"]),
        Collector("c", echo),
    ]


def keys(chosen: Sequence[Collector[Any]]) -> list[str]:
    return [c.key for c in chosen]


def by_key(*processors: tuple[str, Processor]) -> list[Collector[Any]]:
    return [Collector(key, processor) for key, processor in processors]


def timed(log: list[tuple[str, float]], key: str, seconds: float) -> tuple[str, Processor]:
    """
    A collector spec whose processor sleeps ``seconds``, then logs its key and the time.
    """

    async def process(payload: Payload[Any], ctx: Context) -> Result[Any]:
        await trio.sleep(seconds)
        log.append((key, trio.current_time()))
        return Ok((key, payload.value))

    return key, process


NOT_DELIVERED = ResultList([Ok(None)], [None])


class TestSelectKey:
    """Delivery.KEY selects the collectors named by the payload, in registration order."""

    def test_single(self) -> None:
        chosen = collectors()
        selected = SimpleRouter(chosen).select(Payload(1, Delivery.KEY, ["b"]))
        assert list(selected) == [chosen[1]]

    def test_several_in_registration_order(self) -> None:
        router = SimpleRouter(collectors())
        assert keys(router.select(Payload(1, Delivery.KEY, ["c", "a"]))) == ["a", "c"]
        assert keys(router.select(Payload(1, Delivery.KEY, ["b", "c", "a"]))) == ["a", "b", "c"]

    @pytest.mark.parametrize("wanted", [["nobody"], ["nobody", "else"], ["A"], ["a "]])
    def test_unknown_keys(self, wanted: list[str]) -> None:
        assert keys(SimpleRouter(collectors()).select(Payload(1, Delivery.KEY, wanted))) == []

    def test_unknown_keys_are_skipped(self) -> None:
        router = SimpleRouter(collectors())
        assert keys(router.select(Payload(1, Delivery.KEY, ["nobody", "c"]))) == ["c"]

    def test_repeated_key_selects_once(self) -> None:
        router = SimpleRouter(collectors())
        assert keys(router.select(Payload(1, Delivery.KEY, ["b", "b"]))) == ["b"]

    def test_topics_are_ignored(self) -> None:
        router = SimpleRouter(collectors())
        assert keys(router.select(Payload(1, Delivery.KEY, ["c"], topics=["t1"]))) == ["c"]


class TestSelectTopic:
    """Delivery.TOPIC selects collectors sharing an exact topic, in registration order."""

    def test_any_shared_topic(self) -> None:
        router = SimpleRouter(collectors())
        assert keys(router.select(Payload(1, Delivery.TOPIC, topics=["t1"]))) == ["a", "b"]
        assert keys(router.select(Payload(1, Delivery.TOPIC, topics=["t2"]))) == ["b"]
        assert keys(router.select(Payload(1, Delivery.TOPIC, topics=["t9", "t2"]))) == ["b"]

    def test_registration_order(self) -> None:
        router = SimpleRouter(collectors())
        assert keys(router.select(Payload(1, Delivery.TOPIC, topics=["t2", "t1"]))) == ["a", "b"]

    @pytest.mark.parametrize("topic", ["t", "T1", "t1 ", "t1*", "t.*", ""])
    def test_exact_match_only(self, topic: str) -> None:
        router = SimpleRouter(collectors())
        assert keys(router.select(Payload(1, Delivery.TOPIC, topics=[topic]))) == []

    def test_keys_are_ignored(self) -> None:
        router = SimpleRouter(collectors())
        payload = Payload(1, Delivery.TOPIC, keys=["c"], topics=["t2"])
        assert keys(router.select(payload)) == ["b"]


class TestSelectBroadcast:
    """Delivery.BROADCAST selects every collector in registration order."""

    def test_all(self) -> None:
        chosen = collectors()
        assert list(SimpleRouter(chosen).select(Payload(1))) == chosen

    def test_keys_and_topics_are_ignored(self) -> None:
        router = SimpleRouter(collectors())
        payload = Payload(1, Delivery.BROADCAST, keys=["a"], topics=["t2"])
        assert keys(router.select(payload)) == ["a", "b", "c"]

    def test_router_keeps_its_collectors(self) -> None:
        chosen = collectors()
        router = SimpleRouter(chosen)
        chosen.reverse()
        assert keys(router.collectors) == ["a", "b", "c"]
        assert type(router.collectors) is tuple


class TestDeliverNothing:
    """Delivering to no collector gives a single Ok(None) with no key, not delivered."""

    async def test_empty(self) -> None:
        results = await SimpleRouter(collectors()).deliver(Payload(1), [])
        assert results == NOT_DELIVERED
        assert results.keys == (None,)
        assert results.delivered is False

    async def test_unmatched_event(self) -> None:
        results = await SimpleRouter(collectors()).handle_event(Payload(1, Delivery.KEY, ["x"]))
        assert results == NOT_DELIVERED
        assert results.delivered is False


class TestDeliverOne:
    """Delivering to one collector gives its result under its key."""

    async def test_one(self) -> None:
        chosen = collectors()
        results = await SimpleRouter(chosen).deliver(Payload(7), chosen[1:2])
        assert results == ResultList([Ok(7)], ["b"])
        assert results.delivered is True

    async def test_failing(self) -> None:
        chosen = by_key(("boom", fail))
        with structlog.testing.capture_logs() as logs:
            results = await SimpleRouter(chosen).deliver(Payload("v"), chosen)
        assert results.keys == ("boom",)
        result = results.first()
        assert isinstance(result, Error)
        assert type(result.error) is ValueError
        assert [(e["event"], e["collector"]) for e in logs] == [("processor_failed", "boom")]

    async def test_handle_event(self) -> None:
        router = SimpleRouter(collectors())
        results = await router.handle_event(Payload(3, Delivery.KEY, ["c"]))
        assert results == ResultList([Ok(3)], ["c"])


class TestDeliverSeveral:
    """Several collectors run concurrently; results come back in the order given."""

    async def test_concurrent(self, autojump_clock: trio.abc.Clock) -> None:
        chosen = by_key(("a", sleeper(1)), ("b", sleeper(1)), ("c", sleeper(1)))
        start = trio.current_time()
        results = await SimpleRouter(chosen).deliver(Payload("x"), chosen)
        assert trio.current_time() - start == 1  # not 3: they ran at the same time
        assert results == ResultList([Ok("x"), Ok("x"), Ok("x")], ["a", "b", "c"])

    async def test_given_order_not_finish_order(self, autojump_clock: trio.abc.Clock) -> None:
        finished: list[tuple[str, float]] = []
        chosen = by_key(timed(finished, "a", 3), timed(finished, "b", 1), timed(finished, "c", 2))
        start = trio.current_time()
        results = await SimpleRouter(chosen).deliver(Payload(0), chosen)
        assert finished == [("b", start + 1), ("c", start + 2), ("a", start + 3)]
        assert trio.current_time() - start == 3
        assert results == ResultList([Ok(("a", 0)), Ok(("b", 0)), Ok(("c", 0))], ["a", "b", "c"])

    async def test_given_order_not_registration_order(self) -> None:
        chosen = collectors()
        reordered = [chosen[2], chosen[0], chosen[1]]
        results = await SimpleRouter(chosen).deliver(Payload(1), reordered)
        assert results == ResultList([Ok(1)] * 3, ["c", "a", "b"])

    async def test_one_failure(self, autojump_clock: trio.abc.Clock) -> None:
        chosen = by_key(("slow", sleeper(1)), ("boom", fail), ("slower", sleeper(2)))
        with structlog.testing.capture_logs() as logs:
            results = await SimpleRouter(chosen).deliver(Payload("x"), chosen)
        assert results.keys == ("slow", "boom", "slower")
        assert results[0] == Ok("x")
        assert results[2] == Ok("x")
        failure = results[1]
        assert isinstance(failure, Error)
        assert type(failure.error) is ValueError
        assert failure.error.args == ("x",)
        assert [(e["event"], e["collector"]) for e in logs] == [("processor_failed", "boom")]
        assert logs[0]["error"] == repr(failure.error)

    async def test_every_failure_is_kept(self) -> None:
        chosen = by_key(("a", fail), ("b", echo), ("c", fail))
        with structlog.testing.capture_logs():
            results = await SimpleRouter(chosen).deliver(Payload(1), chosen)
        assert [r.is_error() for r in results] == [True, False, True]
        assert results.by_key()["b"] == Ok(1)

    async def test_cancellation(self, autojump_clock: trio.abc.Clock) -> None:
        cancelled: list[str] = []

        def stuck(key: str) -> tuple[str, Processor]:
            async def process(payload: Payload[Any], ctx: Context) -> Result[Any]:
                try:
                    await trio.sleep_forever()
                finally:
                    cancelled.append(key)

            return key, process

        chosen = by_key(stuck("a"), stuck("b"), stuck("c"))
        returned: list[ResultList[Any]] = []
        with trio.move_on_after(1) as scope:
            returned.append(await SimpleRouter(chosen).deliver(Payload(1), chosen))
        assert scope.cancelled_caught
        assert returned == []
        assert sorted(cancelled) == ["a", "b", "c"]


class Fatal(BaseException):
    """
    A BaseException of a processor's own (as KeyboardInterrupt or SystemExit would be).
    """


class TestFanOutInAQueue:
    """The queue's own fan-out runs processors inline until one waits, and still as a nursery."""

    async def test_instant_processors_run_in_the_consumer_task(self) -> None:
        tasks: list[trio.lowlevel.Task] = []

        async def where(payload: Payload[Any], ctx: Context) -> Result[Any]:
            tasks.append(trio.lowlevel.current_task())
            return Ok(payload.value)

        chosen = [Collector(key, where) for key in "abc"]
        async with CollectorQueue(chosen, autoscale=False, max_consumers=1) as queue:
            results = await (await queue.get_publisher().send(Payload(1))).wait()
        assert results == ResultList([Ok(1)] * 3, ["a", "b", "c"])
        assert len(set(tasks)) == 1  # no task per collector

    async def test_waiting_processors_run_concurrently(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        chosen = by_key(("a", echo), ("b", sleeper(1)), ("c", sleeper(1)), ("d", sleeper(1)))
        async with CollectorQueue(chosen, autoscale=False, max_consumers=1) as queue:
            results = await (await queue.get_publisher().send(Payload(1))).wait()
            assert trio.current_time() == 1  # not 3
        assert results == ResultList([Ok(1)] * 4, ["a", "b", "c", "d"])

    @pytest.mark.parametrize("order", ["fatal first", "fatal last"])
    async def test_a_base_exception_stops_the_others(
        self, order: str, autojump_clock: trio.abc.Clock
    ) -> None:
        async def fatal(payload: Payload[Any], ctx: Context) -> Result[Any]:
            raise Fatal

        pairs = [("f", fatal), ("s", sleeper(10))]
        chosen = by_key(*(pairs if order == "fatal first" else pairs[::-1]))
        queue = CollectorQueue(chosen, autoscale=False, max_consumers=1)
        with pytest.raises(Fatal):
            async with queue:
                event = await queue.get_publisher().send(Payload(1))
                await trio.sleep(20)
        assert trio.current_time() < 10  # the sleeping collector did not hold it back
        assert event.done

    async def test_a_router_deadline_around_deliver_stops_every_collector(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        class Bounded(Router[Any]):
            async def handle_event(self, payload: Payload[Any]) -> ResultList[Any]:
                with trio.move_on_after(1):
                    return await self.deliver(payload, self.collectors)
                return ResultList([Error("too slow")], [None])

        chosen = by_key(("a", sleeper(10)), ("b", sleeper(10)))
        queue = CollectorQueue(chosen, router=Bounded, autoscale=False, max_consumers=1)
        async with queue:
            results = await (await queue.get_publisher().send(Payload(1))).wait()
            assert trio.current_time() == 1
        assert results == ResultList([Error("too slow")], [None])


class OnlyLast(Router[Any]):
    """
    Overrides select only: every payload goes to the last collector.
    """

    def select(self, payload: Payload[Any]) -> Sequence[Collector[Any]]:
        return self.collectors[-1:]


class Doubler(Router[Any]):
    """
    Overrides handle_event only: the first collector's result plus a computed one.
    """

    async def handle_event(self, payload: Payload[Any]) -> ResultList[Any]:
        first = await self.deliver(payload, self.collectors[:1])
        return ResultList([*first, Ok(payload.value * 2)], [*first.keys, None])


class Lazy(Router[Any]):
    """
    Overrides nothing.
    """


class TestCustomRouters:
    """A router overrides select or handle_event; the base class alone cannot route."""

    async def test_select_override(self) -> None:
        results = await OnlyLast(collectors()).handle_event(Payload(1, Delivery.KEY, ["a"]))
        assert results == ResultList([Ok(1)], ["c"])

    async def test_select_override_in_a_queue(self, autojump_clock: trio.abc.Clock) -> None:
        async with CollectorQueue(
            collectors(), router=OnlyLast, autoscale=False, max_consumers=1
        ) as queue:
            results = await (await queue.get_publisher().send(1)).wait()
        assert results == ResultList([Ok(1)], ["c"])

    async def test_handle_event_override(self) -> None:
        results = await Doubler(collectors()).handle_event(Payload(3))
        assert results == ResultList([Ok(3), Ok(6)], ["a", None])

    async def test_handle_event_override_in_a_queue(self, autojump_clock: trio.abc.Clock) -> None:
        async with CollectorQueue(
            collectors(), router=Doubler, autoscale=False, max_consumers=1
        ) as queue:
            results = await (await queue.get_publisher().send(3)).wait()
        assert results == ResultList([Ok(3), Ok(6)], ["a", None])

    def test_base_router_cannot_select(self) -> None:
        with pytest.raises(
            NotImplementedError, match=r"^Router must override select or handle_event$"
        ):
            Router(collectors()).select(Payload(1))

    async def test_base_router_cannot_handle_events(self) -> None:
        with pytest.raises(
            NotImplementedError, match=r"^Router must override select or handle_event$"
        ):
            await Router(collectors()).handle_event(Payload(1))

    def test_message_names_the_subclass(self) -> None:
        with pytest.raises(
            NotImplementedError, match=r"^Lazy must override select or handle_event$"
        ):
            Lazy(collectors()).select(Payload(1))

    async def test_base_router_can_deliver(self) -> None:
        chosen = collectors()
        results = await Router(chosen).deliver(Payload(2), chosen[:2])
        assert results == ResultList([Ok(2), Ok(2)], ["a", "b"])


class TestRoutingProperty:
    """For any collectors and payload, routing reaches exactly the matching collectors."""

    @settings(max_examples=200, deadline=None)
    @given(
        chosen=collector_sets(
            st.builds(Recorder, delay=st.just(1.0))
            | st.builds(Recorder, raises=st.builds(ValueError, st.just("failed")))
        ),
        payload=payloads(),
    )
    def test_select_and_deliver(self, chosen: list[Collector[Any]], payload: Payload[int]) -> None:
        failing = {c.key for c in chosen if recorder_of(c).raises is not None}
        router = SimpleRouter(chosen)
        if payload.delivery is Delivery.KEY:
            expected = [c for c in chosen if c.key in payload.keys]
        elif payload.delivery is Delivery.TOPIC:
            expected = [c for c in chosen if set(c.topics) & set(payload.topics)]
        else:
            expected = chosen

        selected = router.select(payload)
        assert list(selected) == expected  # collectors compare by identity

        async def deliver() -> tuple[ResultList[Any], float]:
            start = trio.current_time()
            with structlog.testing.capture_logs():
                results = await router.deliver(payload, selected)
            return results, trio.current_time() - start

        results, elapsed = trio.run(deliver, clock=trio.testing.MockClock(autojump_threshold=0))
        if not expected:
            assert results == NOT_DELIVERED
            assert elapsed == 0
            return
        assert_routed_exactly(results, [c.key for c in expected])
        assert results.keys == tuple(c.key for c in expected)
        assert results.delivered is True
        assert elapsed == (0 if all(c.key in failing for c in expected) else 1)
        for collector, (key, result) in zip(expected, results.items(), strict=True):
            assert recorder_of(collector).received_by(collector.key) == [payload]
            if key in failing:
                assert isinstance(result, Error)
                assert result.error is recorder_of(collector).raises
            else:
                assert result == Ok(payload.value)
