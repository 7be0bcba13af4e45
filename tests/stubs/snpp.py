"""An SNPP gateway stub (RFC 1861, levels 1 and 2) on 127.0.0.1.

Speaks ``LOGI``, ``PAGE``, ``MESS``, ``DATA``, ``RESE``, ``SEND``, ``QUIT``; records every
command line it received (so tests can prove nothing was injected) and every page it
sent. It can simulate: unknown pager ids (``550``), a refused ``SEND`` (``fail_send=554``),
an unavailable gateway (``greeting="421 Gateway Service Unavailable"``), a gateway that
never greets (``stall_greeting=True``) and a level 1 gateway without ``DATA``.
"""

from __future__ import annotations

import socketserver
import threading
from dataclasses import dataclass, field
from typing import Self


@dataclass(frozen=True, slots=True)
class SnppPage:
    """A page the stub accepted with ``SEND``."""

    pager_ids: tuple[str, ...]
    text: str
    login: str | None


@dataclass
class _State:
    login: str | None = None
    pager_ids: list[str] = field(default_factory=list)
    text: str | None = None


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, stub: SnppStub) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stub = stub


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.stub.idle_timeout)

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode("ascii") + b"\r\n")

    def readline(self) -> str | None:
        try:
            raw = self.rfile.readline(4096)
        except OSError:
            return None
        if not raw:
            return None
        return raw.decode("ascii", "replace").rstrip("\r\n")

    def handle(self) -> None:
        stub = self.server.stub
        if stub.stall_greeting:
            stub.released.wait(stub.idle_timeout)
            return
        self.reply(stub.greeting)
        if not stub.greeting.startswith("2"):
            return
        state = _State()
        while (line := self.readline()) is not None:
            stub._command(line)
            verb, _, argument = line.partition(" ")
            verb = verb.upper()[:4]
            if verb == "QUIT":
                self.reply("221 OK, Goodbye")
                return
            if verb == "LOGI":
                state.login = argument.split(" ")[0]
                self.reply("250 Login Accepted")
            elif verb == "PAGE":
                pager_id = argument.split(" ")[0]
                if not pager_id or pager_id in stub.invalid_pagers:
                    self.reply("550 Error, Invalid Pager ID")
                else:
                    state.pager_ids.append(pager_id)
                    self.reply("250 Pager ID Accepted")
            elif verb == "MESS":
                if state.text is not None:
                    self.reply("503 ERROR, Message Already Entered")
                elif not argument:
                    self.reply("550 ERROR, Invalid Message")
                else:
                    state.text = argument
                    self.reply("250 Message OK")
            elif verb == "DATA":
                if not stub.support_data:
                    self.reply("500 Command Not Implemented")
                elif state.text is not None:
                    self.reply("503 ERROR, Message Already Entered")
                else:
                    self.reply("354 Begin Input; End with <CRLF>'.'<CRLF>")
                    state.text = self._data()
                    if state.text is None:
                        return
                    self.reply("250 Message OK")
            elif verb == "RESE":
                state = _State(login=state.login)
                self.reply("250 Reset OK")
            elif verb == "SEND":
                if not state.pager_ids or state.text is None:
                    self.reply("503 Error, Pager ID or Message Incomplete")
                elif stub.fail_send is not None:
                    self.reply(f"{stub.fail_send} Error, failed (technical reason)")
                else:
                    stub._page(SnppPage(tuple(state.pager_ids), state.text, state.login))
                    state = _State(login=state.login)
                    self.reply("250 Message Sent Successfully")
            else:
                self.reply("500 Command Not Implemented")

    def _data(self) -> str | None:
        lines: list[str] = []
        while (line := self.readline()) is not None:
            self.server.stub._command(line)
            if line == ".":
                return "\n".join(lines)
            lines.append(line[1:] if line.startswith("..") else line)
        return None


class SnppStub:
    """The SNPP stub; ``server`` is its ``"127.0.0.1:port"``."""

    def __init__(
        self,
        *,
        greeting: str = "220 SNPP (V3) Gateway Ready",
        invalid_pagers: set[str] | None = None,
        fail_send: int | None = None,
        support_data: bool = True,
        stall_greeting: bool = False,
        idle_timeout: float = 5.0,
    ) -> None:
        self.greeting = greeting
        self.invalid_pagers = invalid_pagers or set()
        self.fail_send = fail_send
        self.support_data = support_data
        self.stall_greeting = stall_greeting
        self.idle_timeout = idle_timeout
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._pages: list[SnppPage] = []
        self._commands: list[str] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("stub not started")
        return self._server.server_address[1]

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pages(self) -> list[SnppPage]:
        """Pages accepted with SEND, in order."""
        with self._lock:
            return list(self._pages)

    @property
    def commands(self) -> list[str]:
        """Every line received (commands and DATA lines), in order."""
        with self._lock:
            return list(self._commands)

    def _command(self, line: str) -> None:
        with self._lock:
            self._commands.append(line)

    def _page(self, page: SnppPage) -> None:
        with self._lock:
            self._pages.append(page)

    def start(self) -> Self:
        self.released.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="SnppStub",
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
