"""
Serializers: how payload values and ``Ok`` values become bytes on the wire, and back.

The default is msgpack (msgspec): fast, and it refuses what it cannot represent instead of
pickling it. A pluggable serializer handles other types; pickle is never the default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, final, runtime_checkable

import msgspec

__all__ = ["MsgpackSerializer", "Serializer"]


@runtime_checkable
class Serializer(Protocol):
    """
    Turns values into bytes and back; the producer's and the workers' must agree.

    ``encode`` raises ``TypeError`` for a value it cannot represent.
    """

    def encode(self, value: object) -> bytes:
        """
        Return ``value`` as bytes.
        """

    def decode(self, data: bytes) -> object:
        """
        Return the value ``data`` encodes.
        """


@final
class MsgpackSerializer:
    """
    msgpack through msgspec, the default serializer.

    None, bool, int, float, str, bytes, lists, tuples, dicts, datetimes, UUIDs, dataclasses,
    attrs classes and msgspec Structs (decoded as plain dicts and lists unless a ``type`` is
    given).

    Args:
        type: The type to decode values as (default: whatever msgpack holds).
    """

    #: Return ``value`` as msgpack; ``TypeError`` (naming the type) for a value msgpack
    #: cannot represent. msgspec's own encoder, called directly: once per task and result.
    encode: Callable[[object], bytes]
    #: Return the value in ``data``; ``msgspec.DecodeError`` if it is not valid msgpack (for
    #: the given type). msgspec's own decoder, called directly.
    decode: Callable[[bytes], object]

    def __init__(self, type: type = object) -> None:
        self.encode = msgspec.msgpack.Encoder().encode
        self.decode = msgspec.msgpack.Decoder(type).decode

    def __repr__(self) -> str:
        return "MsgpackSerializer()"
