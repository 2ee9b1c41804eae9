"""
Payload, Ok/Error, ResultList and Context.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from event_collector import (
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


class TestPayload:
    """A payload stores its metadata as given and refuses bad metadata."""

    def test_defaults(self) -> None:
        payload = Payload({"id": 1})
        assert payload.value == {"id": 1}
        assert payload.delivery is Delivery.BROADCAST
        assert (payload.keys, payload.topics, payload.priority) == ((), (), None)

    def test_lists_become_tuples(self) -> None:
        payload = Payload(1, Delivery.KEY, keys=["a", "b"], topics=["t"], priority=3)
        assert payload.keys == ("a", "b")
        assert payload.topics == ("t",)
        assert payload.priority == 3

    def test_value_need_not_be_hashable(self) -> None:
        assert Payload([1, 2]) == Payload([1, 2])

    def test_frozen(self) -> None:
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            Payload(1).value = 2  # type: ignore[misc]  # frozen under test

    @pytest.mark.parametrize("field", ["keys", "topics"])
    def test_bare_string_is_refused(self, field: str) -> None:
        bad: dict[str, Any] = {field: "abc"}
        with pytest.raises(TypeError, match=f"{field} must be a sequence of str, not a str"):
            Payload(1, **bad)

    @pytest.mark.parametrize("field", ["keys", "topics"])
    def test_non_str_items_are_refused(self, field: str) -> None:
        bad: dict[str, Any] = {field: ["a", 2]}
        with pytest.raises(TypeError, match=f"{field} must hold str, got int"):
            Payload(1, **bad)

    def test_key_delivery_needs_keys(self) -> None:
        with pytest.raises(ValueError, match=r"Delivery\.KEY needs at least one key"):
            Payload(1, Delivery.KEY)

    def test_topic_delivery_needs_topics(self) -> None:
        with pytest.raises(ValueError, match=r"Delivery\.TOPIC needs at least one topic"):
            Payload(1, Delivery.TOPIC, keys=["a"])

    @pytest.mark.parametrize("priority", ["1", 1.0, True])
    def test_priority_must_be_an_int(self, priority: Any) -> None:
        with pytest.raises(TypeError, match="priority must be an int or None"):
            Payload(1, priority=priority)

    def test_delivery_must_be_a_delivery(self) -> None:
        with pytest.raises(TypeError, match="delivery must be a Delivery"):
            Payload(1, "key")  # type: ignore[arg-type]  # the slip under test


class TestResults:
    """Ok and Error answer the same questions and work in match."""

    def test_ok(self) -> None:
        result: Result[int] = Ok(3)
        assert (result.is_ok(), result.is_error()) == (True, False)
        assert result.unwrap() == 3
        assert result.unwrap_or(0) == 3

    def test_error_wraps_text(self) -> None:
        result = Error("bad input")
        assert (result.is_ok(), result.is_error()) == (False, True)
        assert isinstance(result.error, ProcessingError)
        with pytest.raises(ProcessingError, match="bad input"):
            result.unwrap()
        assert result.unwrap_or(0) == 0

    def test_error_raises_its_own_exception(self) -> None:
        exc = KeyError("k")
        with pytest.raises(KeyError) as info:
            Error(exc).unwrap()
        assert info.value is exc

    def test_error_refuses_other_types(self) -> None:
        with pytest.raises(TypeError, match="error must be an exception or a str"):
            Error(42)  # type: ignore[arg-type]  # the mistake under test

    @pytest.mark.parametrize("result", [Ok(1), Error("no")])
    def test_match(self, result: Result[int]) -> None:
        match result:
            case Ok(value):
                assert value == 1
            case Error(err):
                assert str(err) == "no"
            case _:  # pragma: no cover
                pytest.fail("neither Ok nor Error")


class TestResultList:
    """A ResultList is an immutable sequence that knows which collector said what."""

    def test_sequence(self) -> None:
        failure = Error("x")  # exceptions compare by identity, so reuse the same one
        results = ResultList([Ok(1), failure, Ok(3)], ["a", "b", "c"])
        assert len(results) == 3
        assert results[0] == Ok(1)
        assert list(results) == [Ok(1), failure, Ok(3)]
        assert results[1:] == ResultList([failure, Ok(3)], ["b", "c"])
        assert Ok(3) in results
        assert results.first() == Ok(1)

    def test_keys(self) -> None:
        results = ResultList([Ok(1), Ok(2)], ["a", None])
        assert results.keys == ("a", None)
        assert list(results.items()) == [("a", Ok(1)), (None, Ok(2))]
        assert results.by_key() == {"a": Ok(1)}
        assert results.delivered

    def test_keys_default_to_none(self) -> None:
        results = ResultList([Ok(None)])
        assert results.keys == (None,)
        assert not results.delivered

    def test_empty_first(self) -> None:
        with pytest.raises(IndexError, match="result list is empty"):
            ResultList([]).first()

    def test_bad_input(self) -> None:
        with pytest.raises(ValueError, match="one key"):
            ResultList([Ok(1)], ["a", "b"])
        with pytest.raises(TypeError, match="holds Ok or Error, got int"):
            ResultList([1])  # type: ignore[list-item]  # the mistake under test

    def test_frozen(self) -> None:
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            ResultList([Ok(1)]).results = ()  # type: ignore[misc]  # frozen under test

    async def test_async_iteration(self) -> None:
        results = ResultList([Ok(1), Ok(2)])
        iterator = results.iter()
        with trio.testing.assert_checkpoints():
            first = await iterator.__anext__()
        assert [first] + [r async for r in iterator] == [Ok(1), Ok(2)]

    @given(
        st.lists(
            st.tuples(
                st.one_of(st.builds(Ok, st.integers()), st.builds(Error, st.text())),
                st.none() | st.text(min_size=1, max_size=3),
            ),
            min_size=1,
        )
    )
    def test_views_agree(self, pairs: list[tuple[Result[int], str | None]]) -> None:
        results = ResultList([r for r, _ in pairs], [k for _, k in pairs])
        assert list(results.items()) == [(k, r) for r, k in pairs]
        assert results.first() == pairs[0][0]
        assert results.delivered == any(k is not None for _, k in pairs)
        expected = {}
        for result, key in pairs:
            if key is not None:
                expected[key] = result
        assert results.by_key() == expected


class TestContextAndEnums:
    """Context is an attribute bag; the enums have the reference members."""

    def test_context(self) -> None:
        ctx = Context(table="readings")
        ctx.client = "db"
        assert (ctx.table, ctx.client) == ("readings", "db")
        assert Context() == Context()
        with pytest.raises(AttributeError):
            _ = ctx.missing

    def test_enums(self) -> None:
        assert {d.name for d in Delivery} == {"BROADCAST", "KEY", "TOPIC"}
        assert {q.name for q in QueueType} == {"FIFO", "PRIORITY", "LIFO"}
