"""Pagers through SNPP (Simple Network Paging Protocol, RFC 1861) over TCP.

One connection per page: read the ``220`` greeting, optionally ``LOGI``, then ``PAGE``,
``MESS`` (or ``DATA`` for long or multi-line text), ``SEND`` and ``QUIT``.

RFC 1861 reply codes: 2xx success, 3xx "begin input" (after ``DATA``), 4xx failure with the
connection terminated (``421`` gateway unavailable, too many errors), 5xx failure with the
session continuing (``550`` invalid pager id, ``554`` failed for a technical reason), and for
level 3 gateways 8xx success and 9xx failure of two-way operations.

No input can end a command line early and inject another command: a pager id holding
whitespace or control characters is refused, the login and password lose theirs, a
single-line text loses its control characters before ``MESS``, and multi-line text goes
through ``DATA`` line by line, dot-stuffed so it cannot end the block early either.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from typing import Final, Self

from dr_platform import outbound
from enrollment.constants import SNPP_DEFAULT_PORT

from .base import DeliveryReceipt, OutboundMessage, ReceiptStatus, Transport, TransportError

#: Longest text sent with a single ``MESS``; longer text goes through ``DATA``. Many
#: paging terminals cap a page at 240 characters anyway (TAP block limits).
MAX_MESS_LENGTH: Final = 240
MAX_REPLY_LENGTH: Final = 1024

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def one_line(value: str) -> str:
    """``value`` with CR/LF turned into spaces and other control characters removed."""
    return _CONTROL.sub("", _LINE_BREAK.sub(" ", value)).strip()


def one_token(value: str) -> str:
    """``value`` with all whitespace and control characters removed (pager ids, logins)."""
    return _CONTROL_OR_SPACE.sub("", value)


def parse_server(value: str) -> tuple[str, int]:
    """Split ``"host:port"`` (``"[v6]:port"``; port optional, default
    ``enrollment.constants.SNPP_DEFAULT_PORT``, 444), as
    ``dr_platform.outbound.parse_host_port`` does for every participant address.

    Raises ``ValueError`` (an ``OutboundAddressError``) for an empty host or a port that is
    not a number from 1 to 65535.
    """
    return outbound.parse_host_port(value, default_port=SNPP_DEFAULT_PORT)


@dataclass(frozen=True, slots=True)
class SnppReply:
    """One reply line: the three-digit ``code`` and the text after it."""

    code: int
    text: str

    @property
    def ok(self) -> bool:
        """2xx, or a level 3 8xx success."""
        return 200 <= self.code < 300 or 800 <= self.code < 900


def is_permanent_failure(code: int) -> bool:
    """Whether a failed reply means the page can never go through as sent.

    5xx is permanent (550 invalid pager id, 503 incomplete, 500 not implemented), except
    554 "failed (technical reason)", which is the gateway's own trouble. 9xx (level 3
    delivery failure) is permanent. 4xx (connection terminated) and anything else are
    transient.
    """
    if code == 554:
        return False
    return 500 <= code < 600 or 900 <= code < 1000


@dataclass(frozen=True, slots=True)
class SnppSettings:
    """Default SNPP gateway (``"host:port"``) and the per-operation timeout in seconds."""

    server: str = ""
    timeout: float = 10.0
    max_mess_length: int = MAX_MESS_LENGTH

    @classmethod
    def from_settings(cls) -> SnppSettings:
        """Read ``SNPP_SERVER`` and ``SNPP_TIMEOUT`` from Django settings."""
        from django.conf import settings

        return cls(
            server=getattr(settings, "SNPP_SERVER", ""),
            timeout=float(getattr(settings, "SNPP_TIMEOUT", 10)),
        )


class _Session:
    """Line I/O on one SNPP connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")

    def reply(self) -> SnppReply:
        line = self.reader.readline(MAX_REPLY_LENGTH)
        if not line:
            raise TransportError("SNPP gateway closed the connection")
        text = line.decode("ascii", "replace").strip()
        if len(text) < 3 or not text[:3].isdigit():
            raise TransportError(f"SNPP gateway sent an unreadable reply {text[:80]!r}")
        return SnppReply(int(text[:3]), text[3:].strip())

    def send_line(self, line: str) -> None:
        self.sock.sendall(line.encode("ascii", "replace") + b"\r\n")

    def command(self, line: str) -> SnppReply:
        self.send_line(line)
        return self.reply()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def _fail(step: str, reply: SnppReply) -> TransportError:
    return TransportError(
        f"SNPP {step} refused: {reply.code} {reply.text}",
        permanent=is_permanent_failure(reply.code),
        code=str(reply.code),
    )


class SnppTransport(Transport):
    """Send a page through an SNPP gateway.

    Per-method ``options``: ``server`` (``"host:port"``, else the ``SNPP_SERVER`` setting),
    ``login`` and ``password`` (sent with ``LOGI`` when a login is set).
    """

    kind = "pager_snpp"

    def __init__(self, config: SnppSettings) -> None:
        self.config = config

    @classmethod
    def from_settings(cls) -> Self:
        """The transport configured by the ``SNPP_*`` settings."""
        return cls(SnppSettings.from_settings())

    def notify(self, message: OutboundMessage) -> DeliveryReceipt:
        """Send one page.

        Returns a ``SENT`` receipt without a provider reference (SNPP gives none); the
        detail holds the gateway's answer to ``SEND``.

        Raises ``TransportError``: permanent for an empty pager id or one holding
        whitespace or control characters, an invalid server option, a method's server
        that the outbound policy refuses (a private address: :mod:`dr_platform.outbound`)
        and 5xx/9xx replies other than 554 (550 invalid pager id ...); transient
        for connection errors, timeouts, 4xx replies (421), 554, unreadable replies, a
        method's server that does not resolve and a missing server setting.
        """
        pager_id = message.address.strip()
        if not pager_id:
            raise TransportError("empty pager id", permanent=True)
        if one_token(pager_id) != pager_id:
            # Paging a "cleaned" id would page someone else, or no one.
            raise TransportError(
                "pager id contains whitespace or control characters", permanent=True
            )
        method_server = message.options.get("server", "")
        server = method_server or self.config.server
        if not server:
            raise TransportError("no SNPP server configured", permanent=False)
        try:
            host, port = parse_server(server)
        except ValueError as exc:
            raise TransportError(str(exc), permanent=True) from exc
        targets = [host]
        if method_server:
            # A participant named this server: it must be a public address now, and we
            # connect to the addresses just checked, not to a fresh lookup of the name.
            try:
                targets = outbound.check_host(host, port) or [host]
            except outbound.OutboundAddressError as exc:
                raise TransportError(
                    f"SNPP server refused: {exc}",
                    permanent=not isinstance(exc, outbound.UnresolvedHostError),
                ) from None
        sock = self._connect(targets, port, host)
        session = _Session(sock)
        try:
            return self._converse(session, pager_id, message)
        except TimeoutError as exc:
            raise TransportError(f"SNPP gateway timed out: {exc}") from exc
        except OSError as exc:
            raise TransportError(f"SNPP connection failed: {exc}") from exc
        finally:
            session.close()

    def _connect(self, targets: list[str], port: int, host: str) -> socket.socket:
        error: OSError | None = None
        for target in targets:
            try:
                return socket.create_connection((target, port), timeout=self.config.timeout)
            except OSError as exc:
                error = exc
        raise TransportError(f"SNPP gateway {host}:{port} unreachable: {error}") from error

    def _converse(
        self, session: _Session, pager_id: str, message: OutboundMessage
    ) -> DeliveryReceipt:
        greeting = session.reply()
        if not greeting.ok:
            raise TransportError(
                f"SNPP gateway not ready: {greeting.code} {greeting.text}",
                permanent=False,
                code=str(greeting.code),
            )
        login = one_token(message.options.get("login", ""))
        if login:
            password = one_token(message.options.get("password", ""))
            reply = session.command(f"LOGI {login} {password}".rstrip())
            if not reply.ok:
                # A refused login is the platform's configuration, not the pager's fault.
                raise TransportError(
                    f"SNPP login refused: {reply.code} {reply.text}", code=str(reply.code)
                )
        reply = session.command(f"PAGE {pager_id}")
        if not reply.ok:
            raise _fail("PAGE", reply)
        self._message(session, message.text)
        reply = session.command("SEND")
        if not reply.ok:
            raise _fail("SEND", reply)
        try:
            session.command("QUIT")
        except (OSError, TransportError):
            pass  # the page is sent; a rude goodbye changes nothing
        return DeliveryReceipt(
            provider_reference=None,
            status=ReceiptStatus.SENT,
            detail=f"snpp {reply.code} {reply.text}".strip(),
        )

    def _message(self, session: _Session, text: str) -> None:
        lines = [_CONTROL.sub("", line) for line in _LINE_BREAK.split(text.strip())]
        flat = " ".join(line.strip() for line in lines if line.strip())
        if len(lines) == 1 and len(flat) <= self.config.max_mess_length:
            reply = session.command(f"MESS {flat}")
            if not reply.ok:
                raise _fail("MESS", reply)
            return
        reply = session.command("DATA")
        if reply.code in (500, 502):
            # Level 1 gateways do not implement DATA: send what fits in one MESS, the way
            # a pager would truncate it anyway.
            reply = session.command(f"MESS {flat[: self.config.max_mess_length]}")
            if not reply.ok:
                raise _fail("MESS", reply)
            return
        if not 300 <= reply.code < 400:
            raise _fail("DATA", reply)
        for line in lines:
            # Dot-stuffing: a line holding just "." would end the block early.
            session.send_line("." + line if line.startswith(".") else line)
        reply = session.command(".")
        if not reply.ok:
            raise _fail("DATA", reply)
