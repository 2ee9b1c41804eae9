"""
The public surface: every exported name exists, is documented, and the demo runs.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
import trio
import trio.testing

import event_collector
from event_collector import _demo

PUBLIC_MODULES = [
    "event_collector",
    *(
        f"event_collector.{m}"
        for m in ("data", "collector", "router", "queue", "channels", "messagebus")
    ),
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


class TestDemo:
    """The getting-started demo prints 100 results and the elapsed time."""

    async def test_demo(
        self, autojump_clock: trio.abc.Clock, capsys: pytest.CaptureFixture[str]
    ) -> None:
        args = _demo.build_parser().parse_args(["--report-interval", "0"])
        await _demo.run_demo(args)
        lines = capsys.readouterr().out.splitlines()
        results = [line for line in lines if line.startswith("{'id'")]
        assert len(results) == 100
        assert results[0].startswith("{'id': 'payload-0'")
        assert lines[-1].startswith("elapsed=")
