"""WCTP documents (validated against the 1.3 DTD) and the transport against the stub."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import requests
from lxml import etree

from events.channels.base import ReceiptStatus, TransportError
from events.channels.wctp import (
    WctpParseError,
    WctpSettings,
    WctpTransport,
    build_confirmation,
    build_submit_client_message,
    build_submit_request,
    is_permanent_failure,
    message_id_for,
    parse_confirmation,
    parse_inbound,
)
from tests.stubs.wctp import (
    WctpStub,
    client_response,
    confirmation,
    load_dtd,
    message_reply,
    parse_xml,
    status_info,
)

from .conftest import MessageFactory

PAGER_ID = "4045551234"
SENDER_ID = "dr-platform"


@pytest.fixture(scope="module")
def dtd() -> etree.DTD:
    return load_dtd()


def _assert_valid(document: bytes, dtd: etree.DTD) -> etree._Element:
    root = parse_xml(document)
    assert dtd.validate(root), dtd.error_log.filter_from_errors()
    return root


def _transport(**settings: object) -> WctpTransport:
    values: dict[str, object] = {"sender_id": SENDER_ID, "timeout": 2.0}
    values.update(settings)
    return WctpTransport(WctpSettings(**values))  # type: ignore[arg-type]


# --- documents ---------------------------------------------------------------------------


def test_submit_request_validates_and_asks_for_delivery_and_read_notices(
    make_message: MessageFactory, dtd: etree.DTD
) -> None:
    message = make_message(kind="pager_wctp", address=PAGER_ID)

    document = build_submit_request(
        message,
        sender_id=SENDER_ID,
        security_code="s3cret",
        submitted_at=dt.datetime(2025, 7, 1, 12, 0, tzinfo=dt.UTC),
    )

    root = _assert_valid(document, dtd)
    assert document.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE wctp-Operation')
    assert root.get("wctpVersion") == "wctp-dtd-v1r3"
    header = root.find("wctp-SubmitRequest/wctp-SubmitHeader")
    assert header.get("submitTimestamp") == "2025-07-01T12:00:00"
    assert [child.tag for child in header] == [
        "wctp-Originator",
        "wctp-MessageControl",
        "wctp-Recipient",
    ]
    assert header.find("wctp-Originator").attrib == {
        "senderID": SENDER_ID,
        "securityCode": "s3cret",
    }
    control = header.find("wctp-MessageControl").attrib
    assert control["messageID"] == message.notification_id.hex
    assert control["allowResponse"] == "true"
    assert control["notifyWhenDelivered"] == "true"
    assert control["notifyWhenRead"] == "true"
    assert header.find("wctp-Recipient").get("recipientID") == PAGER_ID
    assert root.find("wctp-SubmitRequest/wctp-Payload/wctp-Alphanumeric").text == message.text


def test_submit_request_with_multiple_choice_validates(
    make_message: MessageFactory, dtd: etree.DTD
) -> None:
    document = build_submit_request(
        make_message(address=PAGER_ID), sender_id=SENDER_ID, multiple_choice=True
    )

    root = _assert_valid(document, dtd)
    choices = root.findall("wctp-SubmitRequest/wctp-Payload/wctp-MCR/wctp-Choice")
    assert [choice.text for choice in choices] == ["Acknowledge", "Opt out"]


def test_submit_client_message_validates_and_carries_the_notification_id(
    make_message: MessageFactory, dtd: etree.DTD
) -> None:
    message = make_message(address=PAGER_ID)

    document = build_submit_client_message(
        message, sender_id=SENDER_ID, authorization_code="1234", send_responses_to="dr@x"
    )

    root = _assert_valid(document, dtd)
    header = root.find("wctp-SubmitClientMessage/wctp-SubmitClientHeader")
    assert header.find("wctp-ClientOriginator").get("miscInfo") == message.notification_id.hex
    assert header.find("wctp-ClientMessageControl").get("sendResponsesToID") == "dr@x"
    assert header.find("wctp-Recipient").get("authorizationCode") == "1234"


def test_it_strips_characters_xml_cannot_carry(
    make_message: MessageFactory, dtd: etree.DTD
) -> None:
    document = build_submit_request(
        make_message(address=PAGER_ID, text="Event\x00 at 5 <pm> & \x1bsoon"),
        sender_id=SENDER_ID,
    )

    root = _assert_valid(document, dtd)
    assert root.find(".//wctp-Alphanumeric").text == "Event at 5 <pm> & soon"


@pytest.mark.parametrize(("code", "element"), [(200, "wctp-Success"), (301, "wctp-Failure")])
def test_confirmation_validates(code: int, element: str, dtd: etree.DTD) -> None:
    root = _assert_valid(build_confirmation(code=code, text="x"), dtd)

    assert root.find(f"wctp-Confirmation/{element}") is not None


def test_stub_documents_validate(dtd: etree.DTD) -> None:
    # The stub's hand-written documents are what the parsing tests below rely on.
    for document in (
        confirmation(),
        confirmation(403, "Invalid recipientID"),
        client_response("TRK1"),
        status_info("ab" * 16),
        status_info("ab" * 16, error_code=503, error_text="Delivery failed"),
        message_reply("ab" * 16, "Acknowledge", mcr=True),
        message_reply("ab" * 16, "ok"),
    ):
        _assert_valid(document, dtd)


def test_it_parses_a_success_confirmation() -> None:
    result = parse_confirmation(confirmation(200, "Accepted"))

    assert (result.success, result.code, result.text) == (True, 200, "Accepted")


def test_it_parses_a_failure_confirmation_as_permanent_for_an_invalid_recipient() -> None:
    result = parse_confirmation(confirmation(403, "Invalid recipientID"))

    assert (result.success, result.code, result.permanent) == (False, 403, True)


def test_it_parses_a_client_response_tracking_number() -> None:
    result = parse_confirmation(client_response("TRK00000042"))

    assert result.success is True
    assert result.tracking_number == "TRK00000042"


@pytest.mark.parametrize(
    ("code", "permanent"),
    [(300, True), (302, True), (304, False), (401, True), (403, True), (408, True),
     (500, False), (505, False), (604, False)],
)  # fmt: skip
def test_it_classifies_wctp_error_codes_by_range(code: int, permanent: bool) -> None:
    assert is_permanent_failure(code) is permanent


@pytest.mark.parametrize("notice", ["QUEUED", "DELIVERED", "READ"])
def test_it_parses_status_notifications(notice: str) -> None:
    notification_id = uuid.uuid4()

    inbound = parse_inbound(status_info(message_id_for(notification_id), notice))

    assert inbound.kind == "status"
    assert inbound.status == notice.lower()
    assert inbound.notification_id == notification_id
    assert inbound.sender_id == PAGER_ID


def test_it_parses_a_status_failure() -> None:
    notification_id = uuid.uuid4()
    document = status_info(
        message_id_for(notification_id), error_code=503, error_text="Delivery failed"
    )

    inbound = parse_inbound(document)

    assert (inbound.kind, inbound.status, inbound.error_code) == ("status", "failed", 503)
    assert inbound.text == "Delivery failed"
    assert inbound.notification_id == notification_id


def test_it_parses_a_reply_to_our_message() -> None:
    notification_id = uuid.uuid4()

    inbound = parse_inbound(message_reply(message_id_for(notification_id), "Acknowledge", mcr=True))

    assert inbound.kind == "reply"
    assert inbound.text == "Acknowledge"
    assert inbound.notification_id == notification_id
    assert inbound.status is None


def test_it_parses_a_submit_request_from_a_pager(
    make_message: MessageFactory,
) -> None:
    # A two-way pager starting a message of its own: same shape as what we send.
    notification_id = uuid.uuid4()
    document = build_submit_request(
        make_message(address=SENDER_ID, text="2"), sender_id=PAGER_ID
    ).replace(
        b'allowResponse="true"',
        f'transactionID="{notification_id.hex}" allowResponse="true"'.encode(),
    )

    inbound = parse_inbound(document)

    assert (inbound.kind, inbound.text, inbound.sender_id) == ("reply", "2", PAGER_ID)
    assert inbound.notification_id == notification_id


def test_it_leaves_the_notification_unknown_for_a_foreign_message_id() -> None:
    inbound = parse_inbound(status_info("carrier-77", "DELIVERED"))

    assert inbound.message_id == "carrier-77"
    assert inbound.notification_id is None


@pytest.mark.parametrize(
    "document",
    [
        b"not xml",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]>'
        b"<wctp-Operation>&b;</wctp-Operation>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b"<wctp-Operation>&e;</wctp-Operation>",
        b'<wctp-Operation wctpVersion="wctp-dtd-v1r3"><wctp-VersionQuery inquirer="x"/>'
        b"</wctp-Operation>",
        b"<other/>",
    ],
)
def test_it_refuses_hostile_or_foreign_documents(document: bytes) -> None:
    with pytest.raises(WctpParseError):
        parse_inbound(document)


# --- the transport against the stub ------------------------------------------------------


def test_it_submits_a_valid_request_and_returns_our_message_id(
    wctp_stub: WctpStub, make_message: MessageFactory
) -> None:
    message = make_message(
        kind="pager_wctp", address=PAGER_ID, options={"endpoint": wctp_stub.endpoint}
    )

    receipt = _transport(security_code="s3cret", trusted_gateways=(wctp_stub.endpoint,)).notify(
        message
    )

    [request] = wctp_stub.requests
    assert request.valid is True
    assert request.operation == "wctp-SubmitRequest"
    assert (request.sender_id, request.recipient_id) == (SENDER_ID, PAGER_ID)
    assert request.message_id == message.notification_id.hex
    assert request.text == message.text
    assert receipt.provider_reference == message.notification_id.hex
    assert receipt.status is ReceiptStatus.QUEUED


def test_it_returns_the_tracking_number_for_the_client_form(
    wctp_stub: WctpStub, make_message: MessageFactory
) -> None:
    message = make_message(
        address=PAGER_ID, options={"endpoint": wctp_stub.endpoint, "form": "client_message"}
    )

    receipt = _transport(trusted_gateways=(wctp_stub.endpoint,)).notify(message)

    [request] = wctp_stub.requests
    assert request.valid is True
    assert request.operation == "wctp-SubmitClientMessage"
    assert receipt.provider_reference == "TRK00000001"


def test_it_uses_the_endpoint_from_settings_when_the_method_has_none(
    wctp_stub: WctpStub, make_message: MessageFactory
) -> None:
    _transport(endpoint=wctp_stub.endpoint).notify(make_message(address=PAGER_ID))

    assert len(wctp_stub.requests) == 1


def test_it_raises_permanent_error_for_unknown_pager_id(
    wctp_stub: WctpStub, make_message: MessageFactory
) -> None:
    wctp_stub.reject("0000000", code=403, text="Invalid recipientID")

    with pytest.raises(TransportError) as caught:
        _transport(endpoint=wctp_stub.endpoint).notify(make_message(address="0000000"))

    assert caught.value.permanent is True
    assert caught.value.code == "403"


@pytest.mark.parametrize("fault", ["wctp:604", "wctp:304", "500", "garbage"])
def test_it_raises_transient_error_for_gateway_trouble(
    wctp_stub: WctpStub, make_message: MessageFactory, fault: str
) -> None:
    wctp_stub.script(fault)

    with pytest.raises(TransportError) as caught:
        _transport(endpoint=wctp_stub.endpoint).notify(make_message(address=PAGER_ID))

    assert caught.value.permanent is False


def test_it_honours_retry_after_on_http_429(
    wctp_stub: WctpStub, make_message: MessageFactory
) -> None:
    wctp_stub.script("429")

    with pytest.raises(TransportError) as caught:
        _transport(endpoint=wctp_stub.endpoint).notify(make_message(address=PAGER_ID))

    assert (caught.value.permanent, caught.value.retry_after) == (False, 2.0)


def test_it_raises_transient_error_on_timeout(
    wctp_stub: WctpStub, make_message: MessageFactory
) -> None:
    wctp_stub.script("timeout")

    with pytest.raises(TransportError) as caught:
        _transport(endpoint=wctp_stub.endpoint, timeout=0.3).notify(make_message(address=PAGER_ID))

    assert caught.value.permanent is False


def test_it_raises_permanent_error_for_an_empty_pager_id(
    wctp_stub: WctpStub, make_message: MessageFactory
) -> None:
    with pytest.raises(TransportError) as caught:
        _transport(endpoint=wctp_stub.endpoint).notify(make_message(address="  "))

    assert caught.value.permanent is True
    assert wctp_stub.requests == []


def test_stub_refuses_a_document_that_breaks_the_dtd(wctp_stub: WctpStub) -> None:
    # Guards the validation above: an element the DTD does not allow must not pass.
    document = confirmation().replace(b"<wctp-Confirmation>", b"<wctp-Confirmation><wctp-Bogus/>")

    response = requests.post(wctp_stub.endpoint, data=document, timeout=2)

    result = parse_confirmation(response.content)
    assert (result.success, result.code, result.permanent) == (False, 302, True)
    assert wctp_stub.requests[0].valid is False


def test_it_never_sends_the_platforms_credentials_to_an_untrusted_endpoint(
    wctp_stub: WctpStub, make_message: MessageFactory
) -> None:
    message = make_message(address=PAGER_ID, options={"endpoint": wctp_stub.endpoint})
    transport = _transport(
        endpoint="https://wctp.carrier.example/wctp",
        security_code="PLATFORM-SECRET",
        trusted_gateways=("https://wctp.other-carrier.example/wctp",),
    )

    with pytest.raises(
        TransportError, match="not one of the platform's trusted gateways"
    ) as caught:
        transport.notify(message)

    assert caught.value.permanent is True
    assert wctp_stub.requests == []
