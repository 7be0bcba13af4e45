"""Voice calls through the real twilio client against the loopback Twilio stub."""

from __future__ import annotations

import defusedxml.ElementTree as ET
import pytest

from events.channels._twilio import TwilioSettings
from events.channels.base import ReceiptStatus, TransportError
from events.channels.voice import (
    VoiceTransport,
    build_call_twiml,
    build_gather_response_twiml,
    outcome_for_digit,
)
from tests.stubs.fixtures import STUB_ACCOUNT_SID, STUB_AUTH_TOKEN
from tests.stubs.twilio import TwilioStub

from .conftest import MessageFactory

GATHER_URL = "https://dr.example.com/hooks/twilio/gather/abc/"


def _transport(stub: TwilioStub) -> VoiceTransport:
    return VoiceTransport(
        TwilioSettings(
            account_sid=STUB_ACCOUNT_SID,
            auth_token=STUB_AUTH_TOKEN,
            from_number="+15555550199",
            base_url=stub.base_url,
            timeout=2.0,
        )
    )


def test_it_places_a_call_with_inline_twiml(
    twilio_stub: TwilioStub, make_message: MessageFactory
) -> None:
    message = make_message(kind="voice", reply_links={"gather": GATHER_URL})

    receipt = _transport(twilio_stub).notify(message)

    [request] = twilio_stub.requests
    assert request.resource == "Calls"
    assert request.form["To"] == message.address
    assert request.form["From"] == "+15555550199"
    assert request.form["StatusCallback"] == message.callback_url
    assert request.form["StatusCallbackEvent"] == "completed"  # the last of answered, completed
    assert request.form["Twiml"] == build_call_twiml(message.text, GATHER_URL)
    assert receipt.provider_reference == request.sid
    assert receipt.provider_reference.startswith("CA")
    assert receipt.status is ReceiptStatus.QUEUED
    assert twilio_stub.count_for(message.notification_id) == 1


def test_it_raises_permanent_error_for_invalid_number(
    twilio_stub: TwilioStub, make_message: MessageFactory
) -> None:
    twilio_stub.reject("+15005550001", code=21211)

    with pytest.raises(TransportError) as caught:
        _transport(twilio_stub).notify(make_message(kind="voice", address="+15005550001"))

    assert caught.value.permanent is True


def test_it_raises_transient_error_for_server_error(
    twilio_stub: TwilioStub, make_message: MessageFactory
) -> None:
    twilio_stub.script("503")

    with pytest.raises(TransportError) as caught:
        _transport(twilio_stub).notify(make_message(kind="voice"))

    assert caught.value.permanent is False


def test_call_twiml_gathers_one_digit_posting_to_the_gather_url() -> None:
    twiml = ET.fromstring(build_call_twiml("Event at <5 pm> & later", GATHER_URL))

    gathers = twiml.findall("Gather")
    assert len(gathers) == 2
    assert gathers[0].attrib == {
        "numDigits": "1",
        "action": GATHER_URL,
        "method": "POST",
        "timeout": "8",
    }
    spoken = [say.text for say in gathers[0].findall("Say")]
    assert spoken[0] == "Event at <5 pm> & later"
    assert "Press 1 to acknowledge" in spoken[1]
    assert "Press 2 to opt out" in spoken[1]
    assert twiml[-1].tag == "Hangup"


def test_call_twiml_only_reads_the_notice_without_a_gather_url() -> None:
    twiml = ET.fromstring(build_call_twiml("Event tomorrow", None))

    assert twiml.find("Gather") is None
    assert [say.text for say in twiml.findall("Say")] == ["Event tomorrow", "Event tomorrow"]


@pytest.mark.parametrize(
    ("digits", "outcome"),
    [
        ("1", "acknowledged"),
        ("2", "opted_out"),
        ("9", "invalid"),
        ("", "no_input"),
        (None, "no_input"),
    ],
)
def test_it_maps_digits_to_outcomes(digits: str | None, outcome: str) -> None:
    assert outcome_for_digit(digits) == outcome


def test_gather_response_confirms_the_outcome_and_hangs_up() -> None:
    twiml = ET.fromstring(build_gather_response_twiml("acknowledged"))

    assert "acknowledgement has been recorded" in twiml.find("Say").text
    assert twiml[-1].tag == "Hangup"


def test_gather_response_repeats_the_menu_after_an_invalid_digit() -> None:
    twiml = ET.fromstring(
        build_gather_response_twiml("invalid", text="Event tomorrow", gather_url=GATHER_URL)
    )

    gather = twiml.find("Gather")
    assert gather is not None
    assert gather.get("action") == GATHER_URL
    assert [say.text for say in gather.findall("Say")][1] == "Event tomorrow"


def test_gather_response_reveals_nothing_for_an_unknown_outcome() -> None:
    twiml = ET.fromstring(build_gather_response_twiml("something-else"))

    assert twiml.find("Say").text == "This notice can no longer be answered by phone. Goodbye."
