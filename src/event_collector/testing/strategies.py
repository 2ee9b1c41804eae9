"""
Hypothesis strategies for payloads and collector sets (needs the ``testing`` extra).

The default names are shared: :func:`collector_sets` draws keys from :data:`KEYS` and
topics from :data:`TOPICS`, and :func:`payloads` names those plus one key and one topic
that no drawn collector has, so that payloads reaching nobody are drawn too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final, TypeVar, overload

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover  (the tests extra has hypothesis)
    raise ImportError(
        "event_collector.testing.strategies needs Hypothesis: "
        "pip install 'event-collector[testing]'"
    ) from exc

from .._collector import Collector
from .._data import Delivery, Error, Payload
from ._recorder import Recorder

__all__ = [
    "KEYS",
    "TOPICS",
    "UNKNOWN_KEY",
    "UNKNOWN_TOPIC",
    "collector_sets",
    "payloads",
    "recorders",
]

T = TypeVar("T")

#: The collector keys :func:`collector_sets` draws from.
KEYS: Final = ("k0", "k1", "k2", "k3")
#: The topics :func:`collector_sets` draws from.
TOPICS: Final = ("t0", "t1", "t2")
#: A key :func:`payloads` names by default that no collector of :func:`collector_sets` has.
UNKNOWN_KEY: Final = "nobody"
#: A topic :func:`payloads` names by default that no collector of :func:`collector_sets`
#: listens to.
UNKNOWN_TOPIC: Final = "nothing"


def _names(field: str, names: Iterable[str]) -> list[str]:
    if isinstance(names, str):
        raise TypeError(f"{field} must be a sequence of str, not a str: use [{names!r}]")
    listed = list(names)
    if not listed:
        raise ValueError(f"{field} must not be empty")
    return listed


@overload
def payloads(
    values: None = None,
    *,
    keys: Iterable[str] = ...,
    topics: Iterable[str] = ...,
    deliveries: Iterable[Delivery] = ...,
    priorities: st.SearchStrategy[int | None] | None = ...,
) -> st.SearchStrategy[Payload[int]]: ...
@overload
def payloads(
    values: st.SearchStrategy[T],
    *,
    keys: Iterable[str] = ...,
    topics: Iterable[str] = ...,
    deliveries: Iterable[Delivery] = ...,
    priorities: st.SearchStrategy[int | None] | None = ...,
) -> st.SearchStrategy[Payload[T]]: ...
def payloads(
    values: st.SearchStrategy[Any] | None = None,
    *,
    keys: Iterable[str] = (*KEYS, UNKNOWN_KEY),
    topics: Iterable[str] = (*TOPICS, UNKNOWN_TOPIC),
    deliveries: Iterable[Delivery] = tuple(Delivery),
    priorities: st.SearchStrategy[int | None] | None = None,
) -> st.SearchStrategy[Payload[Any]]:
    """
    Draw payloads of every delivery mode, naming one to three keys or topics, any priority.

    Shrinks towards broadcast payloads (the first delivery given), fewer names and no
    priority.

    Args:
        values: Strategy for ``Payload.value``; integers by default.
        keys: The keys ``Delivery.KEY`` payloads name (with repeats).
        topics: The topics ``Delivery.TOPIC`` payloads name (with repeats).
        deliveries: The delivery modes to draw.
        priorities: Strategy for ``Payload.priority``; None or 0 to 3 by default.

    Raises:
        ValueError: ``keys``, ``topics`` or ``deliveries`` is empty.
        TypeError: ``keys`` or ``topics`` is a bare ``str``.
    """
    drawn_values: st.SearchStrategy[Any] = st.integers() if values is None else values
    drawn_priorities = st.none() | st.integers(0, 3) if priorities is None else priorities
    key_names = _names("keys", keys)
    topic_names = _names("topics", topics)
    modes = list(deliveries)
    if not modes:
        raise ValueError("deliveries must not be empty")

    def build(delivery: Delivery) -> st.SearchStrategy[Payload[Any]]:
        if delivery is Delivery.KEY:
            return st.builds(
                lambda value, names, priority: Payload(
                    value, Delivery.KEY, names, priority=priority
                ),
                drawn_values,
                st.lists(st.sampled_from(key_names), min_size=1, max_size=3),
                drawn_priorities,
            )
        if delivery is Delivery.TOPIC:
            return st.builds(
                lambda value, names, priority: Payload(
                    value, Delivery.TOPIC, topics=names, priority=priority
                ),
                drawn_values,
                st.lists(st.sampled_from(topic_names), min_size=1, max_size=3),
                drawn_priorities,
            )
        return st.builds(Payload, drawn_values, priority=drawn_priorities)

    return st.one_of([build(delivery) for delivery in modes])


def recorders(
    delays: st.SearchStrategy[float] | None = None,
) -> st.SearchStrategy[Recorder]:
    """
    Draw recorders that return ``Ok(payload.value)``, return an ``Error``, or raise.

    Each does so at once or after a delay. Shrinks towards a recorder that returns ``Ok`` at once.

    Args:
        delays: Strategy for ``Recorder.delay``; 0, 0.5, 1, 3 or 30 seconds by default.
    """
    drawn_delays = st.sampled_from([0.0, 0.5, 1.0, 3.0, 30.0]) if delays is None else delays
    return st.one_of(
        st.builds(Recorder, delay=drawn_delays),
        st.builds(Recorder, result=st.just(Error("refused")), delay=drawn_delays),
        st.builds(
            Recorder, raises=st.builds(ValueError, st.just("recorded failure")), delay=drawn_delays
        ),
    )


def collector_sets(
    recorders: st.SearchStrategy[Recorder] | None = None,
    *,
    keys: Sequence[str] = KEYS,
    topics: Sequence[str] = TOPICS,
    timeouts: st.SearchStrategy[float | None] | None = None,
    min_size: int = 1,
    max_size: int = 4,
) -> st.SearchStrategy[list[Collector[Any]]]:
    """
    Draw lists of collectors with unique keys, each listening to up to two topics.

    Each collector is made by a recorder of its own (found with
    :func:`~event_collector.testing.recorder_of`), so tests can check what each one
    received. The keys come in
    any order: the list order is the registration order of a queue built from it.

    Args:
        recorders: Strategy for the recorder behind each collector; by default one that
            returns ``Ok(payload.value)`` at once (pass :func:`recorders` for failures
            and delays).
        keys: The keys to draw from (at least ``max_size`` of them).
        topics: The topics collectors listen to.
        timeouts: Strategy for each collector's ``timeout``; None by default.
        min_size: The fewest collectors in a set (at least 1: a queue needs one).
        max_size: The most collectors in a set.

    Raises:
        ValueError: ``min_size`` is below 1 or above ``max_size``, or there are fewer
            keys than ``min_size``.
    """
    key_names = _names("keys", keys)
    topic_names = list(topics)
    if isinstance(topics, str):
        raise TypeError(f"topics must be a sequence of str, not a str: use [{topics!r}]")
    if not 1 <= min_size <= max_size:
        raise ValueError(f"need 1 <= min_size <= max_size, got {min_size} and {max_size}")
    if len(set(key_names)) < min_size:
        raise ValueError(f"need at least min_size ({min_size}) distinct keys")
    drawn_recorders = st.builds(Recorder) if recorders is None else recorders
    drawn_timeouts = st.none() if timeouts is None else timeouts
    drawn_topics = (
        st.lists(st.sampled_from(topic_names), max_size=2, unique=True)
        if topic_names
        else st.just([])
    )

    @st.composite
    def sets(draw: st.DrawFn) -> list[Collector[Any]]:
        chosen = draw(
            st.lists(st.sampled_from(key_names), min_size=min_size, max_size=max_size, unique=True)
        )
        return [
            draw(drawn_recorders).collector(
                key, topics=draw(drawn_topics), timeout=draw(drawn_timeouts)
            )
            for key in chosen
        ]

    return sets()
