"""Signed webhooks against the loopback receiver stub."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket

import pytest

from events.channels.base import ReceiptStatus, TransportError
from events.channels.webhook import WebhookSettings, WebhookTransport, sign, verify
from tests.stubs.webhook import WebhookStub

from .conftest import MessageFactory

SECRET = "whsec-test-0123456789"


def _transport(timeout: float = 2.0) -> WebhookTransport:
    return WebhookTransport(WebhookSettings(timeout=timeout))


def _message(make_message: MessageFactory, stub: WebhookStub, **overrides: object):
    values: dict[str, object] = {
        "kind": "webhook",
        "address": stub.url,
        "options": {"secret": SECRET},
        "reply_links": {"acknowledge": "https://dr.example.com/r/ack/abc/"},
    }
    values.update(overrides)
    return make_message(**values)


def test_it_posts_signed_json(webhook_stub: WebhookStub, make_message: MessageFactory) -> None:
    message = _message(make_message, webhook_stub)

    receipt = _transport().notify(message)

    [request] = webhook_stub.requests
    assert request.path == "/hooks/dr"
    assert request.headers["content-type"] == "application/json"
    document = json.loads(request.body)
    assert document["notification_id"] == str(message.notification_id)
    assert document["text"] == message.text
    assert document["reply_links"] == {"acknowledge": "https://dr.example.com/r/ack/abc/"}
    assert str(document["timestamp"]) == request.headers["x-dr-timestamp"]
    assert request.headers["x-dr-notification"] == str(message.notification_id)
    # The receiver's side: the signature covers exactly the bytes that arrived.
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-dr-signature"] == f"sha256={expected}"
    assert verify(request.body, SECRET, request.headers["x-dr-signature"])
    assert receipt.status is ReceiptStatus.DELIVERED
    assert receipt.provider_reference is None


def test_sign_matches_an_independent_hmac() -> None:
    body = b'{"a":1}'

    assert sign(body, "k") == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


def test_verify_accepts_our_own_signature() -> None:
    body = b'{"notification_id":"x"}'

    assert verify(body, SECRET, sign(body, SECRET)) is True


@pytest.mark.parametrize(
    ("body", "secret", "header"),
    [
        (b'{"a":2}', SECRET, sign(b'{"a":1}', SECRET)),  # body changed
        (b'{"a":1}', "other-secret", sign(b'{"a":1}', SECRET)),  # wrong secret
        (b'{"a":1}', SECRET, None),  # no header
        (b'{"a":1}', SECRET, sign(b'{"a":1}', SECRET).replace("sha256=", "sha1=")),
        (b'{"a":1}', "", sign(b'{"a":1}', "")),  # empty secret never verifies
    ],
)
def test_verify_refuses_a_bad_signature(body: bytes, secret: str, header: str | None) -> None:
    assert verify(body, secret, header) is False


@pytest.mark.parametrize("status", [500, 502, 503, 408])
def test_it_raises_transient_error_for_server_errors(
    webhook_stub: WebhookStub, make_message: MessageFactory, status: int
) -> None:
    webhook_stub.script(status)

    with pytest.raises(TransportError) as caught:
        _transport().notify(_message(make_message, webhook_stub))

    assert caught.value.permanent is False
    assert caught.value.code == str(status)


def test_it_honours_retry_after_on_429(
    webhook_stub: WebhookStub, make_message: MessageFactory
) -> None:
    webhook_stub.script(429)

    with pytest.raises(TransportError) as caught:
        _transport().notify(_message(make_message, webhook_stub))

    assert (caught.value.permanent, caught.value.retry_after) == (False, 30.0)


@pytest.mark.parametrize("status", [400, 401, 404, 410, 301])
def test_it_raises_permanent_error_for_client_errors_and_redirects(
    webhook_stub: WebhookStub, make_message: MessageFactory, status: int
) -> None:
    webhook_stub.script(status)

    with pytest.raises(TransportError) as caught:
        _transport().notify(_message(make_message, webhook_stub))

    assert caught.value.permanent is True
    assert len(webhook_stub.requests) == 1  # the redirect was not followed


@pytest.mark.parametrize("fault", ["timeout", "reset"])
def test_it_raises_transient_error_on_timeout_or_reset(
    webhook_stub: WebhookStub, make_message: MessageFactory, fault: str
) -> None:
    webhook_stub.script(fault)

    with pytest.raises(TransportError) as caught:
        _transport(timeout=0.3).notify(_message(make_message, webhook_stub))

    assert caught.value.permanent is False


def test_it_raises_permanent_error_without_a_secret(
    webhook_stub: WebhookStub, make_message: MessageFactory
) -> None:
    with pytest.raises(TransportError) as caught:
        _transport().notify(_message(make_message, webhook_stub, options={}))

    assert caught.value.permanent is True
    assert webhook_stub.requests == []


def test_it_raises_permanent_error_for_a_non_http_url(make_message: MessageFactory) -> None:
    message = make_message(address="file:///etc/passwd", options={"secret": SECRET})

    with pytest.raises(TransportError) as caught:
        _transport().notify(message)

    assert caught.value.permanent is True


def test_it_never_posts_to_a_private_address_when_the_policy_is_on(
    webhook_stub: WebhookStub, make_message: MessageFactory, settings
) -> None:
    settings.DR_ALLOW_PRIVATE_OUTBOUND = False

    with pytest.raises(TransportError, match="not a public internet address") as caught:
        _transport().notify(_message(make_message, webhook_stub))

    assert caught.value.permanent is True
    assert webhook_stub.requests == []


def test_a_receiver_whose_name_does_not_resolve_is_tried_again_later(
    make_message: MessageFactory, settings, monkeypatch
) -> None:
    settings.DR_ALLOW_PRIVATE_OUTBOUND = False

    def resolve(host, port, **kwargs):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    message = make_message(
        kind="webhook", address="https://receiver.example/hook", options={"secret": SECRET}
    )

    with pytest.raises(TransportError) as caught:
        _transport().notify(message)

    assert caught.value.permanent is False
