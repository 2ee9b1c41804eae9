"""
Helpers for testing code built on event-collector.

Recording collectors, queue runners on trio's mock clock, and assertions on results.

Hypothesis strategies live in :mod:`event_collector.testing.strategies` (they need the
``testing`` extra); the pytest fixtures in :mod:`event_collector.testing.pytest_plugin`,
which pytest loads by itself once the package is installed.
"""

from .._public import fixup_module_metadata as _fixup_module_metadata
from ._assertions import assert_all_ok as assert_all_ok
from ._assertions import assert_all_resolved as assert_all_resolved
from ._assertions import assert_routed_exactly as assert_routed_exactly
from ._recorder import Received as Received
from ._recorder import Recorder as Recorder
from ._recorder import recorder_of as recorder_of
from ._running import process_payloads as process_payloads
from ._running import run_on_mock_clock as run_on_mock_clock

__all__ = [
    "Received",
    "Recorder",
    "assert_all_ok",
    "assert_all_resolved",
    "assert_routed_exactly",
    "process_payloads",
    "recorder_of",
    "run_on_mock_clock",
]

_fixup_module_metadata(__name__, globals())
del _fixup_module_metadata
