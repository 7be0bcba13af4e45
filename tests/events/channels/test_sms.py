"""SMS through the real twilio client against the loopback Twilio stub."""

from __future__ import annotations

import time

import pytest

from events.channels._twilio import BaseUrlHttpClient, TwilioSettings
from events.channels.base import ReceiptStatus, TransportError
from events.channels.sms import SmsTransport
from tests.stubs.fixtures import STUB_ACCOUNT_SID, STUB_AUTH_TOKEN
from tests.stubs.twilio import TwilioStub

from .conftest import MessageFactory

FROM_NUMBER = "+15555550199"


def _transport(stub: TwilioStub, *, token: str = STUB_AUTH_TOKEN, timeout: float = 2.0):
    return SmsTransport(
        TwilioSettings(
            account_sid=STUB_ACCOUNT_SID,
            auth_token=token,
            from_number=FROM_NUMBER,
            base_url=stub.base_url,
            timeout=timeout,
        )
    )


def test_it_sends_through_the_twilio_client_to_the_base_url(
    twilio_stub: TwilioStub, make_message: MessageFactory
) -> None:
    message = make_message()

    receipt = _transport(twilio_stub).notify(message)

    [request] = twilio_stub.requests
    assert request.resource == "Messages"
    assert request.account_sid == STUB_ACCOUNT_SID
    assert request.auth == (STUB_ACCOUNT_SID, STUB_AUTH_TOKEN)
    assert request.form == {
        "To": "+15555550100",
        "From": FROM_NUMBER,
        "Body": message.text,
        "StatusCallback": message.callback_url,
    }
    assert receipt.provider_reference == request.sid
    assert receipt.provider_reference.startswith("SM")
    assert receipt.status is ReceiptStatus.QUEUED


def test_it_counts_accepted_messages_per_notification_id(
    twilio_stub: TwilioStub, make_message: MessageFactory
) -> None:
    message = make_message()
    transport = _transport(twilio_stub)

    transport.notify(message)
    transport.notify(make_message())

    assert twilio_stub.count_for(message.notification_id) == 1
    assert sum(twilio_stub.accepted_counts.values()) == 2


def test_it_ignores_edge_and_region_from_the_environment(
    twilio_stub: TwilioStub, make_message: MessageFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")

    _transport(twilio_stub).notify(make_message())

    assert len(twilio_stub.accepted) == 1


def test_it_keeps_a_path_prefix_of_the_base_url() -> None:
    client = BaseUrlHttpClient("https://proxy.internal/twilio/", timeout=1.0)

    rewritten = client.rewrite("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json")

    assert rewritten == "https://proxy.internal/twilio/2010-04-01/Accounts/AC1/Messages.json"


def test_it_omits_status_callback_without_a_callback_url(
    twilio_stub: TwilioStub, make_message: MessageFactory
) -> None:
    _transport(twilio_stub).notify(make_message(callback_url=None))

    assert "StatusCallback" not in twilio_stub.requests[0].form


def test_it_raises_permanent_error_for_invalid_number(
    twilio_stub: TwilioStub, make_message: MessageFactory
) -> None:
    twilio_stub.reject("+15005550001", code=21211)

    with pytest.raises(TransportError) as caught:
        _transport(twilio_stub).notify(make_message(address="+15005550001"))

    assert caught.value.permanent is True
    assert caught.value.code == "21211"
    assert "invalid 'To' phone number" in caught.value.message
    assert twilio_stub.requests[0].outcome == "error:21211"


def test_it_raises_permanent_error_for_unsubscribed_recipient(
    twilio_stub: TwilioStub, make_message: MessageFactory
) -> None:
    twilio_stub.reject("+15555550123", code=21610)

    with pytest.raises(TransportError) as caught:
        _transport(twilio_stub).notify(make_message(address="+15555550123"))

    assert caught.value.permanent is True
    assert caught.value.code == "21610"


def test_it_raises_transient_error_for_server_error(
    twilio_stub: TwilioStub, make_message: MessageFactory
) -> None:
    twilio_stub.script("500")

    with pytest.raises(TransportError) as caught:
        _transport(twilio_stub).notify(make_message())

    assert caught.value.permanent is False
    assert caught.value.code == "20500"
    assert twilio_stub.accepted == []


def test_it_raises_transient_error_with_retry_after_for_rate_limit(
    twilio_stub: TwilioStub, make_message: MessageFactory
) -> None:
    twilio_stub.retry_after = "7"
    twilio_stub.script("429")

    with pytest.raises(TransportError) as caught:
        _transport(twilio_stub).notify(make_message())

    assert caught.value.permanent is False
    assert caught.value.retry_after == 7.0
    assert caught.value.code == "429"


def test_it_raises_transient_error_on_timeout(
    twilio_stub: TwilioStub, make_message: MessageFactory
) -> None:
    twilio_stub.script("timeout")
    started = time.monotonic()

    with pytest.raises(TransportError) as caught:
        _transport(twilio_stub, timeout=0.3).notify(make_message())

    assert caught.value.permanent is False
    assert "timed out" in caught.value.message
    assert time.monotonic() - started < 2.0


def test_it_raises_transient_error_when_the_answer_is_lost_after_acceptance(
    twilio_stub: TwilioStub, make_message: MessageFactory
) -> None:
    message = make_message()
    twilio_stub.script("accepted_timeout")

    with pytest.raises(TransportError) as caught:
        _transport(twilio_stub, timeout=0.3).notify(message)

    # The provider has it although the client saw a failure: why the task layer keys
    # redelivery on the notification, not on the transport's answer.
    assert caught.value.permanent is False
    assert twilio_stub.count_for(message.notification_id) == 1


def test_it_raises_transient_error_when_the_connection_drops(
    twilio_stub: TwilioStub, make_message: MessageFactory
) -> None:
    twilio_stub.script("reset")

    with pytest.raises(TransportError) as caught:
        _transport(twilio_stub).notify(make_message())

    assert caught.value.permanent is False


def test_it_raises_transient_error_when_nothing_listens(make_message: MessageFactory) -> None:
    stub = TwilioStub()
    stub.start()
    base_url = stub.base_url
    stub.stop()
    transport = SmsTransport(
        TwilioSettings(
            account_sid=STUB_ACCOUNT_SID,
            auth_token=STUB_AUTH_TOKEN,
            from_number=FROM_NUMBER,
            base_url=base_url,
            timeout=1.0,
        )
    )

    with pytest.raises(TransportError) as caught:
        transport.notify(make_message())

    assert caught.value.permanent is False


def test_it_treats_rejected_credentials_as_transient(
    twilio_stub: TwilioStub, make_message: MessageFactory
) -> None:
    with pytest.raises(TransportError) as caught:
        _transport(twilio_stub, token="wrong").notify(make_message())

    assert caught.value.permanent is False
    assert caught.value.code == "20003"


def test_it_refuses_to_build_without_credentials() -> None:
    with pytest.raises(ValueError, match="TWILIO_AUTH_TOKEN"):
        SmsTransport(TwilioSettings(account_sid="AC1", auth_token="", from_number="+1555"))


def test_it_reads_its_configuration_from_settings(settings, twilio_stub: TwilioStub) -> None:
    settings.TWILIO_ACCOUNT_SID = STUB_ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = STUB_AUTH_TOKEN
    settings.TWILIO_FROM_NUMBER = FROM_NUMBER
    settings.TWILIO_BASE_URL = twilio_stub.base_url

    transport = SmsTransport.from_settings()

    assert transport.config.base_url == twilio_stub.base_url
    assert transport.config.from_number == FROM_NUMBER
    assert transport.config.timeout > 0
