"""
The public surface: every exported name exists and is documented.
"""

from __future__ import annotations

import importlib
import inspect
import pydoc
import re
from pathlib import Path

import pytest
import trio
import trio.testing

import event_collector
from event_collector import remote

from . import typing_checks

PUBLIC_MODULES = [
    "event_collector",
    *(
        f"event_collector.{m}"
        for m in (
            "data",
            "collector",
            "router",
            "queue",
            "channels",
            "messagebus",
            "remote",
            "testing",
            "testing.strategies",
            "testing.pytest_plugin",
            "prometheus",
        )
    ),
]
#: The testing kit's modules, documented name by name.
TESTING_NAMES = [
    (module_name, name)
    for module_name in ("event_collector.testing", "event_collector.testing.strategies")
    for name in importlib.import_module(module_name).__all__
]
API_DOCS = (Path(__file__).parent.parent / "docs" / "api.rst").read_text()


class TestAll:
    """Each public module's __all__ names real, documented objects."""

    @pytest.mark.parametrize("module_name", PUBLIC_MODULES)
    def test_names_exist(self, module_name: str) -> None:
        module = importlib.import_module(module_name)
        assert module.__doc__
        missing = [name for name in module.__all__ if not hasattr(module, name)]
        assert missing == []

    @pytest.mark.parametrize("name", event_collector.__all__)
    def test_documented(self, name: str) -> None:
        obj = getattr(event_collector, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{name} has no docstring"
        assert f"event_collector.{name}" in API_DOCS, f"{name} missing from docs/api.rst"

    def test_submodules_reexport_the_same_objects(self) -> None:
        for module_name in PUBLIC_MODULES[1:]:
            module = importlib.import_module(module_name)
            for name in module.__all__:
                if hasattr(event_collector, name):
                    assert getattr(module, name) is getattr(event_collector, name)


def help_text(obj: object) -> str:
    """
    What ``help(obj)`` prints, without the terminal's bold.
    """
    return re.sub(".\b", "", pydoc.render_doc(obj))


class TestPresentation:
    """Public names present themselves from their public home, without internals."""

    @pytest.mark.parametrize("name", event_collector.__all__)
    def test_module_is_the_package(self, name: str) -> None:
        obj = getattr(event_collector, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__module__ == "event_collector"

    @pytest.mark.parametrize("name", remote.__all__)
    def test_remote_names_are_public(self, name: str) -> None:
        obj = getattr(remote, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__module__ in ("event_collector", "event_collector.remote")
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert f"event_collector.remote.{name}" in API_DOCS or name.endswith("Error")

    @pytest.mark.parametrize(("module_name", "name"), TESTING_NAMES)
    def test_testing_kit_names_are_public_and_documented(self, module_name: str, name: str) -> None:
        obj = getattr(importlib.import_module(module_name), name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__module__ == module_name
            assert inspect.getdoc(obj), f"{name} has no docstring"
        assert f"{module_name}.{name}" in API_DOCS, f"{name} missing from docs/api.rst"

    def test_repr_of_a_class(self) -> None:
        assert repr(event_collector.CollectorQueue) == "<class 'event_collector.CollectorQueue'>"

    def test_help_of_the_queue_has_no_attrs_internals(self) -> None:
        text = help_text(event_collector.CollectorQueue)
        assert "__attrs" not in text
        assert "class CollectorQueue" in text

    def test_help_of_the_publisher_shows_no_constructor(self) -> None:
        text = help_text(event_collector.EventPublisher)
        assert "__init__" not in text
        assert "channel" not in text
        with pytest.raises(TypeError, match="no public constructor"):
            event_collector.EventPublisher()

    def test_help_of_a_channel_opener(self) -> None:
        text = help_text(event_collector.open_priority_channel)
        assert "class open_priority_channel" in text
        assert "_Subscriptable" not in text


class TestTyping:
    """The typing module is checked by mypy (strict) with the rest of the tests."""

    def test_typing_examples_run(self) -> None:
        trio.run(typing_checks.typed_round_trip, clock=trio.testing.MockClock(autojump_threshold=0))


class TestResults:
    """Results compare by value, so tests can assert on them directly."""

    def test_error_text_compares_by_message(self) -> None:
        assert event_collector.Error("text") == event_collector.Error("text")
        assert event_collector.Error("text") != event_collector.Error("other")
        assert hash(event_collector.ProcessingError("a")) == hash(
            event_collector.ProcessingError("a")
        )
        assert event_collector.Error(event_collector.ShutdownError()) == event_collector.Error(
            event_collector.ShutdownError()
        )

    async def test_collector_event_is_a_sent_event(self) -> None:
        queue = event_collector.CollectorQueue(
            [event_collector.Collector("a", typing_checks.double)], logging=False
        )
        async with queue:
            event = await queue.get_publisher().send(1)
            assert isinstance(event, event_collector.SentEvent)
            assert (await event.wait()).first() == event_collector.Ok(2)
