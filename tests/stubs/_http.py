"""A threaded loopback HTTP server base shared by the HTTP stubs."""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class LoopbackHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer on 127.0.0.1 with daemon threads and a deep accept backlog."""

    daemon_threads = True
    allow_reuse_address = True
    # Benchmarks open many keep-alive connections at once; the default backlog of 5
    # turns bursts into connection resets.
    request_queue_size = 512

    def __init__(self, handler: type[BaseHTTPRequestHandler], stub: Any) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.stub = stub


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler without per-request logging."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, a keep-alive client waits for
    # the delayed ACK (~40 ms) on every request.
    disable_nagle_algorithm = True
    server: LoopbackHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def respond(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def drop(self) -> None:
        """Close the connection without answering (a reset as the client sees it)."""
        self.close_connection = True


class FaultPlan:
    """Which fault (if any) the next request gets: a script first, then a seeded share.

    Thread-safe and deterministic for a given order of requests: ``script`` faults are
    served first in order, then each request draws from a ``random.Random(seed)``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: deque[str] = deque()
        self._share = 0.0
        self._kinds: tuple[str, ...] = ()
        self._rng = random.Random(0)

    def script(self, faults: Iterable[str]) -> None:
        with self._lock:
            self._script.extend(faults)

    def share(self, share: float, kinds: Iterable[str], seed: int = 0) -> None:
        kinds = tuple(kinds)
        if not 0.0 <= share <= 1.0 or (share and not kinds):
            raise ValueError("share must be within [0, 1] and name at least one fault")
        with self._lock:
            self._share = share
            self._kinds = kinds
            self._rng = random.Random(seed)

    def clear(self) -> None:
        with self._lock:
            self._script.clear()
            self._share = 0.0
            self._kinds = ()

    def next(self) -> str | None:
        with self._lock:
            if self._script:
                return self._script.popleft()
            if self._share and self._rng.random() < self._share:
                return self._rng.choice(self._kinds)
            return None


class ThreadedStub:
    """Start/stop plumbing for a stub built on :class:`LoopbackHTTPServer`."""

    handler: type[BaseHTTPRequestHandler]

    def __init__(self) -> None:
        self._server: LoopbackHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # Set on stop, so handlers stalling to simulate a timeout let go at once.
        self.released = threading.Event()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("stub not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self.released.clear()
        self._server = LoopbackHTTPServer(self.handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=type(self).__name__,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
