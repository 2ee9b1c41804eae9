"""
A Redis server owned by a test, stopped and restarted at will, always cleaned up.

It listens on a Unix socket in a short temporary directory (no port to race for), with the
append-only file on. Options: a password, an ACL file (users and their rights), and TLS (on
a TCP port, since Redis serves TLS on TCP only) with a certificate from a throwaway
authority made by trustme.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trustme

__all__ = ["RedisServer", "redis_server"]


class RedisServer:
    """
    One ``redis-server`` process at ``url``, restartable on the same socket (or port).
    """

    def __init__(
        self,
        directory: Path,
        *,
        password: str | None = None,
        acl: str | None = None,
        tls: bool = False,
    ) -> None:
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.password = password
        self.acl = acl
        self.tls_port: int | None = None
        self.ca_file: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        if tls:
            self._make_certificates()

    @property
    def url(self) -> str:
        """
        The server's URL for the default user, with the password if it has one.
        """
        return self.url_for(None, self.password)

    def url_for(self, user: str | None, password: str | None) -> str:
        """
        The server's URL for ``user`` (None: the default user) with ``password``.
        """
        query = {"username": user, "password": password, "ssl_ca_certs": self.ca_file}
        text = "&".join(f"{key}={value}" for key, value in query.items() if value is not None)
        suffix = f"?{text}" if text else ""
        if self.tls_port is not None:
            return f"rediss://localhost:{self.tls_port}/0{suffix}"
        return f"unix://{self.socket}{suffix}"

    def _make_certificates(self) -> None:
        authority = trustme.CA()
        certificate = authority.issue_cert("localhost")
        self.ca_file = self.directory / "ca.pem"
        authority.cert_pem.write_to_path(str(self.ca_file))
        certificate.private_key_pem.write_to_path(str(self.directory / "server.key"))
        certificate.cert_chain_pems[0].write_to_path(str(self.directory / "server.pem"))

    def start(self) -> None:
        """
        Start the server and wait (up to 10 s) until it answers.
        """
        for _ in range(3):  # a TLS port picked free may be taken before Redis binds it
            if self._start_once():
                return
        raise RuntimeError("redis-server did not start")

    def _start_once(self) -> bool:
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
        if self.acl is not None:
            (self.directory / "users.acl").write_text(self.acl)
            command += ["--aclfile", str(self.directory / "users.acl")]
        if self.ca_file is not None:
            self.tls_port = self.tls_port or _free_port()
            command += [
                "--tls-port", str(self.tls_port),
                "--tls-cert-file", str(self.directory / "server.pem"),
                "--tls-key-file", str(self.directory / "server.key"),
                "--tls-ca-cert-file", str(self.ca_file),
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                self.tls_port = None
                return False
            time.sleep(0.02)
        return True

    def _answers(self) -> bool:
        """
        Whether the server answers on every listener (a ping, or any reply once ACLs apply).
        """
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.settimeout(1)
                probe.connect(str(self.socket))
                if not _pong(probe, self.password):
                    return False
            if self.tls_port is not None:
                context = ssl.create_default_context(cafile=str(self.ca_file))
                with (
                    socket.create_connection(("localhost", self.tls_port), timeout=1) as raw,
                    context.wrap_socket(raw, server_hostname="localhost") as probe,
                ):
                    return _pong(probe, self.password)
        except OSError:
            return False
        return True

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


def _pong(probe: socket.socket, password: str | None) -> bool:
    if password:
        probe.sendall(f"AUTH {password}\r\n".encode())
        probe.recv(64)
    probe.sendall(b"PING\r\n")
    reply = probe.recv(64)
    # With an ACL file the default user may be off: any error reply still means "up".
    return reply.startswith((b"+PONG", b"-NOAUTH", b"-NOPERM", b"-WRONGPASS"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def redis_server(
    *, password: str | None = None, acl: str | None = None, tls: bool = False
) -> Iterator[RedisServer]:
    """
    Run a test-owned Redis server for the block; stop it and remove its files after.
    """
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed (Debian package redis-server)")
    directory = Path(tempfile.mkdtemp(prefix="ecr"))
    try:
        server = RedisServer(directory, password=password, acl=acl, tls=tls)
        server.start()
        try:
            yield server
        finally:
            server.kill()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
