"""Verification codes through the real channels, when notifications are live.

``enrollment.services.contact_method_send_verification`` writes a new code's digest and
hands the message to its *verification sender* inside one transaction. Enrollment cannot
import the channels (imports point ``enrollment <- events``), so it keeps the sandbox
outbox as its own sender, and this module installs :func:`send_verification_code` in its
place while ``NOTIFICATION_MODE`` is ``"live"`` (from ``EventsConfig.ready`` and again
whenever a test or ``override_settings`` changes the mode).

Why synchronously, and not through the send tasks of the pipeline: those tasks take a
Notification id, and a Notification is a notice about an event to a participation; a
verification code belongs to neither, and putting the code itself into a task message
would keep it in clear on the broker. Above all the person who asked for the code is
waiting on the page: sending while they wait lets the portal tell them at once that the
provider refused the number or is down. The provider call is bounded by the channel's
own timeout (``TWILIO_TIMEOUT``, ``EMAIL_TIMEOUT`` ...), and enrollment already limits a
method to one code a minute.

Failures: every error becomes a ``ValidationError`` worded for the portal user (the
provider's own detail goes to the log, and to the user only when it is about the address
they typed). Raising inside the service's transaction rolls back the new code's digest,
send time and attempt counter, so a failed send leaves the method exactly as it was: an
earlier code still works, and the user may ask again at once.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any, Final

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.signals import setting_changed
from django.dispatch import receiver

from enrollment.models import ContactMethod
from enrollment.services import set_verification_sender
from events.channels import OutboundMessage, TransportError
from events.services.pipeline import get_transport, method_options

logger = logging.getLogger(__name__)

K = ContactMethod.Kind

#: Method kind -> (who sends it, what the user should check), for error messages.
_WORDING: Final[dict[str, tuple[str, str]]] = {
    K.SMS: ("the text-message provider", "phone number"),
    K.VOICE: ("the voice-call provider", "phone number"),
    K.PAGER_WCTP: ("the paging carrier", "pager id and the carrier's WCTP address"),
    K.PAGER_SNPP: ("the paging gateway", "pager id and the paging server"),
    K.EMAIL: ("the mail server", "email address"),
    K.WEBHOOK: ("the webhook receiver", "webhook URL and that it accepts signed requests"),
}

# Text-to-speech reads "482913" as "four hundred eighty-two thousand ..."; separated
# digits are read one by one, which is what the listener has to type.
_DIGIT_RUN = re.compile(r"\d{4,}")


def spoken_digits(text: str) -> str:
    """``text`` with every run of four or more digits spelled out as "4, 8, 2, 9 ..."."""
    return _DIGIT_RUN.sub(lambda match: ", ".join(match.group()), text)


def build_verification_message(method: ContactMethod, subject: str, body: str) -> OutboundMessage:
    """The message carrying a verification code to ``method`` (no callbacks, no replies).

    Each send gets a fresh id: providers and receivers see it as the message id (WCTP
    ``messageID``, email ``Message-ID``, webhook ``notification_id``), and since no
    Notification row holds it, a status callback for it is answered and ignored.
    """
    text = spoken_digits(body) if method.kind == K.VOICE else body
    return OutboundMessage(
        notification_id=uuid.uuid4(),
        kind=method.kind,
        address=method.address,
        subject=subject,
        text=text,
        options=method_options(method),
    )


def send_verification_code(method: ContactMethod, subject: str, body: str) -> None:
    """Send a verification message through ``method``'s own channel, now.

    Returns once the provider accepted it. Raises ``ValidationError`` with a message for
    the portal user when it did not: the provider refused the address (permanent), is
    unreachable or rejected the platform's configuration (transient), or the channel is
    not configured on this deployment.
    """
    provider, address_words = _WORDING.get(method.kind, ("the provider", "address"))
    try:
        transport = get_transport(method.kind)
    except Exception:
        logger.exception("cannot build the %s transport for verification codes", method.kind)
        raise ValidationError(
            f"Codes cannot be sent by {method.get_kind_display()} yet: this channel is not "
            "set up on the platform. Please tell your program manager."
        ) from None
    message = build_verification_message(method, subject, body)
    try:
        receipt = transport.notify(message)
    except TransportError as exc:
        logger.warning(
            "verification code to %s method %s not sent: %r", method.kind, method.pk, exc
        )
        if exc.permanent:
            raise ValidationError(
                f"The code could not be sent: {provider} refused {method.address} "
                f"({exc.message}). Please check the {address_words}; if it was mistyped, "
                "remove this method and add it again."
            ) from None
        raise ValidationError(
            # A timeout is ambiguous (the provider may have taken it), but the new code's
            # digest is rolled back either way, so say that such a code will not work.
            f"The code could not be sent: {provider} is not answering right now. Please "
            "try again in a few minutes; if this keeps happening, tell your program manager. "
            "Should a new code arrive anyway, it will not work; a code you received earlier "
            "still works until it expires."
        ) from None
    except Exception:
        logger.exception("verification code to %s method %s failed", method.kind, method.pk)
        raise ValidationError(
            "The code could not be sent because of an error on our side. Please try again "
            "in a few minutes; if this keeps happening, tell your program manager."
        ) from None
    logger.info(
        "verification code sent to method %s via %s (%s %s)",
        method.pk,
        method.kind,
        receipt.status,
        receipt.provider_reference or "no reference",
    )


def install_verification_sender() -> None:
    """Make enrollment send codes through the real channels in live mode, and keep its
    own sandbox outbox otherwise."""
    live = settings.NOTIFICATION_MODE == "live"
    set_verification_sender(send_verification_code if live else None)


@receiver(setting_changed)
def _follow_notification_mode(*, setting: str, **kwargs: Any) -> None:
    # Tests and override_settings switch modes inside one process; the sender must follow.
    if setting == "NOTIFICATION_MODE":
        install_verification_sender()
