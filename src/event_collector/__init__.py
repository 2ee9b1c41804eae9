"""
event-collector: route events to async processors through a Trio consumer pool.

Everything public is importable from here; the modules ``event_collector.data``,
``.collector``, ``.router``, ``.queue``, ``.messagebus`` and ``.channels`` hold the same
names by topic.
"""

from ._channels import ChannelStatistics as ChannelStatistics
from ._channels import OrderedReceiveChannel as OrderedReceiveChannel
from ._channels import OrderedSendChannel as OrderedSendChannel
from ._channels import open_lifo_channel as open_lifo_channel
from ._channels import open_priority_channel as open_priority_channel
from ._collector import Collector as Collector
from ._collector import Lifecycle as Lifecycle
from ._collector import Processor as Processor
from ._data import Context as Context
from ._data import Delivery as Delivery
from ._data import Error as Error
from ._data import Ok as Ok
from ._data import Payload as Payload
from ._data import QueueType as QueueType
from ._data import Result as Result
from ._data import ResultList as ResultList
from ._errors import CollectorError as CollectorError
from ._errors import GatewayError as GatewayError
from ._errors import ProcessingError as ProcessingError
from ._errors import RemoteError as RemoteError
from ._errors import ShutdownError as ShutdownError
from ._event import CollectorEvent as CollectorEvent
from ._event import SentEvent as SentEvent
from ._messagebus import BusEvent as BusEvent
from ._messagebus import ConsumersScaled as ConsumersScaled
from ._messagebus import InitializedQueue as InitializedQueue
from ._messagebus import MessageBus as MessageBus
from ._messagebus import ReportedMetrics as ReportedMetrics
from ._messagebus import ShutDownQueue as ShutDownQueue
from ._metrics import Histogram as Histogram
from ._metrics import Metrics as Metrics
from ._metrics import QueueStatistics as QueueStatistics
from ._metrics import TimeHistograms as TimeHistograms
from ._public import fixup_module_metadata as _fixup_module_metadata
from ._publisher import EventPublisher as EventPublisher
from ._queue import CollectorQueue as CollectorQueue
from ._router import Router as Router
from ._router import SimpleRouter as SimpleRouter

__all__ = [
    "BusEvent",
    "ChannelStatistics",
    "Collector",
    "CollectorError",
    "CollectorEvent",
    "CollectorQueue",
    "ConsumersScaled",
    "Context",
    "Delivery",
    "Error",
    "EventPublisher",
    "GatewayError",
    "Histogram",
    "InitializedQueue",
    "Lifecycle",
    "MessageBus",
    "Metrics",
    "Ok",
    "OrderedReceiveChannel",
    "OrderedSendChannel",
    "Payload",
    "ProcessingError",
    "Processor",
    "QueueStatistics",
    "QueueType",
    "RemoteError",
    "ReportedMetrics",
    "Result",
    "ResultList",
    "Router",
    "SentEvent",
    "ShutDownQueue",
    "ShutdownError",
    "SimpleRouter",
    "TimeHistograms",
    "open_lifo_channel",
    "open_priority_channel",
]

_fixup_module_metadata(__name__, globals())
del _fixup_module_metadata
