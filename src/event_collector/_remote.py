"""
What producers, gateway and workers share on the network: heartbeats, sockets, CURVE keys.

Every socket gets ``MAXMSGSIZE`` (a bigger message drops the peer) and, on a ROUTER,
``ROUTER_MANDATORY`` (a message to an unknown peer is an error, not a silent drop). CURVE
encrypts and authenticates: servers (the gateway) hold a secret key and an allow-list of
client public keys; clients (producers, workers) hold their own key pair and the server's
public key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, final

import attrs
import zmq
import zmq.auth

from ._wire import MAX_MESSAGE_SIZE
from ._zmq_trio import ZmqSocket

__all__ = ["CurveClient", "CurveServer", "Heartbeat", "bind_socket", "connect_socket"]

#: Seconds between heartbeats, by default.
HEARTBEAT_INTERVAL: Final = 2.0
#: Heartbeat intervals of silence after which a peer is declared gone, by default.
HEARTBEAT_LIVENESS: Final = 5


def _positive(_: object, attribute: attrs.Attribute[float | int], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def _positive_int(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or value < 1:
        raise ValueError(f"{attribute.name} must be an int >= 1, got {value!r}")


@final
@attrs.frozen
class Heartbeat:
    """
    How often peers ping each other, and how much silence means one is gone.

    Any message counts as a sign of life; a peer silent for ``interval`` gets a ping, and
    one silent for ``bound = interval * liveness`` seconds is declared gone (10 s by
    default).
    """

    #: Seconds between heartbeats.
    interval: float = attrs.field(default=HEARTBEAT_INTERVAL, validator=_positive)
    #: Intervals of silence after which a peer is declared gone.
    liveness: int = attrs.field(default=HEARTBEAT_LIVENESS, validator=_positive_int)

    @property
    def bound(self) -> float:
        """
        Seconds of silence after which a peer is declared gone.
        """
        return self.interval * self.liveness


def _key(path: Path, *, secret: bool) -> bytes:
    public, secret_key = zmq.auth.load_certificate(path)
    if secret and secret_key is None:
        raise ValueError(f"{path} holds no secret key (use the .key_secret file)")
    key = secret_key if secret else public
    assert key is not None
    return key


@final
@attrs.frozen
class CurveServer:
    """
    The gateway's CURVE keys: its secret key, and the client public keys it lets in.

    Args:
        secret_key_file: The gateway's ``.key_secret`` file (``event-collector keygen``).
        clients_dir: A directory of client ``.key`` files; a client whose public key is not
            there is refused.
    """

    secret_key_file: Path = attrs.field(converter=Path)
    clients_dir: Path = attrs.field(converter=Path)

    def configure(self, socket: zmq.Socket[bytes]) -> None:
        """
        Make ``socket`` a CURVE server with the gateway's keys.
        """
        socket.curve_secretkey = _key(self.secret_key_file, secret=True)
        socket.curve_publickey = _key(self.secret_key_file, secret=False)
        socket.curve_server = True


@final
@attrs.frozen
class CurveClient:
    """
    A producer's or worker's CURVE keys, and the public key of the gateway it trusts.

    Args:
        secret_key_file: The client's own ``.key_secret`` file.
        server_key_file: The gateway's public ``.key`` file.
    """

    secret_key_file: Path = attrs.field(converter=Path)
    server_key_file: Path = attrs.field(converter=Path)

    def configure(self, socket: zmq.Socket[bytes]) -> None:
        """
        Make ``socket`` a CURVE client with these keys.
        """
        socket.curve_secretkey = _key(self.secret_key_file, secret=True)
        socket.curve_publickey = _key(self.secret_key_file, secret=False)
        socket.curve_serverkey = _key(self.server_key_file, secret=False)


def _context(context: zmq.Context[zmq.Socket[bytes]] | None) -> zmq.Context[zmq.Socket[bytes]]:
    return context if context is not None else zmq.Context.instance()


def connect_socket(
    context: zmq.Context[zmq.Socket[bytes]] | None,
    kind: int,
    endpoint: str,
    curve: CurveClient | None,
) -> ZmqSocket:
    """
    Return a Trio socket of ``kind`` connected to ``endpoint`` (a producer's or worker's).

    Messages are queued only for a completed connection (``IMMEDIATE``), so nothing waits in
    a pipe to a peer that is not there.
    """
    socket = _context(context).socket(kind)
    try:
        socket.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_SIZE)
        socket.setsockopt(zmq.IMMEDIATE, 1)
        socket.setsockopt(zmq.LINGER, 0)  # set again at close, after the drain
        if curve is not None:
            curve.configure(socket)
        socket.connect(endpoint)
    except BaseException:
        socket.close(linger=0)
        raise
    return ZmqSocket(socket)


def bind_socket(
    context: zmq.Context[zmq.Socket[bytes]] | None,
    endpoint: str,
    curve: CurveServer | None,
) -> tuple[ZmqSocket, str]:
    """
    Return a Trio ROUTER socket bound to ``endpoint``, and the endpoint it got.

    ``tcp://host:0`` binds a free port; the endpoint returned has the real one.
    """
    socket = _context(context).socket(zmq.ROUTER)
    try:
        socket.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_SIZE)
        socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        socket.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            curve.configure(socket)
        socket.bind(endpoint)
        bound = socket.getsockopt_string(zmq.LAST_ENDPOINT)
    except BaseException:
        socket.close(linger=0)
        raise
    return ZmqSocket(socket), bound
