"""SNPP pages against the loopback SNPP gateway stub."""

from __future__ import annotations

import socket
import time

import pytest

from enrollment.constants import SNPP_DEFAULT_PORT
from events.channels.base import ReceiptStatus, TransportError
from events.channels.snpp import (
    MAX_MESS_LENGTH,
    SnppSettings,
    SnppTransport,
    is_permanent_failure,
    parse_server,
)
from tests.stubs.snpp import SnppPage, SnppStub

from .conftest import MessageFactory

PAGER_ID = "5551234"


def _transport(stub: SnppStub, *, timeout: float = 2.0) -> SnppTransport:
    return SnppTransport(SnppSettings(server=stub.server, timeout=timeout))


def test_it_sends_page_mess_send_quit(snpp_stub: SnppStub, make_message: MessageFactory) -> None:
    message = make_message(kind="pager_snpp", address=PAGER_ID, text="Event 17:00-19:00")

    receipt = _transport(snpp_stub).notify(message)

    assert snpp_stub.commands == [
        f"PAGE {PAGER_ID}",
        "MESS Event 17:00-19:00",
        "SEND",
        "QUIT",
    ]
    assert snpp_stub.pages == [SnppPage((PAGER_ID,), "Event 17:00-19:00", None)]
    assert receipt.provider_reference is None
    assert receipt.status is ReceiptStatus.SENT
    assert "250" in receipt.detail


def test_it_logs_in_when_the_method_has_a_login(
    snpp_stub: SnppStub, make_message: MessageFactory
) -> None:
    message = make_message(address=PAGER_ID, options={"login": "dr", "password": "pw"})

    _transport(snpp_stub).notify(message)

    assert snpp_stub.commands[0] == "LOGI dr pw"
    assert snpp_stub.pages[0].login == "dr"


def test_it_uses_data_for_long_or_multi_line_text(
    snpp_stub: SnppStub, make_message: MessageFactory
) -> None:
    text = "Event tomorrow\n.\n..hidden\n" + "x" * MAX_MESS_LENGTH

    _transport(snpp_stub).notify(make_message(address=PAGER_ID, text=text))

    assert snpp_stub.commands[1] == "DATA"
    # Dot-stuffing keeps a lone "." in the text from ending the block early.
    assert snpp_stub.commands[2:5] == ["Event tomorrow", "..", "...hidden"]
    assert snpp_stub.pages[0].text == text


def test_it_falls_back_to_a_truncated_mess_without_data_support(
    make_message: MessageFactory,
) -> None:
    with SnppStub(support_data=False) as stub:
        _transport(stub).notify(make_message(address=PAGER_ID, text="y" * 500))

        assert stub.pages[0].text == "y" * MAX_MESS_LENGTH


def test_it_keeps_injected_commands_in_the_text_inside_the_data_block(
    snpp_stub: SnppStub, make_message: MessageFactory
) -> None:
    message = make_message(address=PAGER_ID, text="hello\r\nPAGE 6666666\r\nSEND")

    _transport(snpp_stub).notify(message)

    # The text's lines went inside the DATA block, where the gateway reads them as text,
    # never as commands: one page, to one pager.
    assert snpp_stub.commands == [
        f"PAGE {PAGER_ID}",
        "DATA",
        "hello",
        "PAGE 6666666",
        "SEND",
        ".",
        "SEND",
        "QUIT",
    ]
    assert snpp_stub.pages == [SnppPage((PAGER_ID,), "hello\nPAGE 6666666\nSEND", None)]


@pytest.mark.parametrize("address", [f"{PAGER_ID}\r\nPAGE 999", f"{PAGER_ID} 999", "55\x0012"])
def test_it_refuses_a_pager_id_that_could_inject_a_command(
    snpp_stub: SnppStub, make_message: MessageFactory, address: str
) -> None:
    with pytest.raises(TransportError) as caught:
        _transport(snpp_stub).notify(make_message(address=address))

    assert caught.value.permanent is True
    assert snpp_stub.commands == []


def test_it_keeps_a_single_line_message_on_one_command_line(
    snpp_stub: SnppStub, make_message: MessageFactory
) -> None:
    _transport(snpp_stub).notify(make_message(address=PAGER_ID, text="a\x00b\x1bc"))

    assert snpp_stub.commands[1] == "MESS abc"


def test_it_never_lets_a_login_inject_a_command(
    snpp_stub: SnppStub, make_message: MessageFactory
) -> None:
    message = make_message(address=PAGER_ID, options={"login": "dr\r\nSEND", "password": ""})

    _transport(snpp_stub).notify(message)

    assert snpp_stub.commands[0] == "LOGI drSEND"
    assert snpp_stub.commands.count("SEND") == 1


def test_it_raises_permanent_error_for_invalid_pager_id(
    snpp_stub: SnppStub, make_message: MessageFactory
) -> None:
    snpp_stub.invalid_pagers.add("0000")

    with pytest.raises(TransportError) as caught:
        _transport(snpp_stub).notify(make_message(address="0000"))

    assert caught.value.permanent is True
    assert caught.value.code == "550"
    assert snpp_stub.pages == []


def test_it_raises_permanent_error_for_an_empty_pager_id(
    snpp_stub: SnppStub, make_message: MessageFactory
) -> None:
    with pytest.raises(TransportError) as caught:
        _transport(snpp_stub).notify(make_message(address=" \r\n"))

    assert caught.value.permanent is True
    assert snpp_stub.commands == []


def test_it_raises_transient_error_for_a_technical_send_failure(
    make_message: MessageFactory,
) -> None:
    with SnppStub(fail_send=554) as stub:
        with pytest.raises(TransportError) as caught:
            _transport(stub).notify(make_message(address=PAGER_ID))

    assert caught.value.permanent is False
    assert caught.value.code == "554"


def test_it_raises_transient_error_when_the_gateway_is_unavailable(
    make_message: MessageFactory,
) -> None:
    with SnppStub(greeting="421 Gateway Service Unavailable") as stub:
        with pytest.raises(TransportError) as caught:
            _transport(stub).notify(make_message(address=PAGER_ID))

    assert caught.value.permanent is False
    assert caught.value.code == "421"


def test_it_raises_transient_error_when_the_gateway_never_greets(
    make_message: MessageFactory,
) -> None:
    started = time.monotonic()
    with SnppStub(stall_greeting=True, idle_timeout=3.0) as stub:
        with pytest.raises(TransportError) as caught:
            _transport(stub, timeout=0.3).notify(make_message(address=PAGER_ID))

    assert caught.value.permanent is False
    assert time.monotonic() - started < 2.5


def test_it_raises_transient_error_when_nothing_listens(make_message: MessageFactory) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = SnppTransport(SnppSettings(server=f"127.0.0.1:{port}", timeout=1.0))

    with pytest.raises(TransportError) as caught:
        transport.notify(make_message(address=PAGER_ID))

    assert caught.value.permanent is False


def test_it_prefers_the_server_of_the_method(
    snpp_stub: SnppStub, make_message: MessageFactory
) -> None:
    transport = SnppTransport(SnppSettings(server="", timeout=1.0))

    transport.notify(make_message(address=PAGER_ID, options={"server": snpp_stub.server}))

    assert len(snpp_stub.pages) == 1


def test_it_raises_transient_error_without_any_server(make_message: MessageFactory) -> None:
    with pytest.raises(TransportError) as caught:
        SnppTransport(SnppSettings()).notify(make_message(address=PAGER_ID))

    assert caught.value.permanent is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("pager.example.com:444", ("pager.example.com", 444)),
        ("pager.example.com", ("pager.example.com", 444)),
        ("[::1]:7777", ("::1", 7777)),
    ],
)
def test_it_parses_server_addresses(value: str, expected: tuple[str, int]) -> None:
    assert parse_server(value) == expected


def test_a_server_without_a_port_is_paged_on_the_port_contact_methods_are_checked_at() -> None:
    # One constant for this channel and enrollment's check of a participant's SNPP server.
    assert SNPP_DEFAULT_PORT == 444  # IANA's port for SNPP
    assert parse_server("pager.example.com") == ("pager.example.com", SNPP_DEFAULT_PORT)


@pytest.mark.parametrize("value", ["", ":444", "pager.example.com:99999", "pager.example.com:x"])
def test_it_refuses_malformed_server_addresses(value: str) -> None:
    with pytest.raises(ValueError):
        parse_server(value)


@pytest.mark.parametrize(
    ("code", "permanent"),
    [(550, True), (503, True), (554, False), (421, False), (960, True)],
)
def test_it_classifies_reply_codes(code: int, permanent: bool) -> None:
    assert is_permanent_failure(code) is permanent


def test_it_never_connects_to_a_methods_private_server_when_the_policy_is_on(
    snpp_stub: SnppStub, make_message: MessageFactory, settings
) -> None:
    settings.DR_ALLOW_PRIVATE_OUTBOUND = False
    transport = SnppTransport(SnppSettings(server="", timeout=1.0))

    with pytest.raises(TransportError, match="not a public internet address") as caught:
        transport.notify(make_message(address=PAGER_ID, options={"server": snpp_stub.server}))

    assert caught.value.permanent is True
    assert snpp_stub.commands == []


def test_the_operators_own_server_is_not_subject_to_the_policy(
    snpp_stub: SnppStub, make_message: MessageFactory, settings
) -> None:
    settings.DR_ALLOW_PRIVATE_OUTBOUND = False

    _transport(snpp_stub).notify(make_message(address=PAGER_ID))

    assert len(snpp_stub.pages) == 1
