"""
Benchmark: the Trio zmq adapter next to raw blocking pyzmq, measured in the same run.

Run ``python benchmarks/zmq_adapter.py`` (``--quick`` for a smaller pass, ``--transport``
to pick tcp, ipc or inproc). A DEALER client sends small messages to a ROUTER echo and
reads the replies, either pipelined (``--window`` requests out) or one at a time. The
echo is libzmq's own proxy with the ROUTER as both ends, run in a thread of this process:
it runs in C without the GIL, so both clients face the same peer and the numbers measure
the client side. The clients:

* raw: plain Python, blocking ``send_multipart`` / ``recv_multipart``, one message a call
  (the baseline of the ratios); also with ``send`` / ``recv``, which skip pyzmq's
  multipart layer (the messages have one frame);
* adapter, batched: ``ZmqSocket.receive_batch`` then a send per reply, the way a gateway
  loop is written;
* adapter, one per call: ``await receive_multipart()`` / ``await send_multipart()``.

Each round runs every client once, alternating; the table gives medians over the rounds
and the adapter's throughput as a fraction of raw's. Throughput is wall time (the peer
and libzmq's I/O thread run beside the client on the machine's 2 cores, so the client's
CPU time alone would hide its waits); the client thread's CPU time per message is shown
too, as the steadier measure of what each client costs. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import trio
import zmq

from event_collector._zmq_trio import ZmqSocket

Context = zmq.Context[zmq.Socket[bytes]]
#: A client run: (context, endpoint, messages, window) -> (wall seconds, thread CPU seconds)
Client = Callable[[Context, str, int, int], tuple[float, float]]

PAYLOAD = b"x" * 32


@contextmanager
def echo_peer(ctx: Context, transport: str) -> Iterator[str]:
    """
    Run a ROUTER echo (libzmq's proxy, the ROUTER as both ends) in a thread; yield its endpoint.
    """
    router = ctx.socket(zmq.ROUTER)
    router.sndhwm = router.rcvhwm = 0
    with tempfile.TemporaryDirectory() as directory:
        if transport == "tcp":
            endpoint = f"tcp://127.0.0.1:{router.bind_to_random_port('tcp://127.0.0.1')}"
        else:
            endpoint = {"ipc": f"ipc://{directory}/echo", "inproc": "inproc://echo"}[transport]
            router.bind(endpoint)
        control, control_peer = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
        control.bind("inproc://echo-control")
        control_peer.connect("inproc://echo-control")
        thread = threading.Thread(
            target=zmq.proxy_steerable, args=(router, router, None, control_peer)
        )
        thread.start()
        try:
            yield endpoint
        finally:
            control.send(b"TERMINATE")
            thread.join()
            for socket in (router, control, control_peer):
                socket.close(linger=0)


def dealer(ctx: Context, endpoint: str) -> zmq.Socket[bytes]:
    socket = ctx.socket(zmq.DEALER)
    socket.sndhwm = socket.rcvhwm = 0
    socket.linger = 0
    socket.connect(endpoint)
    socket.send(b"warm-up")  # connected once the echo comes back
    socket.recv()
    return socket


@contextmanager
def timed() -> Iterator[list[float]]:
    result: list[float] = []
    wall, cpu = time.perf_counter(), time.thread_time()
    yield result
    result.extend([time.perf_counter() - wall, time.thread_time() - cpu])


# -- raw blocking pyzmq --


def raw(ctx: Context, endpoint: str, n: int, window: int) -> tuple[float, float]:
    socket = dealer(ctx, endpoint)
    message = [PAYLOAD]
    try:
        with timed() as result:
            sent = min(window, n)
            for _ in range(sent):
                socket.send_multipart(message)
            for _ in range(n):
                socket.recv_multipart()
                if sent < n:
                    socket.send_multipart(message)
                    sent += 1
    finally:
        socket.close()
    return result[0], result[1]


def raw_single_frame(ctx: Context, endpoint: str, n: int, window: int) -> tuple[float, float]:
    socket = dealer(ctx, endpoint)
    try:
        with timed() as result:
            sent = min(window, n)
            for _ in range(sent):
                socket.send(PAYLOAD)
            for _ in range(n):
                socket.recv()
                if sent < n:
                    socket.send(PAYLOAD)
                    sent += 1
    finally:
        socket.close()
    return result[0], result[1]


# -- the adapter under trio.run --


def in_trio(client: Callable[[ZmqSocket, int, int], Awaitable[None]]) -> Client:
    """
    Make a client run from an async one that uses the adapter, timed inside ``trio.run``.
    """

    def run(ctx: Context, endpoint: str, n: int, window: int) -> tuple[float, float]:
        async def main() -> tuple[float, float]:
            with ZmqSocket(dealer(ctx, endpoint)) as socket, timed() as result:
                await client(socket, n, window)
            return result[0], result[1]

        return trio.run(main)

    return run


async def adapter_batched(socket: ZmqSocket, n: int, window: int) -> None:
    message = [PAYLOAD]
    sent = min(window, n)
    for _ in range(sent):
        await socket.send_multipart(message)
    received = 0
    while received < n:
        replies = await socket.receive_batch(window)
        received += len(replies)
        for _ in replies:
            if sent < n:
                try:  # a checkpoint per batch, not per message
                    socket.send_multipart_nowait(message)
                except trio.WouldBlock:
                    await socket.send_multipart(message)
                sent += 1


async def adapter_one_per_call(socket: ZmqSocket, n: int, window: int) -> None:
    message = [PAYLOAD]
    sent = min(window, n)
    for _ in range(sent):
        await socket.send_multipart(message)
    for _ in range(n):
        await socket.receive_multipart()
        if sent < n:
            await socket.send_multipart(message)
            sent += 1


CLIENTS: dict[str, Client] = {
    "raw": raw,
    "raw, send/recv": raw_single_frame,
    "batched": in_trio(adapter_batched),
    "one per call": in_trio(adapter_one_per_call),
}


def measure(
    ctx: Context, endpoint: str, n: int, window: int, rounds: int
) -> dict[str, tuple[float, float]]:
    """
    Run every client once a round, alternating; return each one's median wall and CPU time.
    """
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in CLIENTS}
    for _ in range(rounds):
        for name, client in CLIENTS.items():
            gc.collect()
            runs[name].append(client(ctx, endpoint, n, window))
    return {
        name: (statistics.median(r[0] for r in results), statistics.median(r[1] for r in results))
        for name, results in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer messages and rounds")
    parser.add_argument("--transport", choices=["tcp", "ipc", "inproc"], default="tcp")
    parser.add_argument("--window", type=int, default=100, help="requests out when pipelined")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)
    pipelined = 20_000 if args.quick else 100_000
    one_at_a_time = 2_000 if args.quick else 10_000

    print(
        f"zmq adapter benchmark: python {sys.version.split()[0]}, trio {trio.__version__}, "
        f"pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}"
    )
    print(
        f"DEALER -> ROUTER echo over {args.transport}, {len(PAYLOAD)}-byte messages, "
        f"median of {rounds} alternating rounds"
    )
    print("msg/s: wall clock; CPU us/msg: the client thread's CPU time per message")
    print(f"\n{'case':<38} {'msg/s':>10} {'CPU us/msg':>11} {'x raw':>7}")
    ctx: Context = zmq.Context()
    try:
        with echo_peer(ctx, args.transport) as endpoint:
            for label, n, window in (
                (f"pipelined, window {args.window}", pipelined, args.window),
                ("one at a time", one_at_a_time, 1),
            ):
                results = measure(ctx, endpoint, n, window, rounds)
                raw_wall = results["raw"][0]
                for name, (wall, cpu) in results.items():
                    case, speed, cost = f"{label}: {name}", n / wall, cpu / n * 1e6
                    print(f"{case:<38} {speed:>10,.0f} {cost:>11.2f} {raw_wall / wall:>7.2f}")
    finally:
        ctx.term()


if __name__ == "__main__":
    main()
