"""A WCTP 1.3 gateway stub: accepts ``wctp-SubmitRequest`` / ``wctp-SubmitClientMessage``.

It validates each request against the WCTP DTD (answering ``302`` "XML validation error"
like a strict gateway when it does not validate), records it, and answers
``wctp-Confirmation`` (or ``wctp-SubmitClientResponse`` with a tracking number).

It can simulate: recipients the carrier refuses with a WCTP error code
(``reject("4045551234", code=403)``), a WCTP failure for the next requests
(``script("wctp:604")``), HTTP faults (``script("500", "429", "timeout", "garbage")``).

The answers are written out literally here rather than built with the platform's own
WCTP module, so a mistake there cannot hide in both sides.

``status_info`` and ``message_reply`` build the documents a carrier posts back, for tests
of inbound handling.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from xml.sax.saxutils import quoteattr

from lxml import etree

from ._http import FaultPlan, QuietHandler, ThreadedStub

#: A copy of the published WCTP 1.3 DTD (http://dtd.wctp.org/wctp-dtd-v1r3.dtd), kept beside
#: the stub so validation needs no network.
DTD_PATH: Final = Path(__file__).with_name("wctp-dtd-v1r3.dtd")
_HEAD: Final = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<!DOCTYPE wctp-Operation SYSTEM "http://dtd.wctp.org/wctp-dtd-v1r3.dtd">\n'
    '<wctp-Operation wctpVersion="wctp-dtd-v1r3">'
)
_TAIL: Final = "</wctp-Operation>\n"


def load_dtd(path: Path = DTD_PATH) -> etree.DTD:
    """The WCTP 1.3 DTD as an lxml validator."""
    with path.open("rb") as handle:
        return etree.DTD(handle)


def parse_xml(document: bytes) -> etree._Element:
    """Parse without entities, network access or DTD loading."""
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    return etree.fromstring(document, parser)


def confirmation(code: int = 200, text: str = "Accepted") -> bytes:
    """A ``wctp-Confirmation``: success for 2xx codes, failure otherwise."""
    if 200 <= code < 300:
        inner = f"<wctp-Success successCode={quoteattr(str(code))} successText={quoteattr(text)}/>"
    else:
        inner = f"<wctp-Failure errorCode={quoteattr(str(code))} errorText={quoteattr(text)}/>"
    return f"{_HEAD}<wctp-Confirmation>{inner}</wctp-Confirmation>{_TAIL}".encode()


def client_response(tracking_number: str, code: int = 200, text: str = "Accepted") -> bytes:
    """A ``wctp-SubmitClientResponse``: ``wctp-ClientSuccess`` or ``wctp-Failure``."""
    if 200 <= code < 300:
        inner = (
            f"<wctp-ClientSuccess successCode={quoteattr(str(code))} "
            f"successText={quoteattr(text)} trackingNumber={quoteattr(tracking_number)}/>"
        )
    else:
        inner = f"<wctp-Failure errorCode={quoteattr(str(code))} errorText={quoteattr(text)}/>"
    return f"{_HEAD}<wctp-SubmitClientResponse>{inner}</wctp-SubmitClientResponse>{_TAIL}".encode()


def _response_header(message_id: str, sender_id: str, recipient_id: str) -> str:
    return (
        f"<wctp-ResponseHeader responseToMessageID={quoteattr(message_id)} "
        'responseTimestamp="2025-07-01T17:00:05">'
        f"<wctp-Originator senderID={quoteattr(sender_id)}/>"
        '<wctp-MessageControl messageID="carrier-1"/>'
        f"<wctp-Recipient recipientID={quoteattr(recipient_id)}/>"
        "</wctp-ResponseHeader>"
    )


def status_info(
    message_id: str,
    notice: str = "DELIVERED",
    *,
    pager_id: str = "4045551234",
    our_sender_id: str = "dr-platform",
    error_code: int | None = None,
    error_text: str = "",
) -> bytes:
    """A ``wctp-StatusInfo`` about our ``message_id``: a notification or, with
    ``error_code``, a failure."""
    body = (
        f"<wctp-Failure errorCode={quoteattr(str(error_code))} errorText={quoteattr(error_text)}/>"
        if error_code is not None
        else f"<wctp-Notification type={quoteattr(notice)}/>"
    )
    return (
        f"{_HEAD}<wctp-StatusInfo>{_response_header(message_id, pager_id, our_sender_id)}"
        f"{body}</wctp-StatusInfo>{_TAIL}"
    ).encode()


def message_reply(
    message_id: str,
    text: str,
    *,
    pager_id: str = "4045551234",
    our_sender_id: str = "dr-platform",
    mcr: bool = False,
) -> bytes:
    """A ``wctp-MessageReply`` from a pager to our ``message_id``."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;")
    payload = (
        f"<wctp-MCR><wctp-MessageText>{escaped}</wctp-MessageText>"
        f"<wctp-Choice>{escaped}</wctp-Choice></wctp-MCR>"
        if mcr
        else f"<wctp-Alphanumeric>{escaped}</wctp-Alphanumeric>"
    )
    return (
        f'{_HEAD}<wctp-MessageReply MCRMessageReply="{"true" if mcr else "false"}">'
        f"{_response_header(message_id, pager_id, our_sender_id)}"
        f"<wctp-Payload>{payload}</wctp-Payload></wctp-MessageReply>{_TAIL}"
    ).encode()


@dataclass(frozen=True, slots=True)
class WctpRequest:
    """One submit as the stub received it."""

    body: bytes
    operation: str  # "wctp-SubmitRequest", "wctp-SubmitClientMessage", or "" if unreadable
    valid: bool  # validates against the DTD
    sender_id: str
    recipient_id: str
    message_id: str  # messageID (SubmitRequest) or the originator's miscInfo (client form)
    text: str
    attributes: dict[str, str]  # the message control's attributes
    outcome: str


class _Handler(QuietHandler):
    def do_POST(self) -> None:
        stub: WctpStub = self.server.stub
        body = self.read_body()
        fault = stub.faults.next()
        if fault == "timeout":
            stub._record(body, fault)
            stub.released.wait(stub.stall_seconds)
            self.drop()
            return
        if fault in ("500", "503", "429"):
            stub._record(body, fault)
            self.respond(int(fault), b"unavailable", "text/plain", {"Retry-After": "2"})
            return
        if fault == "garbage":
            stub._record(body, fault)
            self.respond(200, b"<html>proxy error</html>", "text/html")
            return
        request = stub._record(body, fault or "answered")
        code, text = 200, "Accepted"
        if fault and fault.startswith("wctp:"):
            code, text = int(fault[5:]), "Internal Server Error"
        elif not request.valid:
            code, text = 302, "XML validation error"
        elif request.recipient_id in stub.rejections:
            code, text = stub.rejections[request.recipient_id]
        if request.operation == "wctp-SubmitClientMessage":
            answer = client_response(stub.next_tracking_number(), code, text)
        else:
            answer = confirmation(code, text)
        self.respond(200, answer, "text/xml; charset=utf-8")


class WctpStub(ThreadedStub):
    """The WCTP stub; post to ``endpoint``."""

    handler = _Handler

    def __init__(self, *, stall_seconds: float = 5.0) -> None:
        super().__init__()
        self.stall_seconds = stall_seconds
        self.faults = FaultPlan()
        self.rejections: dict[str, tuple[int, str]] = {}
        self.dtd = load_dtd()
        self._lock = threading.Lock()
        self._tracking = itertools.count(1)
        self._requests: list[WctpRequest] = []

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/wctp"

    def reject(
        self, recipient_id: str, *, code: int = 403, text: str = "Invalid recipientID"
    ) -> None:
        """Answer submits to ``recipient_id`` with WCTP failure ``code``."""
        self.rejections[recipient_id] = (code, text)

    def script(self, *faults: str) -> None:
        """Answer the next requests with these faults (``"wctp:604"`` is a WCTP failure)."""
        self.faults.script(faults)

    def next_tracking_number(self) -> str:
        return f"TRK{next(self._tracking):08d}"

    @property
    def requests(self) -> list[WctpRequest]:
        with self._lock:
            return list(self._requests)

    def _record(self, body: bytes, outcome: str) -> WctpRequest:
        request = self._read(body, outcome)
        with self._lock:
            self._requests.append(request)
        return request

    def _read(self, body: bytes, outcome: str) -> WctpRequest:
        try:
            root = parse_xml(body)
        except etree.XMLSyntaxError:
            return WctpRequest(body, "", False, "", "", "", "", {}, outcome)
        with self._lock:  # lxml DTD objects are not safe to share between threads
            valid = self.dtd.validate(root)
        operation = root[0].tag if len(root) else ""
        originator = root.find(".//wctp-Originator")
        if originator is None:
            originator = root.find(".//wctp-ClientOriginator")
        control = root.find(".//wctp-MessageControl")
        if control is None:
            control = root.find(".//wctp-ClientMessageControl")
        recipient = root.find(".//wctp-Recipient")
        text_node = root.find(".//wctp-Alphanumeric")
        if text_node is None:
            text_node = root.find(".//wctp-MessageText")
        attributes = dict(control.attrib) if control is not None else {}
        if operation == "wctp-SubmitClientMessage" and originator is not None:
            message_id = originator.get("miscInfo", "")
        else:
            message_id = attributes.get("messageID", "")
        return WctpRequest(
            body=body,
            operation=operation,
            valid=valid,
            sender_id=originator.get("senderID", "") if originator is not None else "",
            recipient_id=recipient.get("recipientID", "") if recipient is not None else "",
            message_id=message_id,
            text=(text_node.text or "") if text_node is not None else "",
            attributes=attributes,
            outcome=outcome,
        )
