"""
CURVE in the ZeroMQ mode: only clients whose public key the gateway holds get in.

Run it with ``python examples/curve.py``. It makes key pairs as ``event-collector keygen``
does, runs a gateway, a worker and a producer in this program (in a deployment each is a
process of its own; the command-line options are in the security page), then tries a
producer whose key the gateway does not know: it never gets an answer.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import trio
import zmq.auth

from event_collector import Collector, Context, Ok, Payload, Result
from event_collector.remote import (
    CurveClient,
    CurveServer,
    GatewayError,
    Heartbeat,
    open_gateway,
    open_producer,
    open_worker,
)

#: Short heartbeats, so that the unknown client gives up after half a second.
HEARTBEAT = Heartbeat(0.1, 5)


async def echo(payload: Payload[Any], ctx: Context) -> Result[Any]:
    """
    Return the value as it came.
    """
    return Ok(payload.value)


def make_keys(directory: Path) -> Path:
    """
    Make key pairs for a gateway and three clients; let two of them in. Return ``keys/``.
    """
    keys = directory / "keys"
    keys.mkdir()
    for name in ("gateway", "producer-1", "worker-1", "intruder"):
        _, secret = zmq.auth.create_certificates(keys, name)  # what keygen does
        os.chmod(secret, 0o600)
    allowed = directory / "clients"  # the public keys the gateway lets in
    allowed.mkdir()
    for name in ("producer-1", "worker-1"):
        shutil.copy(keys / f"{name}.key", allowed)
    return keys


async def main(directory: Path) -> None:
    """
    Serve an allowed producer, then refuse an unknown one.
    """
    keys = make_keys(directory)
    server = CurveServer(keys / "gateway.key_secret", directory / "clients")

    def client(name: str) -> CurveClient:
        return CurveClient(keys / f"{name}.key_secret", keys / "gateway.key")

    async with (
        open_gateway(
            f"ipc://{directory}/producers",
            f"ipc://{directory}/workers",
            curve=server,
            heartbeat=HEARTBEAT,
            logging=False,
        ) as gateway,
        open_worker(
            [Collector("echo", echo)],
            gateway.workers_endpoint,
            curve=client("worker-1"),
            heartbeat=HEARTBEAT,
            logging=False,
        ),
    ):
        async with open_producer(
            gateway.producers_endpoint,
            curve=client("producer-1"),
            heartbeat=HEARTBEAT,
            logging=False,
        ) as producer:
            event = await producer.send(Payload("hello over CURVE"))
            print("producer-1:", (await event.wait()).first().unwrap())

        async with open_producer(
            gateway.producers_endpoint,
            curve=client("intruder"),
            heartbeat=HEARTBEAT,
            close_timeout=0,
            logging=False,
        ) as intruder:
            # Its connection is refused, so the gateway never answers: the send (or,
            # after the heartbeat bound, the event) fails with GatewayError.
            try:
                event = await intruder.send(Payload("let me in"))
                (await event.wait()).first().unwrap()
            except GatewayError:
                print("intruder: no answer from the gateway (GatewayError)")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="ec-") as tmp:  # ipc paths must be short
        trio.run(main, Path(tmp))
