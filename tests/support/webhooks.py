"""A local webhook receiver: records every delivery (headers and body), answers as told, stops and restarts."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    port: int = 0
    status: int = 200
    fail_first: int = 0  # answer 503 to this many deliveries first
    location: str | None = None  # a Location header on every answer (a redirect, with a 3xx status)
    delay: float = 0.0  # seconds before answering: deliveries stay in flight that long
    received: list[Received] = field(default_factory=list)
    in_flight: set[int] = field(default_factory=set)  # the sending sockets' ports, while a delivery waits
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                port = self.client_address[1]
                with receiver._lock:
                    receiver.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                    failing = receiver.fail_first > 0
                    receiver.fail_first -= failing
                    receiver.in_flight.add(port)
                time.sleep(receiver.delay)
                with receiver._lock:
                    receiver.in_flight.discard(port)
                self.send_response(503 if failing else receiver.status)
                if receiver.location:
                    self.send_header("location", receiver.location)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.allow_reuse_address = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def ids(self) -> set[str]:
        with self._lock:
            return {r.headers["webhook-id"] for r in self.received}

    def waiting_ports(self) -> set[int]:
        with self._lock:
            return set(self.in_flight)


def local_tcp_ports(pid: int) -> set[int]:
    """The local ports of a process's TCP sockets (Linux: its /proc fds matched against /proc/net/tcp)."""
    inodes = set()
    fds = Path(f"/proc/{pid}/fd")
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports
