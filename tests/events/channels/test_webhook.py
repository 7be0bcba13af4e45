"""Signed webhooks against the loopback receiver stub.

The DNS-rebinding tests fake the two things outside the platform that decide where a
request goes: the resolver (``socket.getaddrinfo``) and the network (``socket.socket.connect``,
which routes a made-up public address to a loopback stub and reaches nothing else beyond
loopback). Everything between them -- the policy, requests, urllib3, TLS -- runs for real.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from events.channels.base import ReceiptStatus, TransportError
from events.channels.webhook import WebhookSettings, WebhookTransport, sign, verify
from tests.stubs.webhook import WebhookStub

from .conftest import MessageFactory

SECRET = "whsec-test-0123456789"
# Global addresses as far as the policy is concerned; the fake network decides where
# (if anywhere) they lead, so no test reaches them.
PUBLIC = "93.184.215.14"
OTHER_PUBLIC = "93.184.215.15"


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


# --- DNS rebinding -------------------------------------------------------------------------


class FakeResolver:
    """``socket.getaddrinfo`` for made-up names.

    Each lookup of a name takes the next of its scripted answers (the last one repeats).
    IP literals resolve as usual; any other name fails, so no test asks a real DNS server.
    """

    def __init__(self) -> None:
        self.lookups: list[str] = []
        self._answers: dict[str, list[list[str]]] = {}
        self._real = socket.getaddrinfo

    def answer(self, name: str, *answers: list[str]) -> None:
        self._answers[name] = list(answers)

    def getaddrinfo(
        self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[tuple[Any, ...]]:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self._answers:
            return self._real(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        self.lookups.append(name)
        queue = self._answers[name]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        return [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port)))
            for address in addresses
        ]


class FakeNetwork:
    """Where connections go: loopback as usual, a routed ``(address, port)`` to a loopback
    stub, anything else "Network is unreachable". ``attempts`` lists every destination a
    client asked for, before routing."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, int]] = []
        self._routes: dict[tuple[str, int], tuple[str, int]] = {}

    def route(self, address: str, port: int, stub: WebhookStub) -> None:
        self._routes[(address, port)] = ("127.0.0.1", stub.port)

    def destination(self, address: tuple[Any, ...]) -> tuple[Any, ...]:
        host, port = address[0], address[1]
        self.attempts.append((host, port))
        if ipaddress.ip_address(host).is_loopback:
            return address
        if (host, port) not in self._routes:
            raise OSError(errno.ENETUNREACH, "Network is unreachable")
        return self._routes[(host, port)]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> FakeResolver:
    fake = FakeResolver()
    monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo)
    return fake


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> FakeNetwork:
    fake = FakeNetwork()
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: tuple[Any, ...]) -> None:
        real_connect(sock, fake.destination(address))

    monkeypatch.setattr(socket.socket, "connect", connect)
    return fake


@pytest.fixture
def public_receiver() -> Iterator[WebhookStub]:
    """The receiver a participant's name really points at (reached through ``network``)."""
    with WebhookStub(stall_seconds=3.0) as stub:
        yield stub


@pytest.fixture
def policy_on(settings) -> None:
    settings.DR_ALLOW_PRIVATE_OUTBOUND = False


def _named(stub: WebhookStub, scheme: str = "http", query: str = "") -> str:
    """The stub's URL under the made-up name ``receiver.example``, on the stub's own port."""
    return f"{scheme}://receiver.example:{stub.port}/hooks/dr{query}"


def test_it_posts_to_a_name_with_that_name_as_host_when_private_addresses_are_allowed(
    webhook_stub: WebhookStub, make_message: MessageFactory, resolver: FakeResolver
) -> None:
    resolver.answer("receiver.example", ["127.0.0.1"])
    message = _message(make_message, webhook_stub, address=_named(webhook_stub, query="?site=7"))

    receipt = _transport().notify(message)

    [request] = webhook_stub.requests
    assert request.headers["host"] == f"receiver.example:{webhook_stub.port}"
    assert request.path == "/hooks/dr?site=7"
    assert receipt.status is ReceiptStatus.DELIVERED
    assert resolver.lookups == ["receiver.example"]  # by the HTTP client, as before


def test_a_rebinding_resolver_never_gets_the_post_to_an_internal_service(
    webhook_stub: WebhookStub,
    public_receiver: WebhookStub,
    make_message: MessageFactory,
    resolver: FakeResolver,
    network: FakeNetwork,
    policy_on: None,
) -> None:
    # webhook_stub plays the internal service on 127.0.0.1; the name's public address
    # leads to public_receiver. The resolver answers the check with the public address and
    # every later lookup with 127.0.0.1.
    resolver.answer("receiver.example", [PUBLIC], ["127.0.0.1"])
    network.route(PUBLIC, webhook_stub.port, public_receiver)
    message = _message(make_message, webhook_stub, address=_named(webhook_stub, query="?site=7"))

    receipt = _transport().notify(message)

    assert webhook_stub.requests == []
    [request] = public_receiver.requests
    assert request.headers["host"] == f"receiver.example:{webhook_stub.port}"
    assert request.path == "/hooks/dr?site=7"
    assert verify(request.body, SECRET, request.headers["x-dr-signature"])
    assert receipt.status is ReceiptStatus.DELIVERED
    assert resolver.lookups == ["receiver.example"]  # the check's lookup, and no other
    assert network.attempts == [(PUBLIC, webhook_stub.port)]


def test_a_rebinding_resolver_whose_public_answer_is_unreachable_gets_a_retry_not_a_post(
    webhook_stub: WebhookStub,
    make_message: MessageFactory,
    resolver: FakeResolver,
    network: FakeNetwork,
    policy_on: None,
) -> None:
    resolver.answer("receiver.example", [PUBLIC], ["127.0.0.1"])
    message = _message(make_message, webhook_stub, address=_named(webhook_stub))

    with pytest.raises(TransportError) as caught:
        _transport().notify(message)

    assert caught.value.permanent is False
    assert webhook_stub.requests == []
    assert network.attempts == [(PUBLIC, webhook_stub.port)]


def test_it_tries_the_next_checked_address_when_one_cannot_be_reached(
    public_receiver: WebhookStub,
    make_message: MessageFactory,
    resolver: FakeResolver,
    network: FakeNetwork,
    policy_on: None,
) -> None:
    resolver.answer("receiver.example", [PUBLIC, OTHER_PUBLIC])
    network.route(OTHER_PUBLIC, public_receiver.port, public_receiver)
    message = _message(make_message, public_receiver, address=_named(public_receiver))

    receipt = _transport().notify(message)

    assert len(public_receiver.requests) == 1
    assert receipt.status is ReceiptStatus.DELIVERED
    port = public_receiver.port
    assert network.attempts == [(PUBLIC, port), (OTHER_PUBLIC, port)]


def test_it_does_not_post_again_to_another_address_after_a_timeout(
    webhook_stub: WebhookStub,
    public_receiver: WebhookStub,
    make_message: MessageFactory,
    resolver: FakeResolver,
    network: FakeNetwork,
    policy_on: None,
) -> None:
    # The first receiver may have got the notice before it stalled: sending it to the
    # second address too could deliver it twice.
    resolver.answer("receiver.example", [PUBLIC, OTHER_PUBLIC])
    network.route(PUBLIC, public_receiver.port, public_receiver)
    network.route(OTHER_PUBLIC, public_receiver.port, webhook_stub)
    public_receiver.script("timeout")
    message = _message(make_message, public_receiver, address=_named(public_receiver))

    with pytest.raises(TransportError) as caught:
        _transport(timeout=0.3).notify(message)

    assert caught.value.permanent is False
    assert len(public_receiver.requests) == 1
    assert webhook_stub.requests == []


# --- https to a pinned address -------------------------------------------------------------


class _TlsHandler(WebhookStub.handler):
    def setup(self) -> None:
        self.request = self.server.stub.tls.wrap_socket(self.request, server_side=True)
        super().setup()


class TlsWebhookStub(WebhookStub):
    """The receiver stub behind TLS; ``server_names`` lists the SNI each client sent."""

    handler = _TlsHandler

    def __init__(self, certificate: Path, key: Path) -> None:
        super().__init__(stall_seconds=3.0)
        self.server_names: list[str | None] = []
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(certificate, key)
        self.tls.sni_callback = self._record_server_name

    def _record_server_name(self, sock: ssl.SSLObject, name: str | None, _: object) -> None:
        self.server_names.append(name)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Self-signed certificates and keys for ``receiver.example`` and ``other.example``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make test certificates")
    folder = tmp_path_factory.mktemp("tls")
    made: dict[str, tuple[Path, Path]] = {}
    for name in ("receiver.example", "other.example"):
        certificate, key = folder / f"{name}.crt", folder / f"{name}.key"
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
            + ["-nodes", "-days", "2", "-keyout", str(key), "-out", str(certificate)]
            + ["-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"],
            check=True,
            capture_output=True,
        )
        made[name] = (certificate, key)
    return made


def test_https_to_a_pinned_address_does_tls_for_the_name(
    certificates: dict[str, tuple[Path, Path]],
    make_message: MessageFactory,
    resolver: FakeResolver,
    network: FakeNetwork,
    policy_on: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    certificate, key = certificates["receiver.example"]
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate))
    resolver.answer("receiver.example", [PUBLIC], ["127.0.0.1"])
    with TlsWebhookStub(certificate, key) as stub:
        port = stub.port
        network.route(PUBLIC, port, stub)
        message = _message(make_message, stub, address=_named(stub, "https"))

        receipt = _transport().notify(message)

    [request] = stub.requests
    assert stub.server_names == ["receiver.example"]
    assert request.headers["host"] == f"receiver.example:{port}"
    assert request.path == "/hooks/dr"
    assert receipt.status is ReceiptStatus.DELIVERED
    assert resolver.lookups == ["receiver.example"]


def test_https_to_a_pinned_address_refuses_a_certificate_for_another_name(
    certificates: dict[str, tuple[Path, Path]],
    make_message: MessageFactory,
    resolver: FakeResolver,
    network: FakeNetwork,
    policy_on: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Trusted, but for other.example: only the name check can refuse it.
    certificate, key = certificates["other.example"]
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate))
    resolver.answer("receiver.example", [PUBLIC])
    with TlsWebhookStub(certificate, key) as stub:
        network.route(PUBLIC, stub.port, stub)
        message = _message(make_message, stub, address=_named(stub, "https"))

        with pytest.raises(TransportError, match="certificate") as caught:
            _transport().notify(message)

    assert caught.value.permanent is False
    assert stub.requests == []
    assert stub.server_names == ["receiver.example"]
