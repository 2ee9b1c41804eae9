"""
The testing kit, event_collector.testing: recorders, queue runners, assertions, strategies
and the pytest plugin, and the example test suite of the docs.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import find, given
from hypothesis import strategies as st

from event_collector import (
    Collector,
    CollectorEvent,
    Context,
    Delivery,
    Error,
    Ok,
    Payload,
    ProcessingError,
    Result,
    ResultList,
    ShutdownError,
)
from event_collector.testing import (
    Received,
    Recorder,
    assert_all_ok,
    assert_all_resolved,
    assert_routed_exactly,
    process_payloads,
    recorder_of,
    run_on_mock_clock,
)
from event_collector.testing.strategies import (
    KEYS,
    TOPICS,
    UNKNOWN_KEY,
    UNKNOWN_TOPIC,
    collector_sets,
    payloads,
    recorders,
)

from .conftest import echo, fixed

ROOT = Path(__file__).parent.parent


class TestRecorder:
    """A recorder keeps every payload with its collector, context and time, then behaves."""

    async def test_records_in_order_and_echoes(self, autojump_clock: trio.abc.Clock) -> None:
        recorder = Recorder(delay=1)
        ctx = Context(name="ctx of a")
        a, b = recorder.collector("a", ctx=ctx), recorder.collector("b")
        async with fixed([a, b]) as queue:
            publisher = queue.get_publisher()
            first = await publisher.send(Payload(1, keys=["a"]))
            second = await publisher.send(Payload(2, keys=["b"]))
            assert (await first.wait()).first() == Ok(1)
            assert (await second.wait()).first() == Ok(2)
        assert recorder.received == [
            Received("a", first.payload, ctx, 0.0),
            Received("b", second.payload, b.ctx, 1.0),
        ]
        assert recorder.payloads == [first.payload, second.payload]
        assert recorder.values == [1, 2]
        assert recorder.received_by("a") == [first.payload]
        assert recorder.received_by("nobody") == []
        recorder.clear()
        assert recorder.received == []

    async def test_fixed_result(self) -> None:
        collector = Recorder(result=Error("no")).collector("a")
        assert await collector.process(Payload(1)) == Error(ProcessingError("no"))

    async def test_result_from_the_payload(self) -> None:
        def halve(payload: Payload[Any]) -> Result[Any]:
            return Ok(payload.value // 2) if payload.value % 2 == 0 else Error("odd")

        collector = Recorder(result=halve).collector("a")
        assert await collector.process(Payload(4)) == Ok(2)
        assert await collector.process(Payload(3)) == Error("odd")

    async def test_raises_the_same_exception_each_time(self) -> None:
        failure = ValueError("boom")
        collector = Recorder(raises=failure).collector("a")
        for _ in range(3):
            result = await collector.process(Payload(1))
            assert isinstance(result, Error)
            assert result.error is failure
        # The traceback is reset on each raise: it does not grow with the calls.
        assert failure.__traceback__ is not None
        depth = sum(1 for _ in _frames(failure.__traceback__))
        await collector.process(Payload(1))
        assert sum(1 for _ in _frames(failure.__traceback__)) == depth

    async def test_delay_zero_is_no_checkpoint(self) -> None:
        collector = Recorder().collector("a")
        with trio.testing.assert_no_checkpoints():
            assert await collector.process(Payload(1)) == Ok(1)

    async def test_delay_then_result(self, autojump_clock: trio.abc.Clock) -> None:
        collector = Recorder(delay=2.5).collector("a")
        assert await collector.process(Payload("x")) == Ok("x")
        assert trio.current_time() == 2.5

    async def test_infinite_delay_ends_with_the_timeout(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        recorder = Recorder(delay=math.inf)
        result = await recorder.collector("a", timeout=3).process(Payload(1))
        assert isinstance(result, Error)
        assert isinstance(result.error, trio.TooSlowError)
        assert trio.current_time() == 3
        assert recorder.values == [1]

    def test_collector_options(self) -> None:
        @contextlib.asynccontextmanager
        async def lifecycle(ctx: Context) -> AsyncIterator[None]:  # pragma: no cover
            yield

        ctx = Context()
        collector = Recorder().collector("a", topics=["t"], timeout=2, lifecycle=lifecycle, ctx=ctx)
        assert (collector.key, collector.topics, collector.timeout) == ("a", ("t",), 2)
        assert collector.ctx is ctx
        assert collector.lifecycle is lifecycle

    @pytest.mark.parametrize(
        ("options", "error", "message"),
        [
            ({"delay": -1}, ValueError, "delay must be >= 0"),
            ({"delay": math.nan}, ValueError, "delay must be >= 0"),
            ({"delay": "1"}, TypeError, "delay must be a number"),
            ({"delay": True}, TypeError, "delay must be a number"),
            ({"raises": ValueError}, TypeError, "raises must be an exception instance"),
            ({"result": 3}, TypeError, r"result must be Ok, Error.*use Ok\(3\)"),
        ],
    )
    def test_bad_options(
        self, options: dict[str, Any], error: type[Exception], message: str
    ) -> None:
        with pytest.raises(error, match=message):
            Recorder(**options)

    def test_repr_shows_what_is_not_default(self) -> None:
        assert repr(Recorder()) == "Recorder()"
        assert repr(Recorder(delay=1, raises=KeyError("k"))) == (
            "Recorder(raises=KeyError('k'), delay=1.0)"
        )
        recorder = Recorder(result=Ok(1))
        assert repr(recorder) in repr(recorder.collector("a"))

    def test_recorder_of(self) -> None:
        recorder = Recorder()
        assert recorder_of(recorder.collector("a")) is recorder
        with pytest.raises(TypeError, match=r"'b' was not made by Recorder\.collector"):
            recorder_of(Collector("b", echo))


def _frames(tb: Any) -> Any:
    while tb is not None:
        yield tb
        tb = tb.tb_next


class TestRunOnMockClock:
    """run_on_mock_clock returns each payload's results, in order, on exact mock time."""

    def test_results_in_send_order(self) -> None:
        recorder = Recorder(delay=1)
        a, b = recorder.collector("a", topics=["t"]), Recorder().collector("b")
        sent = [Payload(1, topics=["t"]), 2, Payload(3, keys=["b"])]
        results = run_on_mock_clock([a, b], sent, autoscale=False, max_consumers=1)
        assert results == [
            ResultList([Ok(1)], ["a"]),
            ResultList([Ok(2), Ok(2)], ["a", "b"]),  # a plain value is broadcast
            ResultList([Ok(3)], ["b"]),
        ]
        assert [received.at for received in recorder.received] == [0, 1]

    def test_a_bounded_queue_waits_for_room(self) -> None:
        recorder = Recorder(delay=1)
        results = run_on_mock_clock(
            [recorder.collector("a")],
            range(5),
            autoscale=False,
            max_consumers=1,
            max_queue_size=1,
            logging=False,
        )
        assert [result_list.first() for result_list in results] == [Ok(i) for i in range(5)]
        assert [received.at for received in recorder.received] == [0, 1, 2, 3, 4]

    def test_no_payloads(self) -> None:
        assert run_on_mock_clock([Recorder().collector("a")], []) == []

    def test_queue_options_are_checked(self) -> None:
        with pytest.raises(ValueError, match="max_consumers must be >= 1"):
            run_on_mock_clock([Recorder().collector("a")], [1], max_consumers=0)

    def test_a_processor_that_never_returns(self) -> None:
        stuck = Recorder(delay=math.inf)
        with pytest.raises(trio.TooSlowError, match=r"^2 of 3 events sent had no result after 5 s"):
            run_on_mock_clock(
                [stuck.collector("stuck"), Recorder().collector("ok")],
                [Payload(1, keys=["stuck"]), Payload(2, keys=["ok"]), Payload(3, keys=["stuck"])],
                timeout=5,
                autoscale=False,
                max_consumers=2,
            )
        assert stuck.values == [1, 3]


class TestProcessPayloads:
    """process_payloads runs a queue inside a trio test and returns every result."""

    async def test_results_and_time(self, autojump_clock: trio.abc.Clock) -> None:
        recorder = Recorder(delay=1)
        results = await process_payloads(
            [recorder.collector("a")], [1, 2, 3, 4], autoscale=False, max_consumers=2
        )
        assert [result_list.first() for result_list in results] == [Ok(1), Ok(2), Ok(3), Ok(4)]
        assert trio.current_time() == 2

    async def test_cancellation_stops_the_queue(self, autojump_clock: trio.abc.Clock) -> None:
        recorder = Recorder(delay=10)
        with trio.move_on_after(1) as scope:
            await process_payloads([recorder.collector("a")], [1, 2])
        assert scope.cancelled_caught
        assert trio.current_time() == 1
        assert recorder.values == [1, 2]


class TestAssertAllResolved:
    """assert_all_resolved passes when every event is done and names those that are not."""

    async def test_pending_events_fail(self, autojump_clock: trio.abc.Clock) -> None:
        async with fixed([Recorder(delay=1).collector("a")]) as queue:
            publisher = queue.get_publisher()
            events = [await publisher.send(i) for i in range(3)]
            with pytest.raises(AssertionError) as info:
                assert_all_resolved(events)
            await events[0].wait()
            with pytest.raises(AssertionError, match=r"^2 of 3 events are not resolved:\n  #1: "):
                assert_all_resolved(events)
        assert str(info.value).startswith("3 of 3 events are not resolved:\n  #0: <CollectorEvent")
        assert "pending payload=Payload(value=2" in str(info.value)
        assert_all_resolved(events)
        assert_all_resolved([])

    async def test_long_lists_are_cut(self, autojump_clock: trio.abc.Clock) -> None:
        async with fixed([Recorder(delay=1).collector("a")]) as queue:
            publisher = queue.get_publisher()
            events: list[CollectorEvent[Any]] = [await publisher.send(i) for i in range(12)]
            with pytest.raises(AssertionError) as info:
                assert_all_resolved(events)
        message = str(info.value)
        assert message.startswith("12 of 12 events are not resolved:")
        assert message.count("\n  #") == 10
        assert message.endswith("\n  ... and 2 more")


class TestAssertRoutedExactly:
    """assert_routed_exactly compares the collectors reached with the keys given."""

    def test_passes_in_any_order(self) -> None:
        results: ResultList[int] = ResultList([Ok(1), Error("x")], ["a", "b"])
        assert_routed_exactly(results, ["b", "a"])
        assert_routed_exactly(results, ("a", "b", "a"))  # the keys given are a set

    @pytest.mark.parametrize(
        ("keys", "message"),
        [
            (["a"], "expected exactly ['a']: unexpected ['b']"),
            (["a", "b", "c"], "expected exactly ['a', 'b', 'c']: missing ['c']"),
            (["c"], "expected exactly ['c']: missing ['c']; unexpected ['a', 'b']"),
            ([], "expected exactly []: unexpected ['a', 'b']"),
        ],
    )
    def test_fails_naming_the_difference(self, keys: list[str], message: str) -> None:
        with pytest.raises(AssertionError) as info:
            assert_routed_exactly(ResultList([Ok(1), Ok(2)], ["a", "b"]), keys)
        assert str(info.value) == f"the event reached ['a', 'b'], {message}"

    def test_a_collector_reached_twice(self) -> None:
        with pytest.raises(AssertionError, match=r"reached more than once \['a'\]$"):
            assert_routed_exactly(ResultList([Ok(1), Ok(2)], ["a", "a"]), ["a"])

    def test_matched_no_collector(self) -> None:
        nobody = ResultList([Ok(None)], [None])
        assert_routed_exactly(nobody, [])
        with pytest.raises(
            AssertionError, match=r"^the event reached no collector, expected exactly \['a'\]$"
        ):
            assert_routed_exactly(nobody, ["a"])

    @pytest.mark.parametrize("keys", [[], ["a"]])
    def test_not_routed_fails_whatever_the_keys(self, keys: list[str]) -> None:
        cancelled: ResultList[Any] = ResultList([Error(ShutdownError())], [None])
        with pytest.raises(AssertionError, match=r"not routed .*ShutdownError"):
            assert_routed_exactly(cancelled, keys)

    def test_a_bare_str(self) -> None:
        with pytest.raises(TypeError, match=r"not a str: use \['a'\]"):
            assert_routed_exactly(ResultList([Ok(1)], ["a"]), "a")

    async def test_an_event(self, autojump_clock: trio.abc.Clock) -> None:
        collectors = [Recorder(delay=1).collector("a"), Recorder().collector("b")]
        async with fixed(collectors) as queue:
            event = await queue.get_publisher().send(Payload(1, keys=["a"]))
            with pytest.raises(
                AssertionError, match=r"^the event is not resolved yet: <CollectorEvent pending"
            ):
                assert_routed_exactly(event, ["a"])
            await event.wait()
        assert_routed_exactly(event, ["a"])
        with pytest.raises(AssertionError, match=r"missing \['b'\]"):
            assert_routed_exactly(event, ["a", "b"])


class TestAssertAllOk:
    """assert_all_ok passes when no result is an Error and lists the Errors otherwise."""

    def test_one_result_list(self) -> None:
        assert_all_ok(ResultList([Ok(1), Ok(None)], ["a", "b"]))
        with pytest.raises(
            AssertionError,
            match=r"^1 of 2 results are errors:\n  event #0, collector 'b': Error\(",
        ):
            assert_all_ok(ResultList([Ok(1), Error("no")], ["a", "b"]))

    def test_many_result_lists(self) -> None:
        good = ResultList([Ok(1)], ["a"])
        assert_all_ok([good, good])
        assert_all_ok([])
        bad: ResultList[Any] = ResultList([Error("x"), Error("y")], ["a", "b"])
        with pytest.raises(AssertionError) as info:
            assert_all_ok([good, bad, good, ResultList([Error(ShutdownError())], [None])])
        assert str(info.value).splitlines() == [
            "3 of 5 results are errors:",
            "  event #1, collector 'a': Error(error=ProcessingError('x'))",
            "  event #1, collector 'b': Error(error=ProcessingError('y'))",
            "  event #3, collector None: "
            "Error(error=ShutdownError('event cancelled by queue shutdown'))",
        ]


class TestStrategies:
    """The strategies draw valid payloads and collector sets of every kind."""

    @given(payloads())
    def test_payloads_name_known_and_unknown_names(self, payload: Payload[int]) -> None:
        assert isinstance(payload.value, int)
        assert payload.priority is None or 0 <= payload.priority <= 3
        if payload.delivery is Delivery.KEY:
            assert 1 <= len(payload.keys) <= 3
            assert set(payload.keys) <= {*KEYS, UNKNOWN_KEY}
        elif payload.delivery is Delivery.TOPIC:
            assert 1 <= len(payload.topics) <= 3
            assert set(payload.topics) <= {*TOPICS, UNKNOWN_TOPIC}
        else:
            assert payload.keys == payload.topics == ()

    @pytest.mark.parametrize("delivery", list(Delivery))
    def test_every_delivery_is_drawn(self, delivery: Delivery) -> None:
        found = find(payloads(), lambda p: p.delivery is delivery and p.priority is not None)
        assert found.delivery is delivery

    def test_shrinks_to_a_broadcast(self) -> None:
        assert find(payloads(), lambda p: True) == Payload(0)

    @given(
        payloads(
            st.text(max_size=3),
            keys=["x"],
            topics=["y"],
            deliveries=[Delivery.KEY, Delivery.TOPIC],
            priorities=st.just(7),
        )
    )
    def test_payload_options(self, payload: Payload[str]) -> None:
        assert isinstance(payload.value, str)
        assert payload.delivery is not Delivery.BROADCAST
        assert set(payload.keys) | set(payload.topics) <= {"x", "y"}
        assert payload.priority == 7

    @pytest.mark.parametrize(
        ("options", "error", "message"),
        [
            ({"keys": []}, ValueError, "keys must not be empty"),
            ({"topics": "t0"}, TypeError, r"use \['t0'\]"),
            ({"deliveries": []}, ValueError, "deliveries must not be empty"),
        ],
    )
    def test_payload_bad_options(
        self, options: dict[str, Any], error: type[Exception], message: str
    ) -> None:
        with pytest.raises(error, match=message):
            payloads(**options)

    @given(collector_sets())
    def test_collector_sets(self, collectors: list[Collector[Any]]) -> None:
        keys = [c.key for c in collectors]
        assert 1 <= len(keys) <= 4
        assert len(set(keys)) == len(keys)
        assert set(keys) <= set(KEYS)
        for collector in collectors:
            assert set(collector.topics) <= set(TOPICS)
            assert len(collector.topics) <= 2
            assert collector.timeout is None
            assert repr(recorder_of(collector)) == "Recorder()"
        assert len({id(recorder_of(c)) for c in collectors}) == len(collectors)

    @given(
        collector_sets(
            st.builds(Recorder, delay=st.just(2.0)),
            keys=["p", "q"],
            topics=[],
            timeouts=st.just(1.0),
            min_size=2,
            max_size=2,
        )
    )
    def test_collector_set_options(self, collectors: list[Collector[Any]]) -> None:
        assert sorted(c.key for c in collectors) == ["p", "q"]
        assert all(c.topics == () and c.timeout == 1.0 for c in collectors)
        assert all(recorder_of(c).delay == 2.0 for c in collectors)

    def test_collector_sets_in_any_order(self) -> None:
        found = find(collector_sets(min_size=2), lambda cs: cs[0].key > cs[1].key)
        assert [c.key for c in found] == ["k1", "k0"]

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"min_size": 0}, "need 1 <= min_size <= max_size, got 0 and 4"),
            ({"min_size": 3, "max_size": 2}, "got 3 and 2"),
            ({"keys": ["a", "a"], "min_size": 2}, r"at least min_size \(2\) distinct keys"),
        ],
    )
    def test_collector_set_bad_options(self, options: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            collector_sets(**options)

    @pytest.mark.parametrize("kind", ["ok", "error", "raise", "delay"])
    def test_recorders_of_every_kind(self, kind: str) -> None:
        def is_kind(recorder: Recorder) -> bool:
            if kind == "delay":
                return recorder.delay > 0
            if kind == "error":
                return isinstance(recorder.result, Error)
            if kind == "raise":
                return recorder.raises is not None
            return recorder.result is None and recorder.raises is None

        assert is_kind(find(recorders(), is_kind))

    def test_recorders_shrink_to_ok_at_once(self) -> None:
        assert repr(find(recorders(), lambda r: True)) == "Recorder()"


class TestWithoutHypothesis:
    """The kit without Hypothesis: all but the strategies, which say what to install."""

    def test_import(self) -> None:
        code = (
            "import sys; sys.modules['hypothesis'] = None\n"
            "import event_collector.testing, event_collector.testing.pytest_plugin\n"
            "try:\n"
            "    import event_collector.testing.strategies\n"
            "except ImportError as exc:\n"
            "    print(exc)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        )
        assert done.stdout == (
            "event_collector.testing.strategies needs Hypothesis: "
            "pip install 'event-collector[testing]'\n"
        )


QUEUE_TEST = """
import pytest
import trio
from event_collector import Collector, Payload
from event_collector.testing import Recorder, assert_routed_exactly

@pytest.fixture
def recorder():
    return Recorder(delay=1)

@pytest.fixture
def collectors(recorder):
    return [recorder.collector("a"), recorder.collector("b")]

@pytest.mark.trio
async def test_queue(collector_queue, recorder, autojump_clock):
    event = await collector_queue.get_publisher().send(Payload(1, keys=["b"]))
    assert_routed_exactly(await event.wait(), ["b"])
    assert recorder.received_by("b") == [event.payload]
    assert trio.current_time() == 1
"""


class TestPytestPlugin:
    """The plugin's fixtures give a running queue, configured by the user's fixtures."""

    def test_collector_queue(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(QUEUE_TEST)
        pytester.runpytest("-W", "error").assert_outcomes(passed=1)

    def test_options(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(
            QUEUE_TEST
            + """
@pytest.fixture(params=[2, 3])
def collector_queue_options(request):
    return {"autoscale": False, "max_consumers": request.param}

@pytest.mark.trio
async def test_options(collector_queue, collector_queue_options):
    assert collector_queue.consumer_count() == collector_queue_options["max_consumers"]
"""
        )
        result = pytester.runpytest("-W", "error", "-v")
        result.assert_outcomes(passed=4)
        result.stdout.fnmatch_lines(["*test_options?2? PASSED*", "*test_options?3? PASSED*"])

    def test_without_collectors(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(
            """
import pytest

@pytest.mark.trio
async def test_queue(collector_queue):
    pass
"""
        )
        result = pytester.runpytest("-W", "error")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(
            ["*the collector_queue fixture needs collectors: define a fixture named 'collectors'*"]
        )

    def test_a_failing_setup_fails_the_test(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(
            """
import contextlib
import pytest
from event_collector.testing import Recorder

@contextlib.asynccontextmanager
async def broken(ctx):
    raise OSError("no database")
    yield

@pytest.fixture
def collectors():
    return [Recorder().collector("a", lifecycle=broken)]

@pytest.mark.trio
async def test_queue(collector_queue):
    pass
"""
        )
        result = pytester.runpytest("-W", "error")
        result.assert_outcomes(failed=1)  # pytest-trio runs fixtures in the test's trio.run
        result.stdout.fnmatch_lines(["*OSError: no database*"])

    def test_disabled(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(QUEUE_TEST)
        result = pytester.runpytest("-p", "no:event_collector")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*fixture 'collector_queue' not found*"])

    def test_without_pytest_trio_or_hypothesis(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(
            """
from event_collector.testing import Recorder, assert_all_ok, run_on_mock_clock

def test_plain():
    assert_all_ok(run_on_mock_clock([Recorder(delay=1).collector("a")], [1, 2]))
"""
        )
        result = pytester.runpytest("-W", "error", "-p", "no:trio", "-p", "no:hypothesispytest")
        result.assert_outcomes(passed=1)

    def test_assertion_messages_in_pytest(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(
            """
from event_collector import Ok, ResultList
from event_collector.testing import assert_routed_exactly

def test_routing():
    assert_routed_exactly(ResultList([Ok(1)], ["a"]), ["b"])
"""
        )
        result = pytester.runpytest("-W", "error")
        result.assert_outcomes(failed=1)
        output = result.stdout.str()
        assert (
            '>       assert_routed_exactly(ResultList([Ok(1)], ["a"]), ["b"])\n'
            "E       AssertionError: the event reached ['a'], expected exactly ['b']: "
            "missing ['b']; unexpected ['a']\n"
        ) in output
        # __tracebackhide__: the traceback ends in the test, not inside the kit.
        assert "_assertions.py" not in output


class TestExampleSuite:
    """The example test suite of the docs passes, run as a user would run it."""

    def test_example_suite_passes(self) -> None:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-q",
                "examples/testing/test_user_suite.py",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.splitlines()[-1].startswith("6 passed")
