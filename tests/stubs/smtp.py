"""An SMTP relay stub: an ``aiosmtpd`` controller on 127.0.0.1 with an ephemeral port.

Records every accepted envelope and its parsed message. It can simulate recipients the
relay refuses (``refuse("gone@example.com", code=550)`` or ``code=450`` for a temporary
refusal) and a refused ``DATA`` (``fail_data = "451 4.3.0 Try again later"``).
"""

from __future__ import annotations

import email
import email.policy
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True, slots=True)
class ReceivedEmail:
    """One message the relay accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    message: EmailMessage


class _Handler:
    def __init__(self, stub: SmtpStub) -> None:
        self.stub = stub

    async def handle_RCPT(  # noqa: N802 -- aiosmtpd's hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        code = self.stub.refusals.get(address.lower())
        if code is not None:
            kind = "mailbox unavailable" if code >= 500 else "mailbox busy, try again later"
            return f"{code} {kind}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 -- aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.stub.fail_data:
            return self.stub.fail_data
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.stub._receive(
            ReceivedEmail(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                content=content,
                message=message,
            )
        )
        return "250 Message accepted for delivery"


class _EphemeralController(Controller):
    """A Controller that binds port 0 and learns its port before self-testing."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpStub:
    """The SMTP stub; point ``EMAIL_HOST``/``EMAIL_PORT`` at ``host``/``port``."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        self.refusals: dict[str, int] = {}
        self.fail_data: str | None = None
        self._lock = threading.Lock()
        self._messages: list[ReceivedEmail] = []
        self._controller: _EphemeralController | None = None

    def refuse(self, address: str, *, code: int = 550) -> None:
        """Refuse ``RCPT TO:<address>`` with ``code`` (5xx permanent, 4xx temporary)."""
        self.refusals[address.lower()] = code

    @property
    def port(self) -> int:
        if self._controller is None:
            raise RuntimeError("stub not started")
        return self._controller.port

    @property
    def messages(self) -> list[ReceivedEmail]:
        with self._lock:
            return list(self._messages)

    def _receive(self, received: ReceivedEmail) -> None:
        with self._lock:
            self._messages.append(received)

    def start(self) -> Self:
        kwargs: dict[str, Any] = {"hostname": self.host, "port": 0}
        self._controller = _EphemeralController(_Handler(self), **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
        self._controller = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
