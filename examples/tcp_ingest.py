"""
A TCP ingest service: JSON lines in, one JSON line of results out per line; SIGTERM drains.

Each line a client sends is published as a payload.

Run it with ``python examples/tcp_ingest.py [--port PORT]`` (0, the default, picks a free
port; the first line on stdout says which). Try it with ``nc 127.0.0.1 PORT`` and a line
such as ``{"id": 1, "value": 21}``. Each reply says which line it answers (its ``id``) and
comes as soon as that line's results are there, so replies to one connection may come in
another order than its lines: ``{"id": 1, "ok": {"double": 42, "store": "stored 1"}}``, or
``{"id": ..., "errors": {...}}`` for the collectors that failed, or ``{"id": null,
"errors": {"line": "..."}}`` for a line that is not a JSON object.

On SIGTERM (or Ctrl-C) it drains: it stops accepting connections and stops reading lines
(a line read is a line accepted), lets every accepted line finish, replies to each, closes
every connection, stops the queue and exits with status 0.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import signal
from typing import Any

import trio

from event_collector import (
    Collector,
    CollectorEvent,
    CollectorQueue,
    Context,
    Error,
    EventPublisher,
    Ok,
    Payload,
    Result,
)

#: A line longer than this is an error, and the connection is closed.
MAX_LINE = 64 * 1024


async def double(payload: Payload[dict[str, Any]], ctx: Context) -> Result[float]:
    """
    Double the line's value, after the line's ``work`` seconds (0 by default).
    """
    await trio.sleep(payload.value.get("work", 0))
    return Ok(payload.value["value"] * 2)


async def store(payload: Payload[dict[str, Any]], ctx: Context) -> Result[str]:
    """
    Pretend to store the line.
    """
    await trio.sleep(payload.value.get("work", 0))
    return Ok(f"stored {payload.value['id']}")


COLLECTORS: list[Collector[Any]] = [Collector("double", double), Collector("store", store)]


class LineReader:
    """
    Read newline-terminated lines from a stream; a cancelled read loses no complete line.
    """

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def next_line(self) -> bytes | None:
        """
        Return the next line without its newline, or None at the end of the stream.

        Raises:
            ValueError: A line longer than MAX_LINE.
        """
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > MAX_LINE:
                raise ValueError("line too long")
            data = await self._stream.receive_some()
            if not data:
                return None  # an unterminated last line is not a line
            self._buffer += data
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line


class IngestServer:
    """
    The connections of the service, and its drain.
    """

    def __init__(self, publisher: EventPublisher[Any]) -> None:
        self._publisher = publisher
        self._draining = False
        #: The reading scope of every open connection, cancelled by drain().
        self._readers: set[trio.CancelScope] = set()
        self.accepted = 0
        self.replied = 0

    def in_flight(self) -> int:
        """
        Lines accepted and not yet answered.
        """
        return self.accepted - self.replied

    def drain(self) -> None:
        """
        Stop reading lines on every connection; each one then finishes its replies.
        """
        self._draining = True
        for scope in self._readers:
            scope.cancel()

    async def handle(self, stream: trio.SocketStream) -> None:
        """
        Serve one connection: read lines, publish each, reply as results come.
        """
        write_lock = trio.Lock()

        async def reply(message: dict[str, Any]) -> None:
            async with write_lock:  # one writer at a time on a stream
                # A client that left loses its results; nothing else is affected.
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await stream.send_all(json.dumps(message).encode() + b"\n")
            self.replied += 1

        async def answer(event: CollectorEvent[Any], line_id: object) -> None:
            results = await event.wait()
            message: dict[str, Any] = {"id": line_id}
            for key, result in results.items():
                match result:
                    case Ok(value):
                        message.setdefault("ok", {})[key] = value
                    case Error(error):
                        message.setdefault("errors", {})[key] = repr(error)
            await reply(message)

        reader = LineReader(stream)
        reading = trio.CancelScope()
        self._readers.add(reading)
        if self._draining:  # accepted as the drain began: read nothing
            reading.cancel()
        at_end = False
        try:
            async with trio.open_nursery() as replies:
                with reading:
                    while (line := await reader.next_line()) is not None:
                        self.accepted += 1
                        try:
                            value = json.loads(line)
                            payload = Payload(value)
                            line_id = value["id"]
                        except (ValueError, TypeError, KeyError) as exc:
                            replies.start_soon(reply, {"id": None, "errors": {"line": str(exc)}})
                            continue
                        # Accepted: the drain must not lose it between reading and queueing.
                        with trio.CancelScope(shield=True):
                            event = await self._publisher.send(payload)
                        replies.start_soon(answer, event, line_id)
                    at_end = True
                # Reading stopped (end of stream, or the drain): the nursery waits for
                # every reply.
        except ValueError as exc:  # a line too long
            await reply({"id": None, "errors": {"line": str(exc)}})
        finally:
            self._readers.discard(reading)
            await close(stream, at_end)


async def close(stream: trio.SocketStream, at_end: bool) -> None:
    """
    Close a connection without losing the replies written to it.

    A socket closed with unread input resets the connection, and a reset may destroy
    replies the client has not read yet. So unless the client has closed its side, send
    EOF first and discard what it still sends until it closes too (for up to 5 s).
    """
    if not at_end:
        with trio.move_on_after(5):
            try:
                await stream.send_eof()
                while await stream.receive_some():
                    pass
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
    await stream.aclose()


async def main(port: int, host: str) -> None:
    """
    Serve until SIGTERM or SIGINT, then drain and return.
    """
    queue: CollectorQueue[Any] = CollectorQueue(
        COLLECTORS, max_consumers=200, consumer_shutdown_timeout=30, failure_log_level=None
    )
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with queue:
            server = IngestServer(queue.get_publisher())
            # Connections run in their own nursery, so that closing the listeners (the
            # accepting nursery) leaves them running.
            async with trio.open_nursery() as connections, trio.open_nursery() as accepting:
                serve = functools.partial(
                    trio.serve_tcp, server.handle, port, host=host, handler_nursery=connections
                )
                listeners = await accepting.start(serve)
                print(f"listening on {host}:{listeners[0].socket.getsockname()[1]}", flush=True)
                async for signum in signals:  # the first SIGTERM or SIGINT
                    server.drain()  # no new line: each connection replies, then closes
                    accepting.cancel_scope.cancel()  # close the listeners
                    name = signal.Signals(signum).name
                    print(f"{name}: draining, {server.in_flight()} in flight", flush=True)
                    break
            # Every connection has closed: every accepted line has its reply. Leaving
            # the queue now finds nothing left to do.
        print(f"drained: {server.accepted} lines accepted, {server.replied} replies", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A TCP ingest service with a SIGTERM drain.")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    args = parser.parse_args()
    trio.run(main, args.port, args.host)
