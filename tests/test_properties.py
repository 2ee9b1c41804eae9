"""
Invariants of the whole queue under random collectors, payloads, failures and shutdowns.
"""

from __future__ import annotations

from typing import Any

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from event_collector import (
    Collector,
    CollectorEvent,
    CollectorQueue,
    Context,
    Error,
    Ok,
    Payload,
    QueueType,
    Result,
    ShutdownError,
    SimpleRouter,
)

from .strategies import behaviours, collector_keys, payloads


@st.composite
def collector_specs(draw: st.DrawFn) -> list[tuple[str, tuple[str, Any], list[str], float | None]]:
    """
    Collectors as (key, behaviour, topics, timeout).
    """
    return [
        (key, draw(behaviours), topics, draw(st.sampled_from([None, 2.0])))
        for key, topics in draw(collector_keys)
    ]


def make_processor(behaviour: tuple[str, Any]) -> Any:
    kind, seconds = behaviour

    async def process(payload: Payload[Any], ctx: Context) -> Result[Any]:
        if kind == "raise":
            raise ValueError(payload.value)
        if kind == "wrong":
            return "not a result"  # type: ignore[return-value]  # a processor mistake
        if kind == "sleep":
            await trio.sleep(seconds)
        return Ok(payload.value)

    return process


@settings(max_examples=60, deadline=None)
@given(
    specs=collector_specs(),
    sends=st.lists(st.tuples(payloads(), st.sampled_from([0.0, 0.0, 0.25, 1.0])), max_size=25),
    consumers=st.integers(1, 4),
    queue_type=st.sampled_from(QueueType),
    ending=st.sampled_from(["graceful", "raise", "cancel"]),
    timeout=st.sampled_from([0.5, 5.0, 50.0]),
)
def test_every_event_resolves_once_with_one_result_per_collector(
    specs: list[tuple[str, tuple[str, Any], list[str], float | None]],
    sends: list[tuple[Payload[int], float]],
    consumers: int,
    queue_type: QueueType,
    ending: str,
    timeout: float,
) -> None:
    collectors = [
        Collector(key, make_processor(behaviour), topics=topics, timeout=limit)
        for key, behaviour, topics, limit in specs
    ]
    router = SimpleRouter(collectors)
    events: list[CollectorEvent[Any]] = []
    wakeups: list[CollectorEvent[Any]] = []

    async def scenario() -> None:
        queue = CollectorQueue(
            collectors,
            autoscale=False,
            max_consumers=consumers,
            queue_type=queue_type,
            consumer_shutdown_timeout=timeout,
            logging=False,
        )

        async def waiter(event: CollectorEvent[Any]) -> None:
            await event.wait()
            wakeups.append(event)

        async with trio.open_nursery() as waiters:
            with trio.move_on_after(2 if ending == "cancel" else 1000):
                try:
                    async with queue:
                        publisher = queue.get_publisher()
                        for payload, pause in sends:
                            event = await publisher.send(payload)
                            events.append(event)
                            waiters.start_soon(waiter, event)
                            await trio.sleep(pause)
                        if ending == "raise":
                            raise LookupError("body failed")
                        if ending == "cancel":
                            await trio.sleep_forever()
                except LookupError:
                    pass

    trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))

    assert len(wakeups) == len(events) == len({id(e) for e in wakeups})
    for event in events:
        results = event.get_result()
        assert results is not None
        expected = tuple(c.key for c in router.select(event.payload))
        if results.keys == (None,):
            # Nothing delivered: no collector matched, or cancelled while still queued.
            assert len(results) == 1
            first = results.first()
            assert (first == Ok(None) and not expected) or (
                isinstance(first, Error) and isinstance(first.error, ShutdownError)
            )
        else:
            assert results.keys == expected
            for (key, result), spec in zip(
                results.items(), specs_for(expected, specs), strict=True
            ):
                assert key == spec[0]
                assert isinstance(result, Ok | Error)
                if isinstance(result, Ok):
                    assert result.value == event.payload.value


def specs_for(
    keys: tuple[str, ...], specs: list[tuple[str, tuple[str, Any], list[str], float | None]]
) -> list[tuple[str, tuple[str, Any], list[str], float | None]]:
    by_key = {spec[0]: spec for spec in specs}
    return [by_key[key] for key in keys]
