"""
ZAP, ZeroMQ's authentication protocol: the gateway's allow-list of CURVE client keys.

Served by a Trio task over pyzmq's loop-neutral ``zmq.auth.Authenticator`` (no thread).
"""

from __future__ import annotations

import logging

import trio
import zmq
import zmq.auth

from ._logging import FilteringBoundLogger
from ._remote import CurveServer
from ._zmq_trio import ZmqSocket

__all__ = ["serve_zap"]

#: Where libzmq asks for authentication, one per context.
ZAP_ENDPOINT = "inproc://zeromq.zap.01"


async def serve_zap(
    curve: CurveServer,
    context: zmq.Context[zmq.Socket[bytes]],
    log: FilteringBoundLogger,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """
    Answer the context's ZAP requests until cancelled: allowed keys in, others refused.

    A client whose public key is in ``curve.clients_dir`` is let in, any other is refused.
    Reports started once it answers, before the gateway binds its sockets.
    """
    if not curve.clients_dir.is_dir():
        raise ValueError(f"CURVE clients directory {curve.clients_dir} does not exist")
    authenticator = zmq.auth.Authenticator(context, log=logging.getLogger("event_collector.zap"))
    authenticator.configure_curve(domain="*", location=str(curve.clients_dir))
    socket = context.socket(zmq.REP)
    socket.setsockopt(zmq.LINGER, 0)
    socket.bind(ZAP_ENDPOINT)
    authenticator.zap_socket = socket  # the authenticator replies on it, synchronously
    with ZmqSocket(socket) as zap:
        task_status.started()
        while True:
            request = await zap.receive_multipart()
            await authenticator.handle_zap_message(request)
            if len(request) > 5 and request[5] == b"CURVE":
                log.debug("zap_request", address=request[3].decode(errors="replace"))
