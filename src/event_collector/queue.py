"""
The collector queue, its publisher and events, metrics, statistics, bus events, constants.
"""

from ._completions import DEFAULT_WINDOW as DEFAULT_WINDOW
from ._completions import Completions as Completions
from ._event import SCHEDULE_EVERY as SCHEDULE_EVERY
from ._event import SCHEDULE_SLICE as SCHEDULE_SLICE
from ._event import SEND_PAUSE as SEND_PAUSE
from ._event import YIELD_AFTER as YIELD_AFTER
from ._event import CollectorEvent as CollectorEvent
from ._event import SentEvent as SentEvent
from ._messagebus import ConsumersScaled as ConsumersScaled
from ._messagebus import InitializedQueue as InitializedQueue
from ._messagebus import ReportedMetrics as ReportedMetrics
from ._messagebus import ShutDownQueue as ShutDownQueue
from ._metrics import Histogram as Histogram
from ._metrics import Metrics as Metrics
from ._metrics import QueueStatistics as QueueStatistics
from ._metrics import TimeHistograms as TimeHistograms
from ._options import AVG_LOAD_INTERVAL as AVG_LOAD_INTERVAL
from ._options import CONSUMER_SHUTDOWN_TIMEOUT as CONSUMER_SHUTDOWN_TIMEOUT
from ._options import DEFAULT_MAX_CONSUMERS as DEFAULT_MAX_CONSUMERS
from ._options import DEFAULT_MIN_CONSUMERS as DEFAULT_MIN_CONSUMERS
from ._options import EVENT_SERVICE_DATA_WINDOW_SIZE as EVENT_SERVICE_DATA_WINDOW_SIZE
from ._options import METRICS_COLLECTOR_WINDOW_SIZE as METRICS_COLLECTOR_WINDOW_SIZE
from ._options import METRICS_WARMUP_INTERVAL as METRICS_WARMUP_INTERVAL
from ._options import MIN_METRICS_COLLECTOR_WINDOW_SIZE as MIN_METRICS_COLLECTOR_WINDOW_SIZE
from ._options import MONITOR_INTERVAL as MONITOR_INTERVAL
from ._options import REPORT_INTERVAL as REPORT_INTERVAL
from ._options import TIME_BUCKETS as TIME_BUCKETS
from ._options import WIP_MARGIN as WIP_MARGIN
from ._options import MonotonicTime as MonotonicTime
from ._publisher import EventPublisher as EventPublisher
from ._queue import CollectorQueue as CollectorQueue
from ._scaling import CHANGE_Z as CHANGE_Z
from ._scaling import MIN_RATE_EVENTS as MIN_RATE_EVENTS
from ._scaling import NOISE_MARGIN as NOISE_MARGIN
from ._scaling import RATE_HISTORY as RATE_HISTORY
from ._scaling import RATE_SAMPLES as RATE_SAMPLES
from ._scaling import SCALE_DOWN_SAMPLES as SCALE_DOWN_SAMPLES
from ._scaling import SHRINK_MARGINS as SHRINK_MARGINS
from ._scaling import WAKE_BACKLOG as WAKE_BACKLOG

__all__ = [
    "AVG_LOAD_INTERVAL",
    "CHANGE_Z",
    "CONSUMER_SHUTDOWN_TIMEOUT",
    "DEFAULT_MAX_CONSUMERS",
    "DEFAULT_MIN_CONSUMERS",
    "DEFAULT_WINDOW",
    "EVENT_SERVICE_DATA_WINDOW_SIZE",
    "METRICS_COLLECTOR_WINDOW_SIZE",
    "METRICS_WARMUP_INTERVAL",
    "MIN_METRICS_COLLECTOR_WINDOW_SIZE",
    "MIN_RATE_EVENTS",
    "MONITOR_INTERVAL",
    "NOISE_MARGIN",
    "RATE_HISTORY",
    "RATE_SAMPLES",
    "REPORT_INTERVAL",
    "SCALE_DOWN_SAMPLES",
    "SCHEDULE_EVERY",
    "SCHEDULE_SLICE",
    "SEND_PAUSE",
    "SHRINK_MARGINS",
    "TIME_BUCKETS",
    "WAKE_BACKLOG",
    "WIP_MARGIN",
    "YIELD_AFTER",
    "CollectorEvent",
    "CollectorQueue",
    "Completions",
    "ConsumersScaled",
    "EventPublisher",
    "Histogram",
    "InitializedQueue",
    "Metrics",
    "MonotonicTime",
    "QueueStatistics",
    "ReportedMetrics",
    "SentEvent",
    "ShutDownQueue",
    "TimeHistograms",
]
