"""
The distributed mode's wire protocol: typed, versioned envelopes in msgpack, no pickle.

Every message is two frames after ZeroMQ's routing frames: the protocol signature
(:data:`SIGNATURE`, which carries the version) and one msgpack-encoded :data:`Message`. A
message that does not decode (wrong signature, wrong frame count, malformed msgpack, a wrong
type anywhere, an unknown kind) raises :class:`ProtocolError`, which the receiving side counts,
logs and drops.

Who sends what::

    producer -> gateway   Hello, Submit, Ping, Bye
    gateway  -> producer  Welcome, Results, Pong, Reset, Refused
    worker   -> gateway   Ready, Results, Ping, Pong, Leaving, Bye
    gateway  -> worker    Welcome, Dispatch, Ping, Pong, Reset

Payload values and ``Ok`` values travel as bytes made by the producer's and the worker's
:class:`~event_collector.remote.Serializer`; the gateway never decodes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypeAlias, final

import msgspec

__all__ = [
    "MAX_MESSAGE_SIZE",
    "SIGNATURE",
    "Bye",
    "Dispatch",
    "ErrorInfo",
    "Hello",
    "Leaving",
    "Message",
    "Outcome",
    "Ping",
    "Pong",
    "ProtocolError",
    "Ready",
    "Refused",
    "Reset",
    "Results",
    "Submit",
    "Task",
    "TaskResult",
    "Welcome",
    "decode",
    "encode",
]

#: The first frame of every message: the protocol and its version.
SIGNATURE: Final = b"EC/1"
#: The largest message a socket accepts (ZeroMQ's MAXMSGSIZE): bigger ones drop the peer.
MAX_MESSAGE_SIZE: Final = 16 * 1024 * 1024

#: ``Task.delivery``: the ``Delivery`` of the payload.
BROADCAST, KEY, TOPIC = 0, 1, 2


@final
class ErrorInfo(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """
    An exception as text: what a ``RemoteError`` is made of.
    """

    type: str
    message: str
    traceback: str = ""


@final
class Outcome(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """
    One collector's result: ``Ok`` with the serialized value, or ``Error``.
    """

    key: str | None
    value: bytes | None = None
    error: ErrorInfo | None = None


@final
class Task(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """
    A payload to run: its serialized value and the metadata that routes it.
    """

    #: Numbered by its sender: the producer (its own tasks) or the gateway (dispatches).
    id: int
    value: bytes
    delivery: int = BROADCAST
    keys: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    priority: int | None = None
    #: Which delivery this is: 1, then one more for each redelivery after a worker died.
    attempt: int = 1


@final
class TaskResult(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """
    A task's results, one per collector reached, with the attempt that produced them.
    """

    id: int
    attempt: int
    outcomes: tuple[Outcome, ...]


@final
class Hello(msgspec.Struct, tag=1, array_like=True, frozen=True, gc=False):
    """
    A producer introduces itself; also after a ``Reset``.
    """

    producer: str
    #: The most tasks the producer wants in flight at once.
    window: int
    #: Whether the gateway dispatches its tasks by priority (lower first, stable).
    by_priority: bool = False


@final
class Welcome(msgspec.Struct, tag=2, array_like=True, frozen=True, gc=False):
    """
    The gateway accepts a producer (with credit) or a worker.
    """

    #: The gateway's instance id: it changes when the gateway restarts.
    gateway: str
    credit: int = 0


@final
class Submit(msgspec.Struct, tag=3, array_like=True, frozen=True, gc=False):
    """
    A producer's tasks, each spending one credit.
    """

    tasks: tuple[Task, ...]


@final
class Results(msgspec.Struct, tag=4, array_like=True, frozen=True, gc=False):
    """
    Results, and credit: a worker's free slots again, or tasks a producer may send.

    A message of credit alone has no results.
    """

    results: tuple[TaskResult, ...] = ()
    credit: int = 0


@final
class Refused(msgspec.Struct, tag=5, array_like=True, frozen=True, gc=False):
    """
    The gateway refuses tasks (malformed, or it is shutting down): they will not run.
    """

    ids: tuple[int, ...]
    reason: str


@final
class Reset(msgspec.Struct, tag=6, array_like=True, frozen=True, gc=False):
    """
    The gateway does not know the sender: say ``Hello`` (or ``Ready``) again.

    It restarted, or the connection is new.
    """

    reason: str = ""


@final
class Ready(msgspec.Struct, tag=7, array_like=True, frozen=True, gc=False):
    """
    A worker registers (or re-registers) with the tasks it can take now.
    """

    worker: str
    credit: int


@final
class Dispatch(msgspec.Struct, tag=8, array_like=True, frozen=True, gc=False):
    """
    Tasks for a worker, numbered by the gateway.
    """

    tasks: tuple[Task, ...]


@final
class Ping(msgspec.Struct, tag=9, array_like=True, frozen=True, gc=False):
    """
    A heartbeat that asks for a ``Pong``.
    """


@final
class Pong(msgspec.Struct, tag=10, array_like=True, frozen=True, gc=False):
    """
    The answer to a ``Ping``; from the gateway, with its instance id.
    """

    gateway: str = ""


@final
class Leaving(msgspec.Struct, tag=11, array_like=True, frozen=True, gc=False):
    """
    A worker drains: no new tasks for it; it still sends the results of those it has.
    """


@final
class Bye(msgspec.Struct, tag=12, array_like=True, frozen=True, gc=False):
    """
    The sender is gone for good: forget it.
    """


#: Every kind of message.
Message: TypeAlias = (
    Hello
    | Welcome
    | Submit
    | Results
    | Refused
    | Reset
    | Ready
    | Dispatch
    | Ping
    | Pong
    | Leaving
    | Bye
)


class ProtocolError(Exception):
    """
    A message that is not this protocol's: dropped by whoever received it.
    """


# Every envelope above is frozen and gc=False (never tracked by the cyclic garbage collector,
# which a process holding many tasks would otherwise scan again and again): safe because its
# fields are only str, bytes, int, bool, None and tuples of envelopes, so no reference cycle
# can pass through one. A field of type Any, msgspec.Raw, list or dict would need gc=True.

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


def encode(message: Message) -> list[bytes]:
    """
    Return the frames of ``message``.
    """
    return [SIGNATURE, _encoder.encode(message)]


def decode(frames: Sequence[bytes]) -> Message:
    """
    Return the message in ``frames`` (the routing frames already removed).

    Raises:
        ProtocolError: The frames are not a message of this protocol and version.
    """
    if len(frames) != 2:
        raise ProtocolError(f"a message has 2 frames, got {len(frames)}")
    signature, body = frames
    if signature != SIGNATURE:
        raise ProtocolError(f"unknown protocol or version {bytes(signature[:16])!r}")
    try:
        message: Message = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"malformed message: {exc}") from None
    return message
