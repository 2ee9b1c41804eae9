"""
An application's test suite, written with event_collector.testing.

The application: a ``billing`` collector that adds up order amounts in a ledger kept on
its context, next to an ``audit`` collector owned by another team. The tests run with
pytest and pytest-trio: ``python -m pytest examples/testing``.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from event_collector import (
    Collector,
    CollectorQueue,
    Context,
    Error,
    Ok,
    Payload,
    ProcessingError,
    Result,
    SimpleRouter,
)
from event_collector.testing import (
    Recorder,
    assert_all_ok,
    assert_all_resolved,
    assert_routed_exactly,
    process_payloads,
    recorder_of,
    run_on_mock_clock,
)
from event_collector.testing.strategies import collector_sets, payloads, recorders

# -- the application under test ------------------------------------------------------------


async def bill(payload: Payload[Any], ctx: Context) -> Result[int]:
    """
    Add the order's amount to the ledger and return the total so far.
    """
    amount = payload.value["amount"]
    if amount <= 0:
        return Error("amount must be positive")
    await trio.sleep(0.5)  # the payment service answers in half a second
    ctx.ledger.append(amount)
    return Ok(sum(ctx.ledger))


def billing() -> Collector[int]:
    """
    Return the billing collector, with an empty ledger.
    """
    return Collector("billing", bill, ctx=Context(ledger=[]), topics=["orders"])


# -- a plain test: run_on_mock_clock starts trio itself ------------------------------------


def test_billing_adds_up_orders() -> None:
    """
    Each order's result is the running total, in the order the orders were sent.
    """
    orders = [Payload({"amount": n}, topics=["orders"]) for n in (5, 10, 20)]
    results = run_on_mock_clock([billing()], orders, autoscale=False, max_consumers=1)
    assert_all_ok(results)
    assert [result_list.first() for result_list in results] == [Ok(5), Ok(15), Ok(35)]


def test_a_refused_order_is_an_error() -> None:
    """
    An order of no amount gives an Error result, which assert_all_ok reports.
    """
    (results,) = run_on_mock_clock([billing()], [Payload({"amount": 0}, topics=["orders"])])
    assert results.first() == Error(ProcessingError("amount must be positive"))
    with pytest.raises(AssertionError, match="1 of 1 results are errors"):
        assert_all_ok(results)


# -- a recorder stands in for the audit collector ------------------------------------------


def test_audit_sees_orders_and_refunds_billing_sees_orders() -> None:
    """
    Orders reach both collectors, refunds and keyed payloads the audit only.
    """
    audit = Recorder()
    collectors = [billing(), audit.collector("audit", topics=["orders", "refunds"])]
    order = Payload({"amount": 5}, topics=["orders"])
    refund = Payload({"amount": -5}, topics=["refunds"])
    for_audit = Payload({"note": "checked"}, keys=["audit"])
    results = run_on_mock_clock(collectors, [order, refund, for_audit])
    assert_routed_exactly(results[0], ["billing", "audit"])
    assert_routed_exactly(results[1], ["audit"])
    assert_routed_exactly(results[2], ["audit"])
    assert audit.payloads == [order, refund, for_audit]  # in the order they were processed


# -- async tests, in trio: the queue fixture and process_payloads --------------------------


@pytest.fixture
def collectors() -> list[Collector[Any]]:
    """
    Return the collectors of the ``collector_queue`` fixture, for this module's tests.
    """
    return [billing(), Recorder(delay=2).collector("audit", topics=["orders"])]


@pytest.fixture
def collector_queue_options() -> dict[str, Any]:
    """
    Return the options of the ``collector_queue`` fixture: three consumers, always.
    """
    return {"autoscale": False, "max_consumers": 3}


@pytest.mark.trio
async def test_orders_through_the_queue_fixture(
    collector_queue: CollectorQueue[Any], autojump_clock: trio.abc.Clock
) -> None:
    """
    Three orders sent to the running queue are all done after the audit's two seconds.
    """
    publisher = collector_queue.get_publisher()
    events = [await publisher.send(Payload({"amount": 5}, topics=["orders"])) for _ in range(3)]
    with trio.fail_after(10):
        results = [await event.wait() for event in events]
    assert_all_resolved(events)
    assert_all_ok(results)
    assert trio.current_time() == 2  # three consumers: the audit's 2 s, all at once


@pytest.mark.trio
async def test_process_payloads_in_a_trio_test(autojump_clock: trio.abc.Clock) -> None:
    """
    Two consumers bill four orders in two rounds of half a second.
    """
    orders = [Payload({"amount": 1}, topics=["orders"]) for _ in range(4)]
    results = await process_payloads([billing()], orders, autoscale=False, max_consumers=2)
    totals = sorted(result_list.first().unwrap() for result_list in results)
    assert totals == [1, 2, 3, 4]
    assert trio.current_time() == 1


# -- properties, with the Hypothesis strategies --------------------------------------------


@settings(max_examples=50, deadline=None)
@given(collectors=collector_sets(recorders()), sent=st.lists(payloads(), max_size=10))
def test_each_payload_reaches_exactly_the_collectors_it_names(
    collectors: list[Collector[Any]], sent: list[Payload[int]]
) -> None:
    """
    Whatever the collectors and payloads, each payload reaches those the router selects.
    """
    results = run_on_mock_clock(collectors, sent, logging=False)
    router = SimpleRouter(collectors)
    for payload, result_list in zip(sent, results, strict=True):
        assert_routed_exactly(result_list, [c.key for c in router.select(payload)])
    for collector in collectors:
        received = recorder_of(collector).received_by(collector.key)
        assert len(received) == sum(collector.key in r.keys for r in results)
