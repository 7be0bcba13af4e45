"""Voice calls through Twilio's Calls API: the notice is read out, one digit is gathered.

The call carries its TwiML inline (``twiml=``), so no web request is needed to start
speaking. ``<Gather numDigits="1">`` posts the pressed digit to the ``gather`` reply link;
the view behind that link maps the digit with :func:`outcome_for_digit`, records it, and
answers with :func:`build_gather_response_twiml`.
"""

from __future__ import annotations

from typing import Final, Self

from twilio.base.exceptions import TwilioException
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from ._twilio import TwilioSettings, build_client, error_from_exception
from .base import DeliveryReceipt, OutboundMessage, ReceiptStatus, Transport, TransportError

OUTCOME_ACKNOWLEDGED: Final = "acknowledged"
OUTCOME_OPTED_OUT: Final = "opted_out"
OUTCOME_INVALID: Final = "invalid"
OUTCOME_NO_INPUT: Final = "no_input"
OUTCOME_UNKNOWN: Final = "unknown"

#: Digit pressed -> outcome. Kept tiny on purpose: a participant hears the menu once.
DIGIT_OUTCOMES: Final[dict[str, str]] = {"1": OUTCOME_ACKNOWLEDGED, "2": OUTCOME_OPTED_OUT}

_MENU = "Press 1 to acknowledge this event. Press 2 to opt out of this event."
_OUTCOME_SPEECH: Final[dict[str, str]] = {
    OUTCOME_ACKNOWLEDGED: "Thank you. Your acknowledgement has been recorded. Goodbye.",
    OUTCOME_OPTED_OUT: "You have opted out of this event. Goodbye.",
    OUTCOME_NO_INPUT: "We did not receive a response. Goodbye.",
    # The notice is no longer open (event cancelled, already answered, unknown id): say so
    # without revealing anything about the event to whoever holds the phone.
    OUTCOME_UNKNOWN: "This notice can no longer be answered by phone. Goodbye.",
}


def build_call_twiml(text: str, gather_url: str | None, *, gather_timeout: int = 8) -> str:
    """TwiML for an outbound notice call.

    Returns an XML string: the notice is said inside a one-digit ``<Gather>`` posting to
    ``gather_url`` (menu: 1 acknowledge, 2 opt out), said once more, and a goodbye if no
    digit arrives. With ``gather_url`` ``None`` the notice is only read out, twice.
    ``gather_timeout`` is in seconds.
    """
    response = VoiceResponse()
    if gather_url is None:
        response.say(text)
        response.pause(length=1)
        response.say(text)
        return str(response)
    for _ in range(2):
        gather = response.gather(
            num_digits=1, action=gather_url, method="POST", timeout=gather_timeout
        )
        gather.say(text)
        gather.say(_MENU)
    response.say(_OUTCOME_SPEECH[OUTCOME_NO_INPUT])
    response.hangup()
    return str(response)


def outcome_for_digit(digits: str | None) -> str:
    """Map Twilio's ``Digits`` parameter to an outcome.

    Returns ``"acknowledged"`` for 1, ``"opted_out"`` for 2, ``"no_input"`` for a missing
    or empty value and ``"invalid"`` for anything else.
    """
    if not digits:
        return OUTCOME_NO_INPUT
    return DIGIT_OUTCOMES.get(digits.strip(), OUTCOME_INVALID)


def build_gather_response_twiml(
    outcome: str, *, text: str | None = None, gather_url: str | None = None
) -> str:
    """TwiML answering the digit callback.

    Returns an XML string confirming ``outcome`` (``"acknowledged"``, ``"opted_out"``,
    ``"no_input"``, ``"unknown"``) and hanging up. For ``"invalid"`` it repeats the menu
    (and the notice ``text`` if given) once more when ``gather_url`` is known, otherwise it
    says goodbye. Unrecognised outcome strings are treated as ``"unknown"``.
    """
    response = VoiceResponse()
    if outcome == OUTCOME_INVALID:
        if gather_url is not None:
            gather = response.gather(num_digits=1, action=gather_url, method="POST", timeout=8)
            gather.say("Sorry, that is not a valid choice.")
            if text:
                gather.say(text)
            gather.say(_MENU)
        response.say(_OUTCOME_SPEECH[OUTCOME_NO_INPUT])
        response.hangup()
        return str(response)
    response.say(_OUTCOME_SPEECH.get(outcome, _OUTCOME_SPEECH[OUTCOME_UNKNOWN]))
    response.hangup()
    return str(response)


class VoiceTransport(Transport):
    """``POST /2010-04-01/Accounts/{sid}/Calls.json`` with inline TwiML."""

    kind = "voice"

    def __init__(self, config: TwilioSettings) -> None:
        self.config = config
        self.client: Client = build_client(config)

    @classmethod
    def from_settings(cls) -> Self:
        """The transport configured by the ``TWILIO_*`` settings."""
        return cls(TwilioSettings.from_settings())

    def notify(self, message: OutboundMessage) -> DeliveryReceipt:
        """Place one call.

        Returns a ``QUEUED`` receipt whose reference is the Twilio call SID (``CA...``); the
        call's progress is posted to ``callback_url`` and the digit to the ``gather`` reply
        link.

        Raises ``TransportError``: permanent for Twilio 4xx errors about the number
        (21211, 13224 ...); transient for timeouts, connection errors, HTTP 5xx and 429
        (with ``retry_after``) and for rejected credentials.
        """
        twiml = build_call_twiml(message.text, message.reply_links.get("gather"))
        try:
            call = self.client.calls.create(
                to=message.address,
                from_=self.config.from_number,
                twiml=twiml,
                status_callback=message.callback_url or None,
                status_callback_event=["answered", "completed"] if message.callback_url else None,
            )
        except TwilioException as exc:
            raise error_from_exception(exc) from exc
        if not call.sid:
            raise TransportError("Twilio accepted the call but returned no SID")
        return DeliveryReceipt(
            provider_reference=call.sid,
            status=ReceiptStatus.QUEUED,
            detail=f"twilio status {call.status}",
        )
