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
    Error,
    Ok,
    Payload,
    QueueType,
    Result,
    ShutdownError,
    SimpleRouter,
)
from event_collector.testing import Recorder, assert_all_resolved
from event_collector.testing.strategies import collector_sets, payloads, recorders


def wrong_type(payload: Payload[Any]) -> Result[Any]:
    """
    A processor's mistake: return something that is neither Ok nor Error.
    """
    return "not a result"  # type: ignore[return-value]  # the mistake under test


#: Collectors that return Ok(value) or Error, raise, return the wrong type, or sleep first;
#: with or without a timeout.
collector_specs = collector_sets(
    recorders() | st.builds(Recorder, result=st.just(wrong_type)),
    timeouts=st.sampled_from([None, 2.0]),
)


@settings(max_examples=60, deadline=None)
@given(
    collectors=collector_specs,
    sends=st.lists(st.tuples(payloads(), st.sampled_from([0.0, 0.0, 0.25, 1.0])), max_size=25),
    consumers=st.integers(1, 4),
    queue_type=st.sampled_from(QueueType),
    ending=st.sampled_from(["graceful", "raise", "cancel"]),
    timeout=st.sampled_from([0.5, 5.0, 50.0]),
)
def test_every_event_resolves_once_with_one_result_per_collector(
    collectors: list[Collector[Any]],
    sends: list[tuple[Payload[int], float]],
    consumers: int,
    queue_type: QueueType,
    ending: str,
    timeout: float,
) -> None:
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

    assert_all_resolved(events)
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
            for result in results:
                assert isinstance(result, Ok | Error)
                if isinstance(result, Ok):
                    assert result.value == event.payload.value
