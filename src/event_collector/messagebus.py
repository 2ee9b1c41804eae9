"""
The queue's message bus and the events it publishes.
"""

from ._messagebus import BusEvent as BusEvent
from ._messagebus import BusEventQueue as BusEventQueue
from ._messagebus import ConsumersScaled as ConsumersScaled
from ._messagebus import InitializedQueue as InitializedQueue
from ._messagebus import MessageBus as MessageBus
from ._messagebus import MessageHandler as MessageHandler
from ._messagebus import ReportedMetrics as ReportedMetrics
from ._messagebus import ShutDownQueue as ShutDownQueue

__all__ = [
    "BusEvent",
    "BusEventQueue",
    "ConsumersScaled",
    "InitializedQueue",
    "MessageBus",
    "MessageHandler",
    "ReportedMetrics",
    "ShutDownQueue",
]
