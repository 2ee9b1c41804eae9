"""
Hypothesis strategies shared by the property tests.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from event_collector import Delivery, Payload
from event_collector import _wire as wire

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

#: Integers msgpack carries: every value the wire protocol's int fields can hold.
wire_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
_wire_text = st.text(max_size=8)
_wire_names = st.lists(st.sampled_from([*KEYS, *TOPICS, "", "nobody"]), max_size=3).map(tuple)
_wire_tasks = st.builds(
    wire.Task,
    id=wire_ints,
    value=st.binary(max_size=16),
    delivery=st.integers(min_value=-1, max_value=3),
    keys=_wire_names,
    topics=_wire_names,
    priority=st.none() | wire_ints,
    attempt=wire_ints,
)
_wire_errors = st.none() | st.builds(wire.ErrorInfo, _wire_text, _wire_text, _wire_text)
_wire_outcomes = st.builds(
    wire.Outcome, st.none() | _wire_text, st.none() | st.binary(max_size=8), _wire_errors
)
_wire_results = st.builds(
    wire.TaskResult, wire_ints, wire_ints, st.lists(_wire_outcomes, max_size=2).map(tuple)
)
#: Messages of every kind, with any values their fields' types allow.
wire_messages: st.SearchStrategy[wire.Message] = st.one_of(
    st.builds(wire.Hello, _wire_text, wire_ints, st.booleans()),
    st.builds(wire.Welcome, _wire_text, wire_ints),
    st.builds(wire.Submit, st.lists(_wire_tasks, max_size=3).map(tuple)),
    st.builds(wire.Results, st.lists(_wire_results, max_size=3).map(tuple), wire_ints),
    st.builds(wire.Refused, st.lists(wire_ints, max_size=3).map(tuple), _wire_text),
    st.builds(wire.Reset, _wire_text),
    st.builds(wire.Ready, _wire_text, wire_ints),
    st.builds(wire.Dispatch, st.lists(_wire_tasks, max_size=3).map(tuple)),
    st.just(wire.Ping()),
    st.builds(wire.Pong, _wire_text),
    st.just(wire.Leaving()),
    st.just(wire.Bye()),
)
#: What a broken or hostile peer may send, frame by frame: messages of the protocol (of
#: any kind, for either side), bodies that are not msgpack or not a message, unknown
#: signatures, a frame too many or too few, and frames of random bytes.
wire_frames: st.SearchStrategy[list[bytes]] = st.one_of(
    wire_messages.map(wire.encode),
    st.binary(max_size=64).map(lambda body: [wire.SIGNATURE, body]),
    st.tuples(st.binary(max_size=8), wire_messages).map(
        lambda pair: [pair[0], wire.encode(pair[1])[1]]
    ),
    wire_messages.map(lambda message: [*wire.encode(message), b""]),
    wire_messages.map(lambda message: wire.encode(message)[1:]),
    st.lists(st.binary(max_size=32), min_size=1, max_size=4),
)
