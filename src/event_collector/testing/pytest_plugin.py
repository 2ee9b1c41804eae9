"""
pytest fixtures that run a :class:`~event_collector.CollectorQueue` for a test.

pytest loads this plugin by itself once event-collector is installed (the ``pytest11``
entry point ``event_collector``; ``-p no:event_collector`` turns it off). The queue
fixture is async: it needs pytest-trio (``trio_mode = true``, or ``@pytest.mark.trio`` on
the test). The plugin imports neither pytest-trio nor Hypothesis: test suites without them
load it too, and only a test that asks for ``collector_queue`` needs pytest-trio.

Fixtures:

- ``collectors``: the collectors of the queue. Override it in your ``conftest.py`` or test
  module; the default fails the test, saying so.
- ``collector_queue_options``: keyword options of the queue, a dict; ``{}`` by default.
  Override it too, or parametrize it.
- ``collector_queue``: a running ``CollectorQueue(collectors, **collector_queue_options)``,
  shut down gracefully when the test is done.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from event_collector import Collector, CollectorQueue

__all__ = ["collector_queue", "collector_queue_options", "collectors"]


@pytest.fixture
def collectors() -> Sequence[Collector[Any]]:
    """
    Give the collectors of ``collector_queue``: override this fixture with yours.
    """
    pytest.fail(
        "the collector_queue fixture needs collectors: define a fixture named 'collectors' "
        "returning a list of Collector, in your conftest.py or test module",
        pytrace=False,
    )


@pytest.fixture
def collector_queue_options() -> dict[str, Any]:
    """
    Give the keyword options of ``collector_queue``: override this fixture to change them.
    """
    return {}


@pytest.fixture
async def collector_queue(
    collectors: Sequence[Collector[Any]], collector_queue_options: dict[str, Any]
) -> AsyncIterator[CollectorQueue[Any]]:
    """
    Run a queue of ``collectors`` with ``collector_queue_options`` for the test.

    Started before the test, shut down gracefully after it (events still queued then are
    processed for up to ``consumer_shutdown_timeout``); a lifecycle that fails to set up
    or tear down fails the test.
    """
    async with CollectorQueue(collectors, **collector_queue_options) as queue:
        yield queue
