"""Email through Django's mail backend (SMTP in production).

Plain text with an HTML alternative. The notification id travels twice: as the
``X-DR-Notification`` header and inside a deterministic ``Message-ID``
(``<notification-uuid@domain>``), so a retried send carries the same Message-ID and
bounces or replies can be matched to the notification.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Self

from django.core.mail import EmailMultiAlternatives, get_connection

from .base import DeliveryReceipt, OutboundMessage, ReceiptStatus, Transport, TransportError

NOTIFICATION_HEADER = "X-DR-Notification"


@dataclass(frozen=True, slots=True)
class EmailSettings:
    """Sender address, Message-ID domain, and the SMTP timeout in seconds.

    ``backend`` is a dotted path to a Django email backend, or ``None`` for
    ``EMAIL_BACKEND``; host, port and credentials are the backend's own ``EMAIL_*``
    settings.
    """

    from_email: str
    message_id_domain: str = "localhost"
    timeout: float = 15.0
    backend: str | None = None

    @classmethod
    def from_settings(cls) -> EmailSettings:
        """Read ``DEFAULT_FROM_EMAIL`` (its domain names the Message-IDs),
        ``EMAIL_TIMEOUT`` and ``NOTIFICATION_EMAIL_BACKEND`` from Django settings."""
        from django.conf import settings

        from_email = settings.DEFAULT_FROM_EMAIL
        domain = parseaddr(from_email)[1].rpartition("@")[2] or "localhost"
        return cls(
            from_email=from_email,
            message_id_domain=domain,
            timeout=float(getattr(settings, "EMAIL_TIMEOUT", None) or 15),
            backend=getattr(settings, "NOTIFICATION_EMAIL_BACKEND", None),
        )


def message_id_for(notification_id: object, domain: str) -> str:
    """The Message-ID header value for a notification, angle brackets included."""
    return f"<{notification_id}@{domain}>"


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _smtp_error(exc: smtplib.SMTPException) -> TransportError:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        code = max(codes) if codes else 550
        detail = "; ".join(
            f"{address}: {refused_code} {_text(reply)}"
            for address, (refused_code, reply) in exc.recipients.items()
        )
        return TransportError(
            f"recipient refused: {detail}", permanent=500 <= code < 600, code=str(code)
        )
    if isinstance(exc, smtplib.SMTPAuthenticationError | smtplib.SMTPSenderRefused):
        # Our relay credentials or sender address: configuration, not the recipient.
        return TransportError(
            f"SMTP relay refused the platform's account: {exc}", code=str(exc.smtp_code)
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        return TransportError(
            f"SMTP error {exc.smtp_code}: {_text(exc.smtp_error)}",
            permanent=500 <= exc.smtp_code < 600,
            code=str(exc.smtp_code),
        )
    # SMTPServerDisconnected, SMTPNotSupportedError ...
    return TransportError(f"SMTP failure: {exc}")


class EmailTransport(Transport):
    """Send one email per notification through a fresh backend connection."""

    kind = "email"

    def __init__(self, config: EmailSettings) -> None:
        self.config = config

    @classmethod
    def from_settings(cls) -> Self:
        """The transport configured by the ``EMAIL_*`` settings."""
        return cls(EmailSettings.from_settings())

    def build_email(self, message: OutboundMessage) -> EmailMultiAlternatives:
        """The email this transport would send for ``message`` (not yet bound to a backend)."""
        headers = {
            NOTIFICATION_HEADER: str(message.notification_id),
            "Message-ID": message_id_for(message.notification_id, self.config.message_id_domain),
            # Notices are machine-sent; auto-responders should stay quiet (RFC 3834).
            "Auto-Submitted": "auto-generated",
        }
        opt_out = message.reply_links.get("opt_out")
        if opt_out:
            headers["List-Unsubscribe"] = f"<{opt_out}>"
        # Subjects are one line; a CR/LF here would start a new header.
        subject = " ".join(message.subject.split())
        email = EmailMultiAlternatives(
            subject=subject,
            body=message.text,
            from_email=self.config.from_email,
            to=[message.address],
            headers=headers,
        )
        if message.html:
            email.attach_alternative(message.html, "text/html")
        return email

    def notify(self, message: OutboundMessage) -> DeliveryReceipt:
        """Send one email.

        Returns a ``SENT`` receipt (the relay accepted it) whose reference is the
        Message-ID.

        Raises ``TransportError``: permanent for SMTP 5xx answers about the recipient or
        the message (550 mailbox unavailable, 554 rejected) and for an address Django
        refuses to build; transient for connection errors, timeouts, SMTP 4xx answers,
        a dropped connection, and refused relay credentials or sender address.
        """
        try:
            email = self.build_email(message)
        except ValueError as exc:
            raise TransportError(f"cannot build email: {exc}", permanent=True) from exc
        connection = get_connection(
            self.config.backend, fail_silently=False, timeout=self.config.timeout
        )
        email.connection = connection
        try:
            sent = email.send(fail_silently=False)
        except smtplib.SMTPException as exc:
            raise _smtp_error(exc) from exc
        except OSError as exc:  # refused, reset, timed out, TLS failure
            raise TransportError(f"SMTP relay unreachable: {exc}") from exc
        except ValueError as exc:  # e.g. a header Django will not encode
            raise TransportError(f"cannot send email: {exc}", permanent=True) from exc
        if sent != 1:
            raise TransportError("the email backend reported nothing sent")
        return DeliveryReceipt(
            provider_reference=email.extra_headers["Message-ID"],
            status=ReceiptStatus.SENT,
            detail="accepted by relay",
        )
