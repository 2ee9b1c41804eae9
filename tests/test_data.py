"""
Payload, Ok/Error, ResultList, Context and the Delivery/QueueType enums.
"""

from __future__ import annotations

import copy
import enum
import pickle
import re
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from event_collector import (
    CollectorError,
    Context,
    Delivery,
    Error,
    Ok,
    Payload,
    ProcessingError,
    QueueType,
    Result,
    ResultList,
)
from event_collector.testing.strategies import KEYS

#: An ``Ok`` of an integer or an ``Error`` of a text (wrapped in ProcessingError).
results = st.one_of(st.builds(Ok, st.integers()), st.builds(Error, st.text(max_size=5)))
#: ``(result, key)`` pairs; keys repeat, are unknown ("nobody") or missing (None).
keyed_results = st.lists(st.tuples(results, st.none() | st.sampled_from([*KEYS, "nobody"])))


def message(info: pytest.ExceptionInfo[BaseException]) -> str:
    """
    Return the message of the exception ``pytest.raises`` caught.
    """
    return str(info.value)


class TestPayloadDefaults:
    """A payload built from a value alone is a broadcast without keys, topics or priority."""

    def test_defaults(self) -> None:
        payload = Payload({"id": 1})
        assert payload.value == {"id": 1}
        assert payload.delivery is Delivery.BROADCAST
        assert payload.keys == ()
        assert payload.topics == ()
        assert payload.priority is None

    def test_keyword_arguments(self) -> None:
        payload = Payload(value=1, delivery=Delivery.KEY, keys=["a"], topics=["t"], priority=7)
        assert (payload.value, payload.delivery) == (1, Delivery.KEY)
        assert (payload.keys, payload.topics, payload.priority) == (("a",), ("t",), 7)


class TestPayloadStorage:
    """A payload stores its value as given and its keys and topics as tuples."""

    def test_lists_become_tuples(self) -> None:
        payload = Payload(1, Delivery.KEY, keys=["a", "b"], topics=["t1", "t2"], priority=3)
        assert type(payload.keys) is tuple
        assert type(payload.topics) is tuple
        assert payload.keys == ("a", "b")
        assert payload.topics == ("t1", "t2")
        assert payload.priority == 3

    def test_any_iterable_of_str(self) -> None:
        payload = Payload(1, Delivery.TOPIC, keys=(k for k in "ab"), topics={"t": 1}.keys())
        assert payload.keys == ("a", "b")
        assert payload.topics == ("t",)

    def test_tuples_are_kept(self) -> None:
        payload = Payload(1, Delivery.KEY, keys=("a", "b"), topics=("t",))
        assert payload.keys == ("a", "b")
        assert payload.topics == ("t",)

    def test_value_need_not_be_hashable(self) -> None:
        value = {"rows": [1, 2]}
        payload = Payload(value)
        assert payload.value is value
        assert Payload([1, 2]) == Payload([1, 2])
        assert Payload([1, 2]) != Payload([1, 3])

    def test_value_is_not_copied(self) -> None:
        value: list[int] = []
        payload = Payload(value)
        value.append(1)
        assert payload.value == [1]

    def test_generic(self) -> None:
        payload = Payload[int](5, priority=0)
        assert payload.value == 5
        assert payload == Payload(5, priority=0)

    @pytest.mark.parametrize("priority", [0, -3, 100, 2**70])
    def test_int_priorities(self, priority: int) -> None:
        assert Payload(1, priority=priority).priority == priority

    def test_metadata_ignored_by_an_explicit_broadcast_is_kept(self) -> None:
        payload = Payload(1, Delivery.BROADCAST, keys=["a"], topics=["t"])
        assert payload.delivery is Delivery.BROADCAST
        assert (payload.keys, payload.topics) == (("a",), ("t",))

    def test_int_enum_priorities_are_kept(self) -> None:
        class Level(enum.IntEnum):
            HIGH = 0
            LOW = 9

        assert Payload(1, priority=Level.LOW).priority is Level.LOW


class TestDeliveryInference:
    """Left out, the delivery follows from keys and topics: a named payload never broadcasts."""

    def test_keys_mean_key_delivery(self) -> None:
        payload = Payload(1, keys=["a"])
        assert payload.delivery is Delivery.KEY
        assert payload.keys == ("a",)

    def test_topics_mean_topic_delivery(self) -> None:
        payload = Payload(1, topics=["t"])
        assert payload.delivery is Delivery.TOPIC
        assert payload.topics == ("t",)

    def test_neither_means_broadcast(self) -> None:
        assert Payload(1).delivery is Delivery.BROADCAST
        assert Payload(1, delivery=None).delivery is Delivery.BROADCAST

    def test_both_are_refused_with_what_to_write(self) -> None:
        with pytest.raises(ValueError, match="both given") as info:
            Payload(1, keys=["a"], topics=["t"])
        assert message(info) == (
            "keys and topics are both given: say which routes the payload, "
            "delivery=Delivery.KEY or delivery=Delivery.TOPIC"
        )

    def test_explicit_delivery_with_both(self) -> None:
        assert Payload(1, Delivery.TOPIC, keys=["a"], topics=["t"]).delivery is Delivery.TOPIC

    def test_frozen(self) -> None:
        payload = Payload(1)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            payload.value = 2  # type: ignore[misc]  # assigning a frozen field is the test
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            payload.keys = ("a",)  # type: ignore[misc]  # assigning a frozen field is the test
        assert payload.value == 1

    def test_copies_pickles_and_evolves(self) -> None:
        payload = Payload({"id": 1}, Delivery.KEY, ["a"], ["t"], priority=3)
        for same in (
            copy.copy(payload),
            copy.deepcopy(payload),
            pickle.loads(pickle.dumps(payload)),
        ):
            assert same == payload
            assert (same.value, same.keys, same.priority) == ({"id": 1}, ("a",), 3)
        assert attrs.evolve(payload, keys=["b"]).keys == ("b",)
        with pytest.raises(ValueError, match="needs at least one key"):
            attrs.evolve(payload, keys=[])  # evolve goes through the validating __init__
        ok = Ok([1])
        assert pickle.loads(pickle.dumps(ok)) == ok == copy.deepcopy(ok)
        assert hash(Ok(1)) == hash(Ok(1))


class TestPayloadValidation:
    """A payload refuses bad metadata with a TypeError or ValueError naming the rule."""

    @pytest.mark.parametrize("field", ["keys", "topics"])
    def test_bare_str(self, field: str) -> None:
        bad: dict[str, Any] = {field: "abc"}
        with pytest.raises(TypeError) as info:
            Payload(1, **bad)
        assert message(info) == f"{field} must be a sequence of str, not a str: use ['abc']"

    def test_bare_empty_str_keys(self) -> None:
        with pytest.raises(TypeError) as info:
            Payload(1, keys="")
        assert message(info) == "keys must be a sequence of str, not a str: use ['']"

    def test_bare_empty_str_topics(self) -> None:
        with pytest.raises(TypeError, match="topics must be a sequence of str, not a str"):
            Payload(1, topics="")

    @pytest.mark.parametrize("field", ["keys", "topics"])
    @pytest.mark.parametrize(
        ("item", "type_name"), [(2, "int"), (None, "NoneType"), (b"a", "bytes"), (("a",), "tuple")]
    )
    def test_non_str_items(self, field: str, item: object, type_name: str) -> None:
        bad: dict[str, Any] = {field: ["a", item]}
        with pytest.raises(TypeError) as info:
            Payload(1, **bad)
        assert message(info) == f"{field} must hold str, got {type_name}"

    @pytest.mark.parametrize("field", ["keys", "topics"])
    def test_non_str_items_in_a_tuple(self, field: str) -> None:
        bad: dict[str, Any] = {field: ("a", 1.5)}
        with pytest.raises(TypeError) as info:
            Payload(1, **bad)
        assert message(info) == f"{field} must hold str, got float"

    @pytest.mark.parametrize("other", [{}, {"topics": ["t"]}, {"keys": []}])
    def test_key_delivery_without_keys(self, other: dict[str, Any]) -> None:
        with pytest.raises(ValueError, match=r"^Delivery\.KEY needs at least one key$"):
            Payload(1, Delivery.KEY, **other)

    @pytest.mark.parametrize("other", [{}, {"keys": ["a"]}, {"topics": ()}])
    def test_topic_delivery_without_topics(self, other: dict[str, Any]) -> None:
        with pytest.raises(ValueError, match=r"^Delivery\.TOPIC needs at least one topic$"):
            Payload(1, Delivery.TOPIC, **other)

    @pytest.mark.parametrize(
        ("priority", "type_name"),
        [("1", "str"), (1.0, "float"), (True, "bool"), (False, "bool"), ([1], "list")],
    )
    def test_priority_must_be_an_int(self, priority: Any, type_name: str) -> None:
        with pytest.raises(TypeError) as info:
            Payload(1, priority=priority)
        assert message(info) == f"priority must be an int or None, got {type_name}"

    @pytest.mark.parametrize(("delivery", "type_name"), [("key", "str"), (1, "int")])
    def test_delivery_must_be_a_delivery(self, delivery: Any, type_name: str) -> None:
        with pytest.raises(TypeError) as info:
            Payload(1, delivery)
        assert message(info) == f"delivery must be a Delivery, got {type_name}"

    def test_queue_type_is_not_a_delivery(self) -> None:
        with pytest.raises(TypeError, match=r"^delivery must be a Delivery, got QueueType$"):
            Payload(1, QueueType.FIFO)  # type: ignore[arg-type]  # the mix-up under test


class TestOk:
    """Ok is a success that hands back its value."""

    def test_questions(self) -> None:
        result: Result[int] = Ok(3)
        assert result.is_ok() is True
        assert result.is_error() is False

    def test_unwrap(self) -> None:
        value = object()
        assert Ok(value).unwrap() is value
        assert Ok(None).unwrap() is None

    def test_unwrap_or_ignores_the_default(self) -> None:
        assert Ok(3).unwrap_or(0) == 3
        assert Ok(None).unwrap_or("default") is None

    def test_value_and_equality(self) -> None:
        assert Ok[int](1).value == 1
        assert Ok([1]) == Ok([1])
        assert Ok(1) != Ok(2)
        failure: object = Error("1")
        assert Ok(1) != failure

    def test_frozen(self) -> None:
        ok = Ok(1)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            ok.value = 2  # type: ignore[misc]  # assigning a frozen field is the test
        assert ok.value == 1


class TestError:
    """Error holds an exception: text is wrapped in ProcessingError, anything else refused."""

    def test_questions(self) -> None:
        result: Result[int] = Error("bad input")
        assert result.is_ok() is False
        assert result.is_error() is True

    def test_text_is_wrapped(self) -> None:
        result = Error("bad input")
        assert type(result.error) is ProcessingError
        assert isinstance(result.error, CollectorError)
        assert result.error.args == ("bad input",)

    def test_unwrap_raises_the_wrapped_text(self) -> None:
        with pytest.raises(ProcessingError, match=r"^bad input$"):
            Error("bad input").unwrap()

    def test_unwrap_raises_that_very_exception(self) -> None:
        exc = KeyError("k")
        result = Error(exc)
        assert result.error is exc
        with pytest.raises(KeyError) as info:
            result.unwrap()
        assert info.value is exc

    def test_base_exceptions_are_kept(self) -> None:
        exc = KeyboardInterrupt()
        assert Error(exc).error is exc
        too_slow = trio.TooSlowError()
        assert Error(error=too_slow).error is too_slow

    def test_unwrap_or_returns_the_default(self) -> None:
        default = object()
        assert Error("x").unwrap_or(default) is default
        assert Error(ValueError()).unwrap_or(None) is None

    @pytest.mark.parametrize(
        ("error", "type_name"),
        [(42, "int"), (None, "NoneType"), (b"text", "bytes"), (ValueError, "type")],
    )
    def test_other_types_are_refused(self, error: Any, type_name: str) -> None:
        with pytest.raises(TypeError) as info:
            Error(error)
        assert message(info) == f"error must be an exception or a str, got {type_name}"

    def test_equality_follows_the_exception(self) -> None:
        exc = ValueError("x")
        assert Error(exc) == Error(exc)
        assert Error(ValueError("x")) != Error(ValueError("x"))  # exceptions: by identity

    def test_frozen(self) -> None:
        result = Error("x")
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            result.error = ValueError()  # type: ignore[misc]  # assigning a frozen field is the test
        assert type(result.error) is ProcessingError


class TestMatch:
    """Ok and Error destructure in a match statement."""

    @staticmethod
    def describe(result: Result[int]) -> str:
        match result:
            case Ok(value):
                return f"ok {value}"
            case Error(ProcessingError() as err):
                return f"processing {err}"
            case Error(err):
                return f"error {type(err).__name__}"
        raise AssertionError("unreachable")  # pragma: no cover

    @pytest.mark.parametrize(
        ("result", "described"),
        [
            (Ok(1), "ok 1"),
            (Error("no"), "processing no"),
            (Error(ValueError("v")), "error ValueError"),
        ],
    )
    def test_match(self, result: Result[int], described: str) -> None:
        assert self.describe(result) == described

    def test_match_args(self) -> None:
        assert Ok.__match_args__ == ("value",)
        assert Error.__match_args__ == ("error",)


class TestResultListSequence:
    """A ResultList is an immutable sequence of results, indexed and sliced like a tuple."""

    failure = Error("x")  # exceptions compare by identity: reuse one
    rl: ResultList[int] = ResultList([Ok(1), failure, Ok(3)], ["a", "b", "c"])

    def test_len(self) -> None:
        assert len(self.rl) == 3
        assert len(ResultList([])) == 0

    def test_index(self) -> None:
        assert self.rl[0] == Ok(1)
        assert self.rl[1] is self.failure
        assert self.rl[-1] == Ok(3)
        with pytest.raises(IndexError):
            self.rl[3]

    def test_slice_keeps_keys(self) -> None:
        tail = self.rl[1:]
        assert type(tail) is ResultList
        assert tail == ResultList[int]([self.failure, Ok(3)], ["b", "c"])
        assert tail.keys == ("b", "c")
        assert self.rl[::-2] == ResultList([Ok(3), Ok(1)], ["c", "a"])

    def test_empty_slice(self) -> None:
        empty = self.rl[5:]
        assert (empty.results, empty.keys) == ((), ())
        assert not empty.delivered

    def test_iteration(self) -> None:
        assert list(self.rl) == [Ok(1), self.failure, Ok(3)]
        assert list(reversed(self.rl)) == [Ok(3), self.failure, Ok(1)]

    def test_sequence_methods(self) -> None:
        assert Ok(3) in self.rl
        assert Ok(2) not in self.rl
        assert self.rl.index(Ok(3)) == 2
        assert self.rl.count(Ok(1)) == 1

    def test_results_are_a_tuple(self) -> None:
        assert self.rl.results == (Ok(1), self.failure, Ok(3))
        assert ResultList(r for r in [Ok(1)]).results == (Ok(1),)


class TestResultListFirst:
    """first() returns the first result, and IndexError when there is none."""

    def test_first(self) -> None:
        failure = Error("x")
        assert ResultList[int]([failure, Ok(2)]).first() is failure
        assert ResultList([Ok(1)], ["a"]).first() == Ok(1)

    def test_empty(self) -> None:
        with pytest.raises(IndexError, match=r"^result list is empty$"):
            ResultList([]).first()


class TestResultListKeys:
    """A ResultList knows which collector gave each result."""

    def test_keys_default_to_none(self) -> None:
        rl = ResultList([Ok(1), Ok(2)])
        assert rl.keys == (None, None)
        assert list(rl.items()) == [(None, Ok(1)), (None, Ok(2))]
        assert rl.by_key() == {}
        assert rl.delivered is False

    def test_items(self) -> None:
        rl = ResultList([Ok(1), Ok(2)], ["a", None])
        assert rl.keys == ("a", None)
        assert list(rl.items()) == [("a", Ok(1)), (None, Ok(2))]

    def test_by_key_skips_results_without_collector(self) -> None:
        failure = Error("b failed")
        rl: ResultList[int] = ResultList([Ok(1), failure, Ok(3)], ["a", "b", None])
        assert rl.by_key() == {"a": Ok(1), "b": failure}

    @pytest.mark.parametrize(
        ("keys", "delivered"),
        [([None], False), (["a"], True), ([None, "b"], True), ([None, None], False)],
    )
    def test_delivered(self, keys: list[str | None], delivered: bool) -> None:
        assert ResultList([Ok(None)] * len(keys), keys).delivered is delivered

    def test_not_delivered_shape(self) -> None:
        rl = ResultList([Ok(None)])
        assert rl.keys == (None,)
        assert rl.delivered is False

    def test_keys_are_a_tuple(self) -> None:
        assert ResultList([Ok(1)], (k for k in ["a"])).keys == ("a",)


class TestResultListValidation:
    """A ResultList refuses non-results and keys that do not pair with the results."""

    @pytest.mark.parametrize(
        ("results", "keys"),
        [([Ok(1)], ["a", "b"]), ([Ok(1), Ok(2)], ["a"]), ([], [None]), ([Ok(1)], [])],
    )
    def test_length_mismatch(self, results: list[Result[int]], keys: list[str | None]) -> None:
        rule = "a ResultList needs exactly one key (or None) per result"
        with pytest.raises(ValueError, match=f"^{re.escape(rule)}$"):
            ResultList(results, keys)

    @pytest.mark.parametrize(
        ("item", "type_name"),
        [(1, "int"), (None, "NoneType"), ("ok", "str"), (ValueError(), "ValueError")],
    )
    def test_non_result(self, item: object, type_name: str) -> None:
        with pytest.raises(TypeError) as info:
            ResultList[int]([Ok(1), item])  # type: ignore[list-item]  # a non-result is the test
        assert message(info) == f"a ResultList holds Ok or Error, got {type_name}"

    def test_nested_result_list(self) -> None:
        with pytest.raises(TypeError, match=r"^a ResultList holds Ok or Error, got ResultList$"):
            ResultList[int]([ResultList([Ok(1)])])  # type: ignore[list-item]  # the slip under test


class TestResultListValue:
    """ResultLists compare by results and keys and cannot be changed."""

    def test_equality(self) -> None:
        assert ResultList([Ok(1)], ["a"]) == ResultList((Ok(1),), ("a",))
        assert ResultList([Ok(1)], ["a"]) != ResultList([Ok(1)], ["b"])
        assert ResultList([Ok(1)], ["a"]) != ResultList([Ok(2)], ["a"])
        plain: object = (Ok(1),)
        assert ResultList([Ok(1)]) != plain

    def test_hashable_when_its_results_are(self) -> None:
        assert hash(ResultList([Ok(1)], ["a"])) == hash(ResultList([Ok(1)], ["a"]))

    @pytest.mark.parametrize("field", ["results", "keys"])
    def test_frozen(self, field: str) -> None:
        rl = ResultList([Ok(1)], ["a"])
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(rl, field, ())
        assert (rl.results, rl.keys) == ((Ok(1),), ("a",))

    def test_no_item_assignment(self) -> None:
        rl = ResultList([Ok(1)])
        with pytest.raises(TypeError):
            rl[0] = Ok(2)  # type: ignore[index]  # item assignment is the test
        assert rl[0] == Ok(1)


class TestResultListAsyncIteration:
    """rl.iter() yields every result, and each step is a checkpoint."""

    async def test_yields_all(self) -> None:
        failure = Error("x")
        rl: ResultList[int] = ResultList([Ok(1), failure, Ok(3)], ["a", "b", "c"])
        seen = [result async for result in rl.iter()]
        assert seen == [Ok(1), failure, Ok(3)]

    async def test_each_step_is_a_checkpoint(self) -> None:
        iterator = ResultList([Ok(1), Ok(2)]).iter()
        seen: list[Result[Any]] = []
        for _ in range(2):
            with trio.testing.assert_checkpoints():
                seen.append(await anext(iterator))
        with trio.testing.assert_checkpoints(), pytest.raises(StopAsyncIteration):
            await anext(iterator)
        assert seen == [Ok(1), Ok(2)]

    async def test_empty_list_still_checkpoints(self) -> None:
        iterator = ResultList[int]([]).iter()
        with trio.testing.assert_checkpoints(), pytest.raises(StopAsyncIteration):
            await anext(iterator)

    async def test_each_call_starts_over(self) -> None:
        rl = ResultList([Ok(1), Ok(2)])
        assert [r async for r in rl.iter()] == [r async for r in rl.iter()] == [Ok(1), Ok(2)]


class TestResultListProperties:
    """For any results and keys, the views of a ResultList agree with its inputs."""

    @given(keyed_results)
    def test_views_agree(self, pairs: list[tuple[Result[int], str | None]]) -> None:
        given_results = [result for result, _ in pairs]
        given_keys = [key for _, key in pairs]
        rl = ResultList(given_results, given_keys)
        assert len(rl) == len(pairs)
        assert list(rl) == given_results
        assert rl.results == tuple(given_results)
        assert rl.keys == tuple(given_keys)
        assert list(rl.items()) == [(key, result) for result, key in pairs]
        expected: dict[str, Result[int]] = {}
        for result, key in pairs:
            if key is not None:
                expected[key] = result  # the last result of a repeated key wins
        assert rl.by_key() == expected
        assert rl.delivered is any(key is not None for key in given_keys)
        if pairs:
            assert rl.first() is given_results[0]
        else:
            with pytest.raises(IndexError):
                rl.first()

    @given(keyed_results, st.slices(10))
    def test_slices_agree(self, pairs: list[tuple[Result[int], str | None]], index: slice) -> None:
        rl = ResultList([result for result, _ in pairs], [key for _, key in pairs])
        part = rl[index]
        assert part == ResultList([r for r, _ in pairs[index]], [k for _, k in pairs[index]])
        assert list(part.items()) == [(key, result) for result, key in pairs[index]]

    @given(keyed_results)
    def test_default_keys(self, pairs: list[tuple[Result[int], str | None]]) -> None:
        rl = ResultList([result for result, _ in pairs])
        assert rl.keys == (None,) * len(pairs)
        assert rl.by_key() == {}
        assert rl.delivered is False


class TestContext:
    """Context is a plain attribute bag."""

    def test_keyword_attributes(self) -> None:
        ctx = Context(table="readings", retries=3)
        assert (ctx.table, ctx.retries) == ("readings", 3)

    def test_set_and_delete(self) -> None:
        ctx = Context()
        ctx.client = "db"
        assert ctx.client == "db"
        assert vars(ctx) == {"client": "db"}
        del ctx.client
        assert vars(ctx) == {}

    def test_missing_attribute(self) -> None:
        with pytest.raises(AttributeError, match="missing"):
            _ = Context().missing

    def test_equality_by_contents(self) -> None:
        assert Context() == Context()
        assert Context(a=1) == Context(a=1)
        assert Context(a=1) != Context(a=2)


class TestEnums:
    """Delivery and QueueType have the reference members, in order."""

    def test_delivery(self) -> None:
        assert [(d.name, d.value) for d in Delivery] == [
            ("BROADCAST", "broadcast"),
            ("KEY", "key"),
            ("TOPIC", "topic"),
        ]
        assert Delivery("key") is Delivery.KEY

    def test_queue_type(self) -> None:
        assert [(q.name, q.value) for q in QueueType] == [
            ("FIFO", "fifo"),
            ("PRIORITY", "priority"),
            ("LIFO", "lifo"),
        ]
        assert QueueType("lifo") is QueueType.LIFO


class TestResultListKeyRules:
    """ResultList keys refuse the slips Payload keys refuse."""

    def test_bare_str(self) -> None:
        with pytest.raises(TypeError, match="keys must be a sequence of str or None, not a str"):
            ResultList([Ok(1), Ok(2)], "ab")

    def test_non_str_key(self) -> None:
        with pytest.raises(TypeError, match="keys must hold str or None, got int"):
            ResultList([Ok(1)], [1])  # type: ignore[list-item]  # the mistake under test
