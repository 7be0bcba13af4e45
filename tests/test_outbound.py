"""The outbound address policy: participant-supplied hosts must be public internet hosts."""

from __future__ import annotations

import socket

import pytest

from dr_platform import outbound


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
