"""The outbound address policy: participant-supplied hosts must be public internet hosts."""

from __future__ import annotations

import socket

import pytest
import requests

from dr_platform import outbound
from tests.stubs.webhook import WebhookStub


@pytest.fixture
def policy_on(settings):
    settings.DR_ALLOW_PRIVATE_OUTBOUND = False
    return settings


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://172.16.5.5/hook",
        "http://100.64.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/hook",
        "http://224.0.0.1/hook",
        "http://0.0.0.0/hook",
        "http://240.0.0.1/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ],
)
def test_it_refuses_urls_that_reach_non_public_addresses(policy_on, url):
    with pytest.raises(outbound.OutboundAddressError, match="not a public internet address"):
        outbound.check_url(url)


def test_it_accepts_a_public_address(policy_on):
    outbound.check_url("https://93.184.215.14/hook")


def test_it_refuses_a_name_when_any_of_its_addresses_is_internal(policy_on, monkeypatch):
    def resolve(host, port, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)

    with pytest.raises(outbound.OutboundAddressError, match="10.0.0.7"):
        outbound.check_url("https://receiver.example/hook")


def test_a_name_that_does_not_resolve_is_refused_as_unresolved(policy_on, monkeypatch):
    def resolve(host, port, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", resolve)

    with pytest.raises(outbound.UnresolvedHostError):
        outbound.check_url("https://nowhere.example/hook")


@pytest.mark.parametrize("allowed", [False, True])
@pytest.mark.parametrize("value", ["snpp.example:0", "snpp.example:99999", "snpp.example:x"])
def test_ports_outside_1_to_65535_are_refused_whatever_the_setting(settings, allowed, value):
    settings.DR_ALLOW_PRIVATE_OUTBOUND = allowed
    with pytest.raises(outbound.OutboundAddressError):
        host, port = outbound.parse_host_port(value, default_port=444)
        outbound.check_host(host, port)


def test_a_url_with_a_port_above_65535_is_refused(settings):
    settings.DR_ALLOW_PRIVATE_OUTBOUND = True
    with pytest.raises(outbound.OutboundAddressError, match="1-65535"):
        outbound.check_url("http://receiver.example:99999/hook")


def test_the_setting_lets_private_addresses_through(settings):
    settings.DR_ALLOW_PRIVATE_OUTBOUND = True
    outbound.check_url("http://127.0.0.1:8000/hook")
    outbound.check_host("10.0.0.1", 444)


def test_trusted_gateways_match_ignoring_case_and_default_ports():
    trusted = ["https://WCTP.Carrier.example/wctp"]
    assert outbound.is_trusted_gateway("https://wctp.carrier.example:443/wctp", trusted)
    assert not outbound.is_trusted_gateway("https://wctp.carrier.example/other", trusted)
    assert not outbound.is_trusted_gateway("https://wctp.carrier.example.evil/wctp", trusted)
    assert not outbound.is_trusted_gateway("http://wctp.carrier.example/wctp", trusted)
    assert not outbound.is_trusted_gateway("https://wctp.carrier.example/wctp", [])


def test_it_keeps_the_resolvers_order_of_addresses(policy_on, monkeypatch):
    def resolve(host, port, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.15", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.15", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)

    assert outbound.check_host("receiver.example", 443) == ["93.184.215.15", "93.184.215.14"]


# --- HTTP targets: connecting to the addresses that were checked ----------------------------


def _no_lookups(host, port, *args, **kwargs):
    raise AssertionError(f"looked up {host!r}")


def test_with_private_addresses_allowed_a_url_is_its_own_unpinned_target(settings, monkeypatch):
    settings.DR_ALLOW_PRIVATE_OUTBOUND = True
    monkeypatch.setattr(socket, "getaddrinfo", _no_lookups)

    [target] = outbound.http_targets(" http://receiver.example:8080/hook ")

    assert target == outbound.HttpTarget("http://receiver.example:8080/hook")
    assert target.headers == {}


def test_with_the_policy_on_each_checked_address_is_a_pinned_target(policy_on, monkeypatch):
    def resolve(host, port, **kwargs):
        assert host == "receiver.example"
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2606:2800:21f:cb07::1", port, 0, 0)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)

    targets = outbound.http_targets("https://receiver.example/hook?site=7")

    assert targets == [
        outbound.HttpTarget("https://93.184.215.14:443/hook?site=7", "receiver.example"),
        outbound.HttpTarget("https://[2606:2800:21f:cb07::1]:443/hook?site=7", "receiver.example"),
    ]
    assert targets[0].headers == {"Host": "receiver.example"}


V6 = "2606:2800:21f:cb07::1"


@pytest.mark.parametrize(
    ("url", "address", "pinned", "host_header"),
    [
        (
            "http://Receiver.Example:8080/hook",
            "93.184.215.14",
            "http://93.184.215.14:8080/hook",
            "receiver.example:8080",
        ),
        (
            "https://receiver.example:443/a/b?c=d#top",
            "93.184.215.14",
            "https://93.184.215.14:443/a/b?c=d",
            "receiver.example",
        ),
        (
            "https://user:pw@receiver.example/hook",
            "93.184.215.14",
            "https://user:pw@93.184.215.14:443/hook",
            "receiver.example",
        ),
        (
            "https://bücher.example/hook",
            "93.184.215.14",
            "https://93.184.215.14:443/hook",
            "xn--bcher-kva.example",
        ),
        ("https://receiver.example/hook", V6, f"https://[{V6}]:443/hook", "receiver.example"),
        (f"https://[{V6}]:8443/hook", V6, f"https://[{V6}]:8443/hook", f"[{V6}]:8443"),
    ],
)
def test_a_pinned_url_keeps_everything_but_the_address(url, address, pinned, host_header):
    target = outbound.pin_url(url, address)

    assert (target.url, target.host_header) == (pinned, host_header)


def _unresolvable(name, real_getaddrinfo):
    def resolve(host, port, *args, **kwargs):
        if host == name:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, port, *args, **kwargs)

    return resolve


def test_a_pinned_request_goes_to_its_address_with_the_names_host_and_path(monkeypatch):
    # receiver.example does not resolve at all: the request can only arrive if the client
    # connects to the pinned address without looking the name up. A proxy from the
    # environment (nothing listens on port 9) would look it up again, so it is bypassed.
    monkeypatch.setattr(
        socket, "getaddrinfo", _unresolvable("receiver.example", socket.getaddrinfo)
    )
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    session = outbound.http_session()

    with WebhookStub() as stub:
        port = stub.port
        target = outbound.pin_url(f"http://receiver.example:{port}/hooks/dr?site=7", "127.0.0.1")
        response = session.post(target.url, data=b"{}", headers=target.headers, timeout=5)
        # Unpinned requests still take the environment's proxy, as requests always does.
        with pytest.raises(requests.ConnectionError):
            session.post(stub.url, data=b"{}", timeout=5)
        requests_received = stub.requests

    [request] = requests_received
    assert response.status_code == 200
    assert request.headers["host"] == f"receiver.example:{port}"
    assert request.path == "/hooks/dr?site=7"


def test_the_session_keeps_no_cookie_from_one_receiver_for_the_next():
    # One session posts to every participant's receiver, and pinned URLs name addresses:
    # a cookie one receiver sets must not go back, to it or to another on that address.
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    cookies_received: list[str | None] = []

    class SetsACookie(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            cookies_received.append(self.headers.get("Cookie"))
            self.send_response(200)
            self.send_header("Set-Cookie", "receiver=alpha; Path=/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), SetsACookie)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        session = outbound.http_session()
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        for _ in range(2):
            assert session.post(url, data=b"{}", timeout=5).status_code == 200
    finally:
        server.shutdown()
        server.server_close()

    assert cookies_received == [None, None]
    assert len(session.cookies) == 0
