"""
Hypothesis strategies shared by the property tests.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from event_collector import Delivery, Payload

#: Collector[Any] keys the strategies draw from.
KEYS = ["k0", "k1", "k2", "k3"]
#: Topics the strategies draw from.
TOPICS = ["t0", "t1", "t2"]
#: How a test processor behaves: ("ok" | "raise" | "wrong" | "sleep", seconds).
behaviours = st.one_of(
    st.just(("ok", 0.0)),
    st.just(("raise", 0.0)),
    st.just(("wrong", 0.0)),
    st.tuples(st.just("sleep"), st.sampled_from([0.5, 1.0, 3.0, 30.0])),
)
#: (key, topics) of 1 to 4 collectors with unique keys.
collector_keys = st.lists(
    st.tuples(st.sampled_from(KEYS), st.lists(st.sampled_from(TOPICS), max_size=2, unique=True)),
    min_size=1,
    max_size=4,
    unique_by=lambda spec: spec[0],
)


def payloads(values: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[Payload[Any]]:
    """
    Payloads of every delivery, naming known and unknown keys and topics, any priority.

    Args:
        values: Strategy for ``Payload.value``; integers by default.
    """
    values = st.integers() if values is None else values
    priorities = st.none() | st.integers(0, 3)
    return st.one_of(
        st.builds(Payload, values, priority=priorities),
        st.builds(
            lambda value, keys, priority: Payload(value, Delivery.KEY, keys, priority=priority),
            values,
            st.lists(st.sampled_from([*KEYS, "nobody"]), min_size=1, max_size=3),
            priorities,
        ),
        st.builds(
            lambda value, topics, priority: Payload(
                value, Delivery.TOPIC, topics=topics, priority=priority
            ),
            values,
            st.lists(st.sampled_from([*TOPICS, "nothing"]), min_size=1, max_size=3),
            priorities,
        ),
    )


#: One step of a ZmqSocket interleaving: ("send", messages), ("receive", cancel) or
#: ("batch", max_messages, cancel); cancel is None (not cancelled) or (n, send_first): the
#: receive is cancelled after n checkpoints, right after one more message was sent if
#: send_first.
_cancel_after = st.none() | st.tuples(st.integers(min_value=0, max_value=4), st.booleans())
zmq_steps = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(min_value=1, max_value=5)),
        st.tuples(st.just("receive"), _cancel_after),
        st.tuples(st.just("batch"), st.integers(min_value=1, max_value=4), _cancel_after),
    ),
    max_size=30,
)


#: Demand (arrival rate x mean service time), in consumers.
demands = st.floats(0, 10_000, allow_nan=False, allow_infinity=False)
#: ``wip_margin`` values.
wip_margins = st.floats(0, 1, allow_nan=False)
#: (min_consumers, max_consumers).
pool_bounds = st.tuples(st.integers(1, 50), st.integers(0, 500)).map(lambda b: (b[0], b[0] + b[1]))
#: A steady load for a policy sampled every 0.01 s: (arrivals per sample, samples per
#: arrival, mean service time); one of the first two is 1.
steady_loads = st.one_of(
    st.tuples(st.integers(1, 200), st.just(1), st.floats(0.001, 1.0)),
    st.tuples(st.just(1), st.integers(2, 20), st.floats(0.001, 1.0)),
)
#: One sample of a noisy load: (new arrivals, events waiting, consumers busy, mean service
#: time).
load_samples = st.tuples(
    st.integers(0, 100), st.integers(0, 300), st.integers(0, 300), st.floats(0, 2.0)
)
