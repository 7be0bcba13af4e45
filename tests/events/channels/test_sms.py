"""SMS through the real twilio client against the loopback Twilio stub.

Every single-message case runs twice (the ``send`` fixture): through ``notify`` (the
client in synchronous mode) and as a batch of one through ``notify_many`` (the client in
asynchronous mode, on the process's event loop), since a send task uses the latter.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from events.channels._twilio import AsyncBaseUrlHttpClient, BaseUrlHttpClient, TwilioSettings
from events.channels.base import DeliveryReceipt, OutboundMessage, ReceiptStatus, TransportError
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


Send = Callable[[SmsTransport, OutboundMessage], DeliveryReceipt]


def _send_in_a_batch(transport: SmsTransport, message: OutboundMessage) -> DeliveryReceipt:
    [[(index, answer)]] = list(transport.notify_many([message], deadline=time.monotonic() + 30))
    assert index == 0
    if isinstance(answer, Exception):
        raise answer
    return answer


@pytest.fixture(params=["notify", "notify_many"])
def send(request: pytest.FixtureRequest) -> Send:
    """Send one message through ``notify`` or through ``notify_many`` (raising its error)."""
    if request.param == "notify":
        return lambda transport, message: transport.notify(message)
    return _send_in_a_batch


def test_it_sends_through_the_twilio_client_to_the_base_url(
    twilio_stub: TwilioStub, make_message: MessageFactory, send: Send
) -> None:
    message = make_message()

    receipt = send(_transport(twilio_stub), message)

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
    twilio_stub: TwilioStub, make_message: MessageFactory, send: Send
) -> None:
    message = make_message()
    transport = _transport(twilio_stub)

    send(transport, message)
    send(transport, make_message())

    assert twilio_stub.count_for(message.notification_id) == 1
    assert sum(twilio_stub.accepted_counts.values()) == 2


def test_it_ignores_edge_and_region_from_the_environment(
    twilio_stub: TwilioStub,
    make_message: MessageFactory,
    monkeypatch: pytest.MonkeyPatch,
    send: Send,
) -> None:
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")

    send(_transport(twilio_stub), make_message())

    assert len(twilio_stub.accepted) == 1


def test_it_keeps_a_path_prefix_of_the_base_url() -> None:
    client = BaseUrlHttpClient("https://proxy.internal/twilio/", timeout=1.0)

    rewritten = client.rewrite("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json")

    assert rewritten == "https://proxy.internal/twilio/2010-04-01/Accounts/AC1/Messages.json"


def test_it_omits_status_callback_without_a_callback_url(
    twilio_stub: TwilioStub, make_message: MessageFactory, send: Send
) -> None:
    send(_transport(twilio_stub), make_message(callback_url=None))

    assert "StatusCallback" not in twilio_stub.requests[0].form


def test_it_raises_permanent_error_for_invalid_number(
    twilio_stub: TwilioStub, make_message: MessageFactory, send: Send
) -> None:
    twilio_stub.reject("+15005550001", code=21211)

    with pytest.raises(TransportError) as caught:
        send(_transport(twilio_stub), make_message(address="+15005550001"))

    assert caught.value.permanent is True
    assert caught.value.code == "21211"
    assert "invalid 'To' phone number" in caught.value.message
    assert twilio_stub.requests[0].outcome == "error:21211"


def test_it_raises_permanent_error_for_unsubscribed_recipient(
    twilio_stub: TwilioStub, make_message: MessageFactory, send: Send
) -> None:
    twilio_stub.reject("+15555550123", code=21610)

    with pytest.raises(TransportError) as caught:
        send(_transport(twilio_stub), make_message(address="+15555550123"))

    assert caught.value.permanent is True
    assert caught.value.code == "21610"


def test_it_raises_transient_error_for_server_error(
    twilio_stub: TwilioStub, make_message: MessageFactory, send: Send
) -> None:
    twilio_stub.script("500")

    with pytest.raises(TransportError) as caught:
        send(_transport(twilio_stub), make_message())

    assert caught.value.permanent is False
    assert caught.value.code == "20500"
    assert twilio_stub.accepted == []


def test_it_raises_transient_error_with_retry_after_for_rate_limit(
    twilio_stub: TwilioStub, make_message: MessageFactory, send: Send
) -> None:
    twilio_stub.retry_after = "7"
    twilio_stub.script("429")

    with pytest.raises(TransportError) as caught:
        send(_transport(twilio_stub), make_message())

    assert caught.value.permanent is False
    assert caught.value.retry_after == 7.0
    assert caught.value.code == "429"


def test_it_raises_transient_error_on_timeout(
    twilio_stub: TwilioStub, make_message: MessageFactory, send: Send
) -> None:
    twilio_stub.script("timeout")
    started = time.monotonic()

    with pytest.raises(TransportError) as caught:
        send(_transport(twilio_stub, timeout=0.3), make_message())

    assert caught.value.permanent is False
    assert "timed out" in caught.value.message
    assert time.monotonic() - started < 2.0


def test_it_raises_transient_error_when_the_answer_is_lost_after_acceptance(
    twilio_stub: TwilioStub, make_message: MessageFactory, send: Send
) -> None:
    message = make_message()
    twilio_stub.script("accepted_timeout")

    with pytest.raises(TransportError) as caught:
        send(_transport(twilio_stub, timeout=0.3), message)

    # The provider has it although the client saw a failure: why the task layer keys
    # redelivery on the notification, not on the transport's answer.
    assert caught.value.permanent is False
    assert twilio_stub.count_for(message.notification_id) == 1


def test_it_raises_transient_error_when_the_connection_drops(
    twilio_stub: TwilioStub, make_message: MessageFactory, send: Send
) -> None:
    twilio_stub.script("reset")

    with pytest.raises(TransportError) as caught:
        send(_transport(twilio_stub), make_message())

    assert caught.value.permanent is False


def test_it_raises_transient_error_when_nothing_listens(
    make_message: MessageFactory, send: Send
) -> None:
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
        send(transport, make_message())

    assert caught.value.permanent is False


def test_it_treats_rejected_credentials_as_transient(
    twilio_stub: TwilioStub, make_message: MessageFactory, send: Send
) -> None:
    with pytest.raises(TransportError) as caught:
        send(_transport(twilio_stub, token="wrong"), make_message())

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


# --- a send task's batch: several requests in flight at once ---------------------------


def test_a_batch_answers_each_message_with_its_own_outcome(
    twilio_stub: TwilioStub, make_message: MessageFactory
) -> None:
    twilio_stub.reject("+15005550001", code=21211)
    messages = [make_message(address=f"+1555555{index:04d}") for index in range(24)]
    messages[5] = make_message(address="+15005550001")
    messages[17] = make_message(address="+15005550001")

    groups = list(_transport(twilio_stub).notify_many(messages, deadline=time.monotonic() + 30))

    answers = dict(answer for group in groups for answer in group)

    assert sorted(answers) == list(range(24))
    assert {index for index, answer in answers.items() if isinstance(answer, TransportError)} == {
        5,
        17,
    }
    assert answers[5].permanent is True and answers[5].code == "21211"
    accepted = {request.form["To"]: request.sid for request in twilio_stub.accepted}
    for index, message in enumerate(messages):
        if index not in (5, 17):
            assert answers[index].provider_reference == accepted[message.address]
            assert twilio_stub.count_for(message.notification_id) == 1
    assert len(twilio_stub.accepted) == 22


def test_a_batch_keeps_several_requests_in_flight(
    twilio_stub: TwilioStub, make_message: MessageFactory
) -> None:
    # The first request to arrive stalls until the client gives up. Sent one after the
    # other, nothing else could be answered before it; sent concurrently, the rest is.
    twilio_stub.script("timeout")
    messages = [make_message(address=f"+1555555{index:04d}") for index in range(6)]

    groups = list(
        _transport(twilio_stub, timeout=0.5).notify_many(messages, deadline=time.monotonic() + 30)
    )

    order = [
        (index, isinstance(answer, TransportError)) for group in groups for index, answer in group
    ]
    # The stalled message's error comes alone, after the others were yielded.
    assert groups[-1] == [(groups[-1][0][0], groups[-1][0][1])]

    assert [failed for _, failed in order] == [False] * 5 + [True]
    assert sorted(index for index, _ in order) == list(range(6))
    assert len(twilio_stub.accepted) == 5


def test_a_batch_starts_nothing_after_its_deadline(
    twilio_stub: TwilioStub, make_message: MessageFactory
) -> None:
    messages = [make_message(address=f"+1555555{index:04d}") for index in range(5)]

    groups = list(_transport(twilio_stub).notify_many(messages, deadline=time.monotonic() - 1))

    # The first message always goes (a batch makes progress); the rest is handed back.
    assert [index for group in groups for index, _ in group] == [0]
    assert [request.form["To"] for request in twilio_stub.requests] == [messages[0].address]


@pytest.mark.parametrize("no_proxy", ["", "127.0.0.1"])
def test_both_clients_take_the_proxy_from_the_environment_when_built(
    twilio_stub: TwilioStub,
    make_message: MessageFactory,
    send: Send,
    monkeypatch: pytest.MonkeyPatch,
    no_proxy: str,
) -> None:
    # A proxy that does not answer: a request through it fails; NO_PROXY bypasses it.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    transport = _transport(twilio_stub, timeout=1.0)
    # Read once, when built: a later change of the environment does not matter.
    monkeypatch.delenv("HTTP_PROXY")

    if no_proxy:
        assert send(transport, make_message()).provider_reference.startswith("SM")
    else:
        with pytest.raises(TransportError, match="unreachable"):
            send(transport, make_message())
        assert twilio_stub.requests == []


def test_the_async_client_rewrites_urls_like_the_sync_one() -> None:
    client = AsyncBaseUrlHttpClient("https://proxy.internal/twilio/", timeout=1.0)

    rewritten = client.rewrite("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json")

    assert rewritten == "https://proxy.internal/twilio/2010-04-01/Accounts/AC1/Messages.json"
