"""
Priority and LIFO memory channels that behave like trio's memory channels.

``open_priority_channel`` releases the lowest priority number first (stable among equals,
items never compared); ``open_lifo_channel`` the most recently buffered item first. Both
support everything trio's memory channels do: ``send``/``send_nowait``, ``receive``/
``receive_nowait``, backpressure, ``clone()``, ``close()``, ``statistics()`` and ``async for``.
"""

from ._channels import ChannelStatistics as ChannelStatistics
from ._channels import OrderedReceiveChannel as OrderedReceiveChannel
from ._channels import OrderedSendChannel as OrderedSendChannel
from ._channels import open_lifo_channel as open_lifo_channel
from ._channels import open_priority_channel as open_priority_channel

__all__ = [
    "ChannelStatistics",
    "OrderedReceiveChannel",
    "OrderedSendChannel",
    "open_lifo_channel",
    "open_priority_channel",
]
