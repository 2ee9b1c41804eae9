"""
The queue's options: their defaults and how each is checked.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from typing import Final, TypeAlias, TypeVar

from ._collector import Collector
from ._router import Router

__all__ = [
    "AVG_LOAD_INTERVAL",
    "CONSUMER_SHUTDOWN_TIMEOUT",
    "DEFAULT_MAX_CONSUMERS",
    "DEFAULT_MIN_CONSUMERS",
    "EVENT_SERVICE_DATA_WINDOW_SIZE",
    "METRICS_COLLECTOR_WINDOW_SIZE",
    "METRICS_WARMUP_INTERVAL",
    "MIN_METRICS_COLLECTOR_WINDOW_SIZE",
    "MONITOR_INTERVAL",
    "REPORT_INTERVAL",
    "TIME_BUCKETS",
    "WIP_MARGIN",
    "MonotonicTime",
]

T = TypeVar("T")

#: A point on trio's clock (``trio.current_time()``), in seconds.
MonotonicTime: TypeAlias = float

#: Consumers the pool starts with and never goes below.
DEFAULT_MIN_CONSUMERS: Final = 1
#: Consumers the pool never goes above; the whole pool when ``autoscale=False``.
DEFAULT_MAX_CONSUMERS: Final = 100
#: Seconds a graceful shutdown keeps processing queued events before cancelling.
CONSUMER_SHUTDOWN_TIMEOUT: Final = 10.0
#: Fraction of the measured demand kept spare when it is more than the square-root margin
#: (above a demand of (NOISE_MARGIN / 0.15)**2 = 44): about three standard errors of a mean
#: over 500 service times with a coefficient of variation of 1.
WIP_MARGIN: Final = 0.15
#: Seconds between two load measurements of the supervisor (while the queue is not idle).
MONITOR_INTERVAL: Final = 0.01
#: Seconds between two metrics log entries; 0 turns the reporter off.
REPORT_INTERVAL: Final = 0.0
#: Seconds of load history behind ``Metrics.avg_load``.
AVG_LOAD_INTERVAL: Final = 60.0
#: Seconds of arrivals and departures behind the rates.
METRICS_COLLECTOR_WINDOW_SIZE: Final = 60.0
#: Smallest allowed ``metrics_collector_window_size``.
MIN_METRICS_COLLECTOR_WINDOW_SIZE: Final = 5.0
#: Completed events behind ``Metrics.service_time`` and ``Metrics.wait_time``.
EVENT_SERVICE_DATA_WINDOW_SIZE: Final = 500
#: Seconds after start during which averages read 0.
METRICS_WARMUP_INTERVAL: Final = 3.0
#: Upper bounds (seconds) of the buckets of the service and wait time histograms: from
#: 0.1 ms, since processors that only route or write to a socket take well under 1 ms, to
#: a minute.
TIME_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


def to_collectors(collectors: Sequence[Collector[T]]) -> tuple[Collector[T], ...]:
    checked: object = collectors  # callers may not be type-checked
    if isinstance(checked, Collector) or not isinstance(checked, Sequence):
        raise TypeError("collectors must be a list of Collector instances")
    for collector in checked:
        if isinstance(collector, type):
            raise TypeError(
                f"collectors must be Collector instances, not classes: got {collector.__name__}"
            )
        if not isinstance(collector, Collector):
            raise TypeError(f"collectors must be Collector instances, got {collector!r}")
    if not collectors:
        raise ValueError("collectors must not be empty")
    seen: set[str] = set()
    for collector in collectors:
        if collector.key in seen:
            raise ValueError(f"collector keys must be unique: {collector.key!r} appears twice")
        seen.add(collector.key)
    return tuple(collectors)


def check_router(router: object) -> None:
    if not (isinstance(router, type) and issubclass(router, Router)):
        raise TypeError(f"router must be a Router subclass (the class itself), got {router!r}")
    if router.select is Router.select and router.handle_event is Router.handle_event:
        raise TypeError(f"router {router.__name__} must override select() or handle_event()")


def _is_number(value: object) -> bool:
    return type(value) is not bool and isinstance(value, int | float) and not math.isnan(value)


def check_positive(
    name: str, value: object, *, allow_zero: bool = False, minimum: float = 0
) -> None:
    if not _is_number(value):
        raise TypeError(f"{name} must be a number, got {value!r}")
    assert isinstance(value, int | float)
    if minimum and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def check_count(name: str, value: object) -> None:
    if type(value) is not int:
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")


def check_queue_size(value: object) -> None:
    if value == math.inf:
        return
    if type(value) is not int:
        raise TypeError(f"max_queue_size must be an int or math.inf, got {value!r}")
    if value < 1:
        raise ValueError(f"max_queue_size must be >= 1, got {value!r}")


def check_margin(value: object) -> None:
    if not _is_number(value):
        raise TypeError(f"wip_margin must be a number, got {value!r}")
    assert isinstance(value, int | float)
    if not 0 <= value <= 1:
        raise ValueError(f"wip_margin must be between 0 and 1, got {value!r}")


def check_bool(name: str, value: object) -> None:
    if type(value) is not bool:
        raise TypeError(f"{name} must be True or False, got {value!r}")


def check_level(value: object) -> None:
    if value is None:
        return
    if type(value) is not int:
        raise TypeError(
            f"failure_log_level must be a logging level (an int such as logging.WARNING) "
            f"or None, got {value!r}"
        )
    if not logging.DEBUG <= value <= logging.CRITICAL:
        raise ValueError(f"failure_log_level must be between 10 and 50, got {value!r}")


def check_name(value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"name must be a str, got {value!r}")
    if not value:
        raise ValueError("name must not be empty")


def to_buckets(value: object) -> tuple[float, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"time_buckets must be a sequence of numbers, got {value!r}")
    if not value:
        raise ValueError("time_buckets must not be empty")
    for bound in value:
        if not _is_number(bound):
            raise TypeError(f"time_buckets must be numbers, got {bound!r}")
    bounds = tuple(float(bound) for bound in value)
    if bounds[0] <= 0 or not math.isfinite(bounds[-1]):
        raise ValueError(f"time_buckets must be > 0 and finite, got {list(value)!r}")
    if any(lower >= upper for lower, upper in itertools.pairwise(bounds)):
        raise ValueError(f"time_buckets must be increasing, got {list(value)!r}")
    return bounds
