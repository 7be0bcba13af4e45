"""Email through Django's SMTP backend against the aiosmtpd relay stub."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from events.channels.base import ReceiptStatus, TransportError
from events.channels.email import EmailSettings, EmailTransport
from tests.stubs.smtp import SmtpStub

from .conftest import MessageFactory

FROM = "Demand Response <dr@dr.example.com>"


@pytest.fixture
def smtp_settings(settings, smtp_stub: SmtpStub):  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = smtp_stub.host
    settings.EMAIL_PORT = smtp_stub.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.DEFAULT_FROM_EMAIL = FROM
    return settings


def _transport(timeout: float = 2.0) -> EmailTransport:
    return EmailTransport(
        EmailSettings(from_email=FROM, message_id_domain="dr.example.com", timeout=timeout)
    )


def test_it_sends_text_and_html_with_the_notification_id(
    smtp_settings, smtp_stub: SmtpStub, make_message: MessageFactory
) -> None:
    message = make_message(
        kind="email",
        address="pat@example.com",
        html="<p>Event tomorrow</p>",
        reply_links={"opt_out": "https://dr.example.com/r/opt-out/abc/"},
    )

    receipt = _transport().notify(message)

    [received] = smtp_stub.messages
    assert received.rcpt_tos == ("pat@example.com",)
    assert received.mail_from == "dr@dr.example.com"
    email = received.message
    assert email["Subject"] == message.subject
    assert email["X-DR-Notification"] == str(message.notification_id)
    assert email["Message-ID"] == f"<{message.notification_id}@dr.example.com>"
    assert email["List-Unsubscribe"] == "<https://dr.example.com/r/opt-out/abc/>"
    assert email.get_body(("plain",)).get_content().strip() == message.text
    assert email.get_body(("html",)).get_content().strip() == "<p>Event tomorrow</p>"
    assert receipt.provider_reference == f"<{message.notification_id}@dr.example.com>"
    assert receipt.status is ReceiptStatus.SENT


def test_it_sends_plain_text_only_without_html(
    smtp_settings, smtp_stub: SmtpStub, make_message: MessageFactory
) -> None:
    _transport().notify(make_message(address="pat@example.com"))

    assert smtp_stub.messages[0].message.get_content_type() == "text/plain"


def test_it_keeps_a_subject_on_one_header_line(
    smtp_settings, smtp_stub: SmtpStub, make_message: MessageFactory
) -> None:
    message = make_message(address="pat@example.com", subject="Event\r\nBcc: evil@example.com")

    _transport().notify(message)

    [received] = smtp_stub.messages
    assert received.rcpt_tos == ("pat@example.com",)
    assert received.message["Bcc"] is None
    assert received.message["Subject"] == "Event Bcc: evil@example.com"


def test_it_raises_permanent_error_when_the_recipient_is_refused(
    smtp_settings, smtp_stub: SmtpStub, make_message: MessageFactory
) -> None:
    smtp_stub.refuse("gone@example.com", code=550)

    with pytest.raises(TransportError) as caught:
        _transport().notify(make_message(address="gone@example.com"))

    assert caught.value.permanent is True
    assert caught.value.code == "550"
    assert smtp_stub.messages == []


def test_it_raises_transient_error_when_the_recipient_is_refused_for_now(
    smtp_settings, smtp_stub: SmtpStub, make_message: MessageFactory
) -> None:
    smtp_stub.refuse("busy@example.com", code=450)

    with pytest.raises(TransportError) as caught:
        _transport().notify(make_message(address="busy@example.com"))

    assert caught.value.permanent is False
    assert caught.value.code == "450"


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [("451 4.3.0 Try again later", False), ("554 5.7.1 Message rejected", True)],
)
def test_it_classifies_a_refused_message_by_reply_code(
    smtp_settings,
    smtp_stub: SmtpStub,
    make_message: MessageFactory,
    reply: str,
    permanent: bool,
) -> None:
    smtp_stub.fail_data = reply

    with pytest.raises(TransportError) as caught:
        _transport().notify(make_message(address="pat@example.com"))

    assert caught.value.permanent is permanent
    assert caught.value.code == reply[:3]


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_it_raises_transient_error_when_the_relay_is_down(
    settings, closed_port: int, make_message: MessageFactory
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = closed_port
    settings.EMAIL_USE_TLS = False

    with pytest.raises(TransportError) as caught:
        _transport().notify(make_message(address="pat@example.com"))

    assert caught.value.permanent is False


@pytest.fixture
def silent_relay() -> Iterator[int]:
    """A socket that accepts connections (via the backlog) but never greets."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        yield listener.getsockname()[1]


def test_it_raises_transient_error_when_the_relay_never_answers(
    settings, silent_relay: int, make_message: MessageFactory
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = silent_relay
    settings.EMAIL_USE_TLS = False
    started = time.monotonic()

    with pytest.raises(TransportError) as caught:
        _transport(timeout=0.3).notify(make_message(address="pat@example.com"))

    assert caught.value.permanent is False
    assert time.monotonic() - started < 2.0


def test_it_reads_sender_and_message_id_domain_from_settings(smtp_settings) -> None:
    smtp_settings.EMAIL_TIMEOUT = 7

    transport = EmailTransport.from_settings()

    assert transport.config.from_email == FROM
    assert transport.config.message_id_domain == "dr.example.com"
    assert transport.config.timeout == 7.0
