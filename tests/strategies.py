"""
Hypothesis strategies of the project's own tests: the race fuzzer, the scaling policy, the
ZeroMQ socket and the wire protocol.

Payloads and collector sets come from the public kit, event_collector.testing.strategies.
"""

from __future__ import annotations

import math

import attrs
from hypothesis import strategies as st

from event_collector import Delivery, Payload, QueueType
from event_collector import _wire as wire
from event_collector.testing.strategies import KEYS, TOPICS

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


# -- the race fuzzer's scenarios (tests/test_races.py) ------------------------------------

#: What a processor does with one payload, and for how long (seconds, where it matters):
#: "ok" returns at once, "error" returns Error("refused"), "raise" raises ValueError,
#: "wrong" returns a str, "sleep" sleeps, "hang" sleeps forever (its collector's timeout or
#: the shutdown ends it), "shutdown" awaits shut_down_queue() itself, "shutdown_child" does
#: so from a task it starts, "nursery_fail" sleeps in a nursery whose child raises when
#: cancelled, "resend" sends a new payload to its own queue with send_nowait, "fatal"
#: raises a BaseException that is not an Exception.
PROCESSOR_KINDS = (
    "ok",
    "error",
    "raise",
    "wrong",
    "sleep",
    "hang",
    "shutdown",
    "shutdown_child",
    "nursery_fail",
    "resend",
    "fatal",
)


@attrs.frozen
class Step:
    """
    The value of one fuzzed payload: what each collector's processor does with it.
    """

    id: int
    #: (kind, seconds) for each collector, by collector index.
    behaviours: tuple[tuple[str, float], ...]
    #: Whether the router raises on this payload.
    router_fails: bool


@attrs.frozen
class Send:
    """
    One send of a producer.
    """

    #: Seconds to sleep before sending.
    delay: float
    #: send_nowait() instead of send().
    nowait: bool
    payload: Payload[Step]
    #: A send() given up (cancelled) after this many seconds; None: never.
    give_up: float | None
    #: A task waits for the event (None: nobody), giving up once after this many seconds
    #: (math.inf: never) and then waiting again.
    wait: float | None


@attrs.frozen
class CollectorSpec:
    key: str
    topics: tuple[str, ...]
    timeout: float | None
    #: None, "ok", "slow" (setup and teardown sleep), "fail_setup", "fail_teardown" or
    #: "shutdown" (the setup calls shut_down_queue()).
    lifecycle: str | None


@attrs.frozen
class Scenario:
    """
    One fuzzed run of a CollectorQueue.
    """

    collectors: tuple[CollectorSpec, ...]
    #: "simple" (SimpleRouter), "select" (overrides select) or "handle" (handle_event).
    router: str
    queue_type: QueueType
    autoscale: bool
    min_consumers: int
    max_consumers: int
    monitor_interval: float
    max_queue_size: int | float
    shutdown_timeout: float
    report_interval: float
    #: "async_with" or "run" (nursery.start(queue.run)).
    form: str
    #: "graceful" (leave the body; run form: shut_down_queue() from the body),
    #: "shutdown_task" (shut_down_queue() from another task, the body goes on), "abort"
    #: (the body raises) or "cancel" (a scope around the queue is cancelled from outside).
    ending: str
    #: When the ending's task acts ("shutdown_task", "abort", "cancel"), or None to act
    #: right after the producer and send that ``trigger`` names (no checkpoint between).
    ending_at: float | None
    trigger: tuple[int, int]
    #: Seconds the body goes on after its producers are done.
    linger: float
    producers: tuple[tuple[Send, ...], ...]
    #: With the "abort" ending, the body cancels the scope around the queue just before it
    #: raises (as another task could): its exception and the cancellation meet.
    cancel_with_abort: bool
    #: A task tries to enter the running queue again (and must be refused).
    reenter: bool
    #: Bus handlers that misbehave: a ShutDownQueue handler that never returns (bounded
    #: by the shutdown timeout) and a ConsumersScaled handler that raises.
    bad_handlers: bool


_DURATIONS = st.sampled_from([0.0, 0.001, 0.01, 0.05, 0.2, 1.0])


@st.composite
def _behaviours(draw: st.DrawFn, fatal: bool) -> tuple[str, float]:
    kinds = PROCESSOR_KINDS if fatal else PROCESSOR_KINDS[:-1]
    # Mostly well-behaved: a run should also get far enough to scale and drain.
    kind = draw(st.sampled_from(kinds) | st.sampled_from(["ok", "sleep", "sleep"]))
    return kind, draw(_DURATIONS)


#: What processors do in a steady trickle (light load, so the pool shrinks while awake)
#: and in the burst before it (slow, so the pool grows).
_LIGHT = st.sampled_from([("ok", 0.0), ("sleep", 0.001), ("sleep", 0.005)])
_SLOW = st.tuples(st.just("sleep"), st.sampled_from([0.05, 0.2]))


@st.composite
def _payloads(
    draw: st.DrawFn,
    step_id: int,
    keys: list[str],
    topics: list[str],
    fatal: bool,
    behaviours: st.SearchStrategy[tuple[str, float]] | None = None,
) -> Payload[Step]:
    behaviours = _behaviours(fatal) if behaviours is None else behaviours
    step = Step(
        step_id,
        tuple(draw(behaviours) for _ in keys),
        draw(st.integers(0, 19)) == 0,
    )
    priority = draw(st.none() | st.integers(0, 3))
    delivery = draw(st.sampled_from(Delivery))
    if delivery is Delivery.KEY:
        wanted = draw(st.lists(st.sampled_from([*keys, "nobody"]), min_size=1, max_size=3))
        return Payload(step, Delivery.KEY, wanted, priority=priority)
    if delivery is Delivery.TOPIC:
        wanted = draw(st.lists(st.sampled_from([*topics, "nothing"]), min_size=1, max_size=2))
        return Payload(step, Delivery.TOPIC, topics=wanted, priority=priority)
    return Payload(step, priority=priority)


@st.composite
def race_scenarios(draw: st.DrawFn) -> Scenario:
    """
    Scenarios for the race fuzzer: collectors, queue options, producers and an ending.
    """
    form = draw(st.sampled_from(["async_with", "async_with", "run"]))
    lifecycles = [None, None, "ok", "slow", "fail_setup", "shutdown"]
    if form == "async_with":
        lifecycles.append("fail_teardown")
    count = draw(st.integers(1, 3))
    keys = [f"c{i}" for i in range(count)]
    collectors = tuple(
        CollectorSpec(
            key,
            tuple(draw(st.lists(st.sampled_from(TOPICS[:2]), max_size=2, unique=True))),
            draw(st.sampled_from([None, None, 0.03, 0.5])),
            # A failing setup is rare: the queue then never runs.
            draw(st.sampled_from(lifecycles))
            if draw(st.integers(0, 3)) == 0
            else draw(st.sampled_from([None, "ok", "slow"])),
        )
        for key in keys
    )
    autoscale = draw(st.booleans())
    min_consumers = draw(st.integers(1, 3))
    max_consumers = draw(st.integers(min_consumers, 5))
    fatal = draw(st.integers(0, 7)) == 0
    next_id = iter(range(10_000))

    def send(delay: float, behaviours: st.SearchStrategy[tuple[str, float]] | None = None) -> Send:
        return Send(
            delay,
            draw(st.booleans()),
            draw(_payloads(next(next_id), keys, list(TOPICS[:2]), fatal, behaviours)),
            draw(st.none() | st.none() | st.sampled_from([0.0, 0.005, 0.1])),
            draw(st.none() | st.sampled_from([0.0, 0.01, 0.3, math.inf])),
        )

    def producer() -> tuple[Send, ...]:
        if draw(st.integers(0, 4)):  # sends at random moments
            delays = st.sampled_from([0.0, 0.0, 0.0, 0.001, 0.01, 0.1, 0.5])
            return tuple(send(draw(delays)) for _ in range(draw(st.integers(0, 10))))
        # A burst that grows the pool, a steady trickle long enough for it to shrink while
        # busy, and a burst again.
        every = draw(st.sampled_from([0.02, 0.05]))
        burst = [send(0.0, _SLOW) for _ in range(draw(st.integers(2, 6)))]
        trickle = [send(every, _LIGHT) for _ in range(draw(st.integers(10, 30)))]
        return (*burst, *trickle, *(send(0.0) for _ in range(draw(st.integers(2, 6)))))

    producers = tuple(producer() for _ in range(draw(st.integers(1, 3))))
    return Scenario(
        collectors=collectors,
        router=draw(st.sampled_from(["simple", "simple", "select", "handle"])),
        queue_type=draw(st.sampled_from(QueueType)),
        autoscale=autoscale,
        min_consumers=min_consumers,
        max_consumers=max_consumers,
        monitor_interval=draw(st.sampled_from([0.005, 0.02, 0.1])),
        max_queue_size=draw(st.sampled_from([math.inf, 1, 2, 4])),
        shutdown_timeout=draw(st.sampled_from([0.1, 0.3, 3.0])),
        report_interval=draw(st.sampled_from([0.0, 0.0, 0.25])),
        form=form,
        ending=draw(st.sampled_from(["graceful", "shutdown_task", "abort", "cancel"])),
        ending_at=draw(st.none() | st.sampled_from([0.0, 0.001, 0.02, 0.3, 1.5])),
        trigger=draw(
            st.integers(0, len(producers) - 1).flatmap(
                lambda p: st.tuples(st.just(p), st.integers(0, max(len(producers[p]) - 1, 0)))
            )
        ),
        linger=draw(st.sampled_from([0.0, 0.0, 0.01, 0.5, 3.0])),
        producers=producers,
        cancel_with_abort=draw(st.booleans()),
        reenter=draw(st.integers(0, 9)) == 0,
        bad_handlers=draw(st.integers(0, 9)) == 0,
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
