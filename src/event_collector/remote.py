"""
The distributed modes: producers, and worker processes on any host, through a broker.

The endpoint picks the broker:

- **ZeroMQ** (``tcp://...``, ``ipc://...``; the ``zmq`` extra): :func:`open_gateway` binds an
  endpoint for producers and one for workers, queues tasks and gives each to a worker with
  credit; results go back to the producer that sent them.
- **Redis Streams** (``redis://...``, ``rediss://...``; the ``redis`` extra): no gateway,
  Redis is the broker, and tasks survive restarts.

:func:`open_worker` runs your collectors (the same ones as in-process) in a
:class:`~event_collector.CollectorQueue` fed by the broker; :func:`open_producer` sends payloads
and returns :class:`RemoteEvent`, whose ``wait()`` gives the same ResultList as an in-process
event. Delivery is at least once (a task held by a worker that dies runs again elsewhere), and
each event resolves exactly once (duplicates are dropped by task id).

The names of one transport load only when first used, so an install with one extra never
imports the other's library.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from ._errors import GatewayError as GatewayError
from ._errors import RemoteError as RemoteError
from ._producer import DEFAULT_WINDOW as DEFAULT_WINDOW
from ._producer import Producer as Producer
from ._producer import ProducerStatistics as ProducerStatistics
from ._producer import RemoteEvent as RemoteEvent
from ._producer import open_producer as open_producer
from ._public import fixup_module_metadata as _fixup_module_metadata
from ._worker import Worker as Worker
from ._worker import WorkerStatistics as WorkerStatistics
from ._worker import load_collectors as load_collectors
from ._worker import open_worker as open_worker

if TYPE_CHECKING:
    from ._gateway import DEFAULT_CAPACITY as DEFAULT_CAPACITY
    from ._gateway import DEFAULT_MAX_ATTEMPTS as DEFAULT_MAX_ATTEMPTS
    from ._gateway import DEFAULT_PRIORITY as DEFAULT_PRIORITY
    from ._gateway import Gateway as Gateway
    from ._gateway import GatewayStatistics as GatewayStatistics
    from ._gateway import open_gateway as open_gateway
    from ._redis_producer import RedisProducer as RedisProducer
    from ._redis_status import RedisQueueStatistics as RedisQueueStatistics
    from ._redis_status import redis_queue_statistics as redis_queue_statistics
    from ._remote import CurveClient as CurveClient
    from ._remote import CurveServer as CurveServer
    from ._remote import Heartbeat as Heartbeat
    from ._serializer import MsgpackSerializer as MsgpackSerializer
    from ._serializer import Serializer as Serializer

#: The names loaded when first used, and their modules.
_LAZY = {
    "DEFAULT_CAPACITY": "._gateway",
    "DEFAULT_MAX_ATTEMPTS": "._gateway",
    "DEFAULT_PRIORITY": "._gateway",
    "Gateway": "._gateway",
    "GatewayStatistics": "._gateway",
    "open_gateway": "._gateway",
    "RedisProducer": "._redis_producer",
    "RedisQueueStatistics": "._redis_status",
    "redis_queue_statistics": "._redis_status",
    "CurveClient": "._remote",
    "CurveServer": "._remote",
    "Heartbeat": "._remote",
    "MsgpackSerializer": "._serializer",
    "Serializer": "._serializer",
}

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_PRIORITY",
    "DEFAULT_WINDOW",
    "CurveClient",
    "CurveServer",
    "Gateway",
    "GatewayError",
    "GatewayStatistics",
    "Heartbeat",
    "MsgpackSerializer",
    "Producer",
    "ProducerStatistics",
    "RedisProducer",
    "RedisQueueStatistics",
    "RemoteError",
    "RemoteEvent",
    "Serializer",
    "Worker",
    "WorkerStatistics",
    "load_collectors",
    "open_gateway",
    "open_producer",
    "open_worker",
    "redis_queue_statistics",
]


def __getattr__(name: str) -> Any:
    """
    Load a transport's name when it is first used.

    Raises:
        AttributeError: No such name.
        ImportError: The name's extra (``zmq`` or ``redis``) is not installed.
    """
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    importlib.import_module(module, __package__)
    # Publish every lazy name whose module is now loaded (``open_gateway`` loads
    # ``Heartbeat``'s module too), so annotations name their public home.
    loaded = {
        lazy: getattr(sys.modules[__package__ + home], lazy)
        for lazy, home in _LAZY.items()
        if lazy not in globals() and __package__ + home in sys.modules
    }
    _fixup_module_metadata(__name__, loaded)
    globals().update(loaded)
    return loaded[name]


def __dir__() -> list[str]:
    return sorted(__all__)


_fixup_module_metadata(__name__, globals())
