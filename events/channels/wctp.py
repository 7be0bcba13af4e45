"""Pagers through WCTP 1.3 (Wireless Communication Transfer Protocol): XML over HTTP POST.

Outbound we send ``wctp-SubmitRequest`` (the enterprise form, with our notification id as
``messageID`` so status and replies can find it) or, for carriers that only offer the
client form, ``wctp-SubmitClientMessage`` (the carrier returns a tracking number). Element
and attribute names and order follow ``wctp-dtd-v1r3.dtd``; the tests validate every
document built here against that DTD.

Inbound the carrier posts ``wctp-StatusInfo`` (queued, delivered, read or a failure) and
replies from two-way pagers (``wctp-MessageReply`` referring to our ``messageID``, or a
fresh ``wctp-SubmitRequest`` from the pager); :func:`parse_inbound` reads both and
:func:`build_confirmation` builds the ``wctp-Confirmation`` we answer with.

Parsing uses ``defusedxml`` (no entity expansion, no external references): these documents
come from the network.

Result codes (WCTP 1.3 code table, http://www.wctp.info/wctp-technical.htm):

* 200-299 success.
* 300-399 protocol violations (operation not supported, unparseable, invalid XML, version):
  the same document would be refused again, so permanent -- except 304 "cannot accept
  operation until messages are polled", which clears by itself.
* 400-499 content errors (invalid senderID, security code, recipientID, authorization
  code, dates): permanent for this message and address.
* 500-599 message processing errors and 600 and above (service / vendor errors): the
  carrier accepted the document but could not process it now -- transient.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
import xml.etree.ElementTree as ET  # noqa: S405 -- used to build documents, never to parse
from dataclasses import dataclass
from typing import Final, Literal, Self
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
import requests
from defusedxml import DefusedXmlException

from dr_platform import outbound

from .base import (
    DeliveryReceipt,
    OutboundMessage,
    ReceiptStatus,
    Transport,
    TransportError,
    http_status_is_transient,
    parse_retry_after,
)

WCTP_VERSION: Final = "wctp-dtd-v1r3"
DOCTYPE: Final = '<!DOCTYPE wctp-Operation SYSTEM "http://dtd.wctp.org/wctp-dtd-v1r3.dtd">'

#: Multiple-choice answers offered on two-way pagers when the method asks for MCR, and the
#: outcome each one means.
MCR_CHOICES: Final[dict[str, str]] = {"Acknowledge": "acknowledged", "Opt out": "opted_out"}

# XML 1.0 forbids most C0 control characters even as character references.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

MAX_RESPONSE_BYTES: Final = 64 * 1024


class WctpParseError(ValueError):
    """A document that is not well-formed WCTP (or is not XML at all)."""


# --- building documents ------------------------------------------------------------------


def message_id_for(notification_id: uuid.UUID) -> str:
    """Our WCTP ``messageID`` for a notification: the UUID as 32 hex digits.

    WCTP gateways commonly limit ``messageID`` to 32 characters, so the dashes go.
    """
    return notification_id.hex


def notification_id_from(message_id: str | None) -> uuid.UUID | None:
    """The notification id inside a ``messageID`` we issued, or ``None`` if it is not ours."""
    if not message_id:
        return None
    try:
        return uuid.UUID(message_id.strip())
    except ValueError:
        return None


def _clean(text: str) -> str:
    return _XML_INVALID.sub("", text)


def _operation() -> Element:
    return Element("wctp-Operation", {"wctpVersion": WCTP_VERSION})


def _serialize(root: Element) -> bytes:
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{DOCTYPE}\n{body}\n'.encode()


def _timestamp(moment: dt.datetime | None) -> str:
    # WCTP timestamps are "YYYY-MM-DDTHH:MM:SS" in UTC, without an offset.
    moment = moment or dt.datetime.now(dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _payload(parent: Element, text: str, *, multiple_choice: bool) -> None:
    payload = ET.SubElement(parent, "wctp-Payload")
    if multiple_choice:
        mcr = ET.SubElement(payload, "wctp-MCR")
        ET.SubElement(mcr, "wctp-MessageText").text = _clean(text)
        for choice in MCR_CHOICES:
            ET.SubElement(mcr, "wctp-Choice").text = choice
    else:
        ET.SubElement(payload, "wctp-Alphanumeric").text = _clean(text)


def build_submit_request(
    message: OutboundMessage,
    *,
    sender_id: str,
    security_code: str | None = None,
    authorization_code: str | None = None,
    send_responses_to: str | None = None,
    multiple_choice: bool = False,
    submitted_at: dt.datetime | None = None,
) -> bytes:
    """A ``wctp-SubmitRequest`` for ``message``, as UTF-8 bytes with the DOCTYPE.

    ``messageID`` is :func:`message_id_for` the notification id; the message control asks
    for delivery and read notifications and allows a response. ``multiple_choice`` sends a
    ``wctp-MCR`` payload with the :data:`MCR_CHOICES` instead of plain alphanumeric text.
    """
    root = _operation()
    submit = ET.SubElement(root, "wctp-SubmitRequest")
    header = ET.SubElement(
        submit, "wctp-SubmitHeader", {"submitTimestamp": _timestamp(submitted_at)}
    )
    originator = {"senderID": _clean(sender_id)}
    if security_code:
        originator["securityCode"] = _clean(security_code)
    ET.SubElement(header, "wctp-Originator", originator)
    control = {"messageID": message_id_for(message.notification_id)}
    if send_responses_to:
        control["sendResponsesToID"] = _clean(send_responses_to)
    control.update(allowResponse="true", notifyWhenDelivered="true", notifyWhenRead="true")
    ET.SubElement(header, "wctp-MessageControl", control)
    recipient = {"recipientID": _clean(message.address.strip())}
    if authorization_code:
        recipient["authorizationCode"] = _clean(authorization_code)
    ET.SubElement(header, "wctp-Recipient", recipient)
    _payload(submit, message.text, multiple_choice=multiple_choice)
    return _serialize(root)


def build_submit_client_message(
    message: OutboundMessage,
    *,
    sender_id: str,
    authorization_code: str | None = None,
    send_responses_to: str | None = None,
    multiple_choice: bool = False,
    submitted_at: dt.datetime | None = None,
) -> bytes:
    """A ``wctp-SubmitClientMessage`` for ``message``, as UTF-8 bytes with the DOCTYPE.

    The client form has no ``messageID``; the notification id travels in the originator's
    ``miscInfo`` and the carrier's ``trackingNumber`` becomes the provider reference.
    """
    root = _operation()
    submit = ET.SubElement(root, "wctp-SubmitClientMessage")
    header = ET.SubElement(
        submit, "wctp-SubmitClientHeader", {"submitTimestamp": _timestamp(submitted_at)}
    )
    ET.SubElement(
        header,
        "wctp-ClientOriginator",
        {"senderID": _clean(sender_id), "miscInfo": message_id_for(message.notification_id)},
    )
    control: dict[str, str] = {}
    if send_responses_to:
        control["sendResponsesToID"] = _clean(send_responses_to)
    control.update(allowResponse="true", notifyWhenDelivered="true", notifyWhenRead="true")
    ET.SubElement(header, "wctp-ClientMessageControl", control)
    recipient = {"recipientID": _clean(message.address.strip())}
    if authorization_code:
        recipient["authorizationCode"] = _clean(authorization_code)
    ET.SubElement(header, "wctp-Recipient", recipient)
    _payload(submit, message.text, multiple_choice=multiple_choice)
    return _serialize(root)


def build_confirmation(*, code: int = 200, text: str = "Accepted") -> bytes:
    """The ``wctp-Confirmation`` we answer an inbound post with, as UTF-8 bytes.

    A code from 200 to 299 builds ``wctp-Success``; any other code builds ``wctp-Failure``
    (use 301 for unparseable input, 403 for an unknown recipient).
    """
    root = _operation()
    confirmation = ET.SubElement(root, "wctp-Confirmation")
    if 200 <= code < 300:
        ET.SubElement(
            confirmation, "wctp-Success", {"successCode": str(code), "successText": _clean(text)}
        )
    else:
        ET.SubElement(
            confirmation, "wctp-Failure", {"errorCode": str(code), "errorText": _clean(text)}
        )
    return _serialize(root)


# --- reading documents -------------------------------------------------------------------


def _parse(xml_bytes: bytes) -> Element:
    try:
        root = SafeET.fromstring(xml_bytes)
    except (ET.ParseError, DefusedXmlException) as exc:
        raise WctpParseError(f"not acceptable XML: {exc}") from exc
    if root.tag != "wctp-Operation":
        raise WctpParseError(f"expected wctp-Operation, got {root.tag}")
    return root


def _code(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError as exc:
        raise WctpParseError(f"result code {value!r} is not a number") from exc


def is_permanent_failure(code: int) -> bool:
    """Whether a WCTP error code means the message can never be delivered as sent.

    3xx protocol violations (except 304) and 4xx content errors are permanent; 5xx
    message-processing and 6xx+ service errors are transient (see the module docstring).
    """
    if code == 304:
        return False
    return 300 <= code < 500


@dataclass(frozen=True, slots=True)
class WctpResult:
    """The carrier's answer to a submit: ``wctp-Confirmation`` or ``wctp-SubmitClientResponse``.

    ``tracking_number`` is set only for a client-form success.
    """

    success: bool
    code: int
    text: str
    tracking_number: str | None = None

    @property
    def permanent(self) -> bool:
        """For a failure, whether it is permanent (:func:`is_permanent_failure`)."""
        return not self.success and is_permanent_failure(self.code)


def parse_confirmation(xml_bytes: bytes) -> WctpResult:
    """Read the carrier's answer to a submit.

    Returns a :class:`WctpResult`. Raises :class:`WctpParseError` when the body is not a
    ``wctp-Confirmation`` or ``wctp-SubmitClientResponse`` with a success or failure.
    """
    root = _parse(xml_bytes)
    answer = root.find("wctp-Confirmation")
    if answer is None:
        answer = root.find("wctp-SubmitClientResponse")
    if answer is None:
        raise WctpParseError("no wctp-Confirmation or wctp-SubmitClientResponse")
    success = answer.find("wctp-Success")
    if success is None:
        success = answer.find("wctp-ClientSuccess")
    if success is not None:
        return WctpResult(
            success=True,
            code=_code(success.get("successCode")),
            text=success.get("successText") or (success.text or "").strip(),
            tracking_number=success.get("trackingNumber"),
        )
    failure = answer.find("wctp-Failure")
    if failure is None:
        raise WctpParseError("confirmation holds neither success nor failure")
    return WctpResult(
        success=False,
        code=_code(failure.get("errorCode")),
        text=failure.get("errorText") or (failure.text or "").strip(),
    )


InboundKind = Literal["status", "reply"]


@dataclass(frozen=True, slots=True)
class InboundWctp:
    """A status notice or a pager reply posted to us by the carrier.

    ``kind`` is ``"status"`` or ``"reply"``. ``message_id`` is the id of the message this
    refers to (our ``messageID`` for statuses and ``wctp-MessageReply``, the pager's own id
    for a fresh ``wctp-SubmitRequest``); ``notification_id`` is the notification inside it,
    or ``None`` when the document does not reference one of ours -- the caller then matches
    on ``sender_id`` (the pager id) or ignores it. ``status`` is ``"queued"``,
    ``"delivered"``, ``"read"`` or ``"failed"`` for statuses and ``None`` for replies;
    ``text`` is the reply text (the chosen MCR choice for multiple-choice replies) or the
    failure text.
    """

    kind: InboundKind
    message_id: str | None
    notification_id: uuid.UUID | None
    sender_id: str
    recipient_id: str
    status: str | None = None
    text: str = ""
    error_code: int | None = None


def _header_parties(header: Element) -> tuple[str, str]:
    originator = header.find("wctp-Originator")
    recipient = header.find("wctp-Recipient")
    return (
        originator.get("senderID", "") if originator is not None else "",
        recipient.get("recipientID", "") if recipient is not None else "",
    )


def _payload_text(container: Element) -> str:
    payload = container.find("wctp-Payload")
    if payload is None:
        return ""
    for path in (
        "wctp-Alphanumeric",
        "wctp-MCR/wctp-MessageText",
        "wctp-MCR/wctp-Choice",
        "wctp-MCR/wctp-ChoicePair/wctp-SendChoice",
        "wctp-TransparentData",
    ):
        node = payload.find(path)
        if node is not None:
            return (node.text or "").strip()
    return ""


def parse_inbound(xml_bytes: bytes) -> InboundWctp:
    """Read a ``wctp-StatusInfo``, ``wctp-MessageReply`` or ``wctp-SubmitRequest`` post.

    Returns an :class:`InboundWctp`. Raises :class:`WctpParseError` for anything else
    (answer it with ``build_confirmation(code=300 or 301)``).
    """
    root = _parse(xml_bytes)
    status_info = root.find("wctp-StatusInfo")
    if status_info is not None:
        header = status_info.find("wctp-ResponseHeader")
        if header is None:
            raise WctpParseError("wctp-StatusInfo without wctp-ResponseHeader")
        sender_id, recipient_id = _header_parties(header)
        message_id = header.get("responseToMessageID")
        notice = status_info.find("wctp-Notification")
        failure = status_info.find("wctp-Failure")
        if notice is not None:
            status = (notice.get("type") or "").lower()
            if status not in ("queued", "delivered", "read"):
                raise WctpParseError(f"unknown notification type {notice.get('type')!r}")
            return InboundWctp(
                kind="status",
                message_id=message_id,
                notification_id=notification_id_from(message_id),
                sender_id=sender_id,
                recipient_id=recipient_id,
                status=status,
            )
        if failure is not None:
            return InboundWctp(
                kind="status",
                message_id=message_id,
                notification_id=notification_id_from(message_id),
                sender_id=sender_id,
                recipient_id=recipient_id,
                status="failed",
                text=failure.get("errorText") or (failure.text or "").strip(),
                error_code=_code(failure.get("errorCode")),
            )
        raise WctpParseError("wctp-StatusInfo holds neither notification nor failure")

    reply = root.find("wctp-MessageReply")
    if reply is not None:
        header = reply.find("wctp-ResponseHeader")
        if header is None:
            raise WctpParseError("wctp-MessageReply without wctp-ResponseHeader")
        sender_id, recipient_id = _header_parties(header)
        message_id = header.get("responseToMessageID")
        return InboundWctp(
            kind="reply",
            message_id=message_id,
            notification_id=notification_id_from(message_id),
            sender_id=sender_id,
            recipient_id=recipient_id,
            text=_payload_text(reply),
        )

    submit = root.find("wctp-SubmitRequest")
    if submit is not None:
        header = submit.find("wctp-SubmitHeader")
        if header is None:
            raise WctpParseError("wctp-SubmitRequest without wctp-SubmitHeader")
        sender_id, recipient_id = _header_parties(header)
        control = header.find("wctp-MessageControl")
        message_id = control.get("messageID") if control is not None else None
        # A pager starting a new message cannot know our messageID; some gateways copy it
        # into transactionID, which is the only link back to a notification.
        transaction_id = control.get("transactionID") if control is not None else None
        return InboundWctp(
            kind="reply",
            message_id=message_id,
            notification_id=notification_id_from(transaction_id),
            sender_id=sender_id,
            recipient_id=recipient_id,
            text=_payload_text(submit),
        )
    raise WctpParseError("not a status notice or a reply")


# --- the transport -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WctpSettings:
    """Defaults for WCTP methods; a method's ``options`` override them per message.

    ``timeout`` is in seconds. ``security_code`` is a secret and comes from the environment.
    """

    endpoint: str = ""
    sender_id: str = ""
    security_code: str = ""
    send_responses_to: str = ""
    timeout: float = 10.0
    #: Gateways a method may name besides ``endpoint``; the platform's credentials go to
    #: no other URL.
    trusted_gateways: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls) -> WctpSettings:
        """Read ``WCTP_ENDPOINT``, ``WCTP_SENDER_ID``, ``WCTP_SECURITY_CODE``,
        ``WCTP_SEND_RESPONSES_TO``, ``WCTP_TIMEOUT`` and ``WCTP_TRUSTED_GATEWAYS`` from
        Django settings."""
        from django.conf import settings

        return cls(
            endpoint=getattr(settings, "WCTP_ENDPOINT", ""),
            sender_id=getattr(settings, "WCTP_SENDER_ID", ""),
            security_code=getattr(settings, "WCTP_SECURITY_CODE", ""),
            send_responses_to=getattr(settings, "WCTP_SEND_RESPONSES_TO", ""),
            timeout=float(getattr(settings, "WCTP_TIMEOUT", 10)),
            trusted_gateways=tuple(outbound.trusted_wctp_gateways()),
        )


class WctpTransport(Transport):
    """POST a WCTP submit to the carrier's endpoint and read its confirmation.

    Per-method ``options``: ``endpoint`` (http(s) URL: the settings' endpoint or one of its
    trusted gateways), ``sender_id``, ``security_code``,
    ``authorization_code``, ``form`` (``"submit_request"``, the default, or
    ``"client_message"``) and ``multiple_choice`` (``"true"`` for MCR pagers).
    """

    kind = "pager_wctp"

    def __init__(self, config: WctpSettings, session: requests.Session | None = None) -> None:
        self.config = config
        self.session = session or requests.Session()

    @classmethod
    def from_settings(cls) -> Self:
        """The transport configured by the ``WCTP_*`` settings."""
        return cls(WctpSettings.from_settings())

    def build_document(self, message: OutboundMessage) -> bytes:
        """The submit document this transport would post for ``message``."""
        options = message.options
        sender_id = options.get("sender_id") or self.config.sender_id
        if not sender_id:
            raise TransportError("WCTP sender id is not configured", permanent=False)
        multiple_choice = options.get("multiple_choice", "").lower() == "true"
        send_responses_to = options.get("send_responses_to") or self.config.send_responses_to
        if options.get("form") == "client_message":
            return build_submit_client_message(
                message,
                sender_id=sender_id,
                authorization_code=options.get("authorization_code"),
                send_responses_to=send_responses_to,
                multiple_choice=multiple_choice,
            )
        return build_submit_request(
            message,
            sender_id=sender_id,
            security_code=options.get("security_code") or self.config.security_code,
            authorization_code=options.get("authorization_code"),
            send_responses_to=send_responses_to,
            multiple_choice=multiple_choice,
        )

    def notify(self, message: OutboundMessage) -> DeliveryReceipt:
        """Submit one page.

        Returns a ``QUEUED`` receipt whose reference is our ``messageID`` (or the carrier's
        tracking number for the client form); delivery and read notices arrive later as
        ``wctp-StatusInfo``.

        Raises ``TransportError``: permanent for an empty pager id, a non-http(s)
        endpoint, an endpoint that is neither ``endpoint`` nor one of the
        ``trusted_gateways`` (nothing is sent to it), WCTP 3xx (except 304) and 4xx codes
        (403 invalid recipientID ...) and HTTP 4xx other than 408/429; transient for a
        missing endpoint or sender id (configuration), timeouts, connection errors, HTTP
        5xx/408/429 (429 with ``retry_after``), unreadable answers and WCTP 5xx/6xx codes.
        """
        endpoint = message.options.get("endpoint") or self.config.endpoint
        if not endpoint:
            raise TransportError("no WCTP endpoint configured", permanent=False)
        if urlsplit(endpoint).scheme not in ("http", "https"):
            raise TransportError(
                f"WCTP endpoint {endpoint!r} is not an http(s) URL", permanent=True
            )
        if not outbound.is_trusted_gateway(
            endpoint, (self.config.endpoint, *self.config.trusted_gateways)
        ):
            # The document carries the platform's senderID and securityCode: a method
            # saved before the gateway list existed must not carry them elsewhere.
            raise TransportError(
                f"WCTP endpoint {endpoint!r} is not one of the platform's trusted gateways",
                permanent=True,
            )
        if not message.address.strip():
            raise TransportError("empty pager id", permanent=True)
        document = self.build_document(message)
        try:
            response = self.session.post(
                endpoint,
                data=document,
                headers={"Content-Type": "text/xml; charset=utf-8"},
                timeout=self.config.timeout,
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            raise TransportError(f"WCTP request timed out: {exc}") from exc
        except requests.RequestException as exc:
            raise TransportError(f"WCTP endpoint unreachable: {exc}") from exc
        if response.status_code >= 300:
            raise TransportError(
                f"WCTP endpoint answered HTTP {response.status_code}",
                permanent=not http_status_is_transient(response.status_code),
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                code=str(response.status_code),
            )
        try:
            result = parse_confirmation(response.content[:MAX_RESPONSE_BYTES])
        except WctpParseError as exc:
            # Often a proxy's error page in front of the gateway: worth another try.
            raise TransportError(f"unreadable WCTP answer: {exc}") from exc
        if not result.success:
            raise TransportError(
                f"WCTP error {result.code}: {result.text}",
                permanent=result.permanent,
                code=str(result.code),
            )
        reference = result.tracking_number or message_id_for(message.notification_id)
        return DeliveryReceipt(
            provider_reference=reference,
            status=ReceiptStatus.QUEUED,
            detail=f"wctp {result.code} {result.text}".strip(),
        )
