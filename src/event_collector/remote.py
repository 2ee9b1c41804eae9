"""
The distributed mode over ZeroMQ: producers, a gateway, and worker processes on any host.

Needs the ``zmq`` extra (``pip install 'event-collector[zmq]'``: pyzmq and msgspec).

- :func:`open_gateway` binds an endpoint for producers and one for workers, queues tasks,
  and gives each to a worker with credit; results go back to the producer that sent them.
- :func:`open_worker` runs your collectors (the same ones as in-process) in a
  :class:`~event_collector.CollectorQueue` fed by the gateway.
- :func:`open_producer` sends payloads and returns :class:`RemoteEvent`, whose ``wait()``
  gives the same ResultList as an in-process event.

Delivery is at least once (a task held by a worker that dies runs again elsewhere), and
each event resolves exactly once (duplicates are dropped by task id).
"""

from ._errors import GatewayError as GatewayError
from ._errors import RemoteError as RemoteError
from ._gateway import DEFAULT_CAPACITY as DEFAULT_CAPACITY
from ._gateway import DEFAULT_MAX_ATTEMPTS as DEFAULT_MAX_ATTEMPTS
from ._gateway import DEFAULT_PRIORITY as DEFAULT_PRIORITY
from ._gateway import Gateway as Gateway
from ._gateway import GatewayStatistics as GatewayStatistics
from ._gateway import open_gateway as open_gateway
from ._producer import DEFAULT_WINDOW as DEFAULT_WINDOW
from ._producer import Producer as Producer
from ._producer import ProducerStatistics as ProducerStatistics
from ._producer import RemoteEvent as RemoteEvent
from ._producer import open_producer as open_producer
from ._public import fixup_module_metadata as _fixup_module_metadata
from ._remote import CurveClient as CurveClient
from ._remote import CurveServer as CurveServer
from ._remote import Heartbeat as Heartbeat
from ._serializer import MsgpackSerializer as MsgpackSerializer
from ._serializer import Serializer as Serializer
from ._worker import Worker as Worker
from ._worker import WorkerStatistics as WorkerStatistics
from ._worker import load_collectors as load_collectors
from ._worker import open_worker as open_worker

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
    "RemoteError",
    "RemoteEvent",
    "Serializer",
    "Worker",
    "WorkerStatistics",
    "load_collectors",
    "open_gateway",
    "open_producer",
    "open_worker",
]

_fixup_module_metadata(__name__, globals())
del _fixup_module_metadata
