"""
A Redis server owned by a test: on a Unix socket in a short temporary directory (no port to
race for), with the append-only file on, stopped and restarted at will, always cleaned up.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["RedisServer", "redis_server"]


class RedisServer:
    """
    One ``redis-server`` process at ``url`` (``unix://...``), restartable on the same socket.
    """

    def __init__(self, directory: Path, *, password: str | None = None) -> None:
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """
        The server's URL, with the password if it has one.
        """
        query = f"?password={self.password}" if self.password else ""
        return f"unix://{self.socket}{query}"

    def start(self) -> None:
        """
        Start the server and wait (up to 10 s) until it answers.
        """
        command = [
            "redis-server",
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--loglevel", "warning",
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def _answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.settimeout(1)
                probe.connect(str(self.socket))
                if self.password:
                    probe.sendall(f"AUTH {self.password}\r\n".encode())
                    probe.recv(64)
                probe.sendall(b"PING\r\n")
                return probe.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """
        Kill the server at once (SIGKILL), as a crash would.
        """
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        """
        Kill the server and start it again on the same socket, from its append-only file.
        """
        self.kill()
        self.start()


@contextmanager
def redis_server(*, password: str | None = None) -> Iterator[RedisServer]:
    """
    Run a test-owned Redis server for the block; stop it and remove its files after.
    """
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed (Debian package redis-server)")
    directory = Path(tempfile.mkdtemp(prefix="ecr"))
    server = RedisServer(directory, password=password)
    try:
        server.start()
        yield server
    finally:
        server.kill()
        shutil.rmtree(directory, ignore_errors=True)
