"""Notification transports, one module per channel, and the registry the task layer uses.

``transport_for(kind)`` gives the transport class for a contact method's kind;
``QUEUE[kind]`` is the Celery queue its sends run on (one per channel, so a slow pager
gateway never holds up SMS), and ``RATE_LIMIT[kind]`` the default Celery ``rate_limit`` for
that queue's send task.

Celery rate limits are per worker process, not global: with N worker processes on a
queue the account-wide rate is N times the value here, so size the ``sms`` and ``voice``
workers accordingly (or raise the limits when the account has more throughput).
"""

from __future__ import annotations

from typing import Final

from .base import (
    DeliveryReceipt,
    OutboundMessage,
    ReceiptStatus,
    Transport,
    TransportError,
)
from .email import EmailTransport
from .sandbox import SandboxTransport
from .sms import SmsTransport
from .snpp import SnppTransport
from .voice import VoiceTransport
from .wctp import WctpTransport
from .webhook import WebhookTransport

REGISTRY: Final[dict[str, type[Transport]]] = {
    "sms": SmsTransport,
    "voice": VoiceTransport,
    "pager_wctp": WctpTransport,
    "pager_snpp": SnppTransport,
    "email": EmailTransport,
    "webhook": WebhookTransport,
    "sandbox": SandboxTransport,
}

#: Channel kind -> Celery queue. Both pager protocols share one queue: same gateways'
#: operators, same volume.
QUEUE: Final[dict[str, str]] = {
    "sms": "sms",
    "voice": "voice",
    "pager_wctp": "pager",
    "pager_snpp": "pager",
    "email": "email",
    "webhook": "webhook",
    "sandbox": "sandbox",
}

#: Channel kind -> default Celery ``rate_limit`` of the send task (``None``: unlimited).
RATE_LIMIT: Final[dict[str, str | None]] = {
    # Twilio: a long code sends 1 message segment per second, toll-free 3, short code 30;
    # faster requests are queued by Twilio, not refused. "What are the limits on outbound
    # calls and SMS messages per-second?", twilio.com/help/faq/twilio-basics.
    "sms": "1/s",
    # Twilio: every account may create 1 outbound call per second (CPS) unless raised in
    # the console. https://www.twilio.com/docs/glossary/cps
    "voice": "1/s",
    # Paging carriers publish no rate; a few per second keeps one platform from looking
    # like a flood to a TAP/WCTP gateway.
    "pager_wctp": "5/s",
    "pager_snpp": "5/s",
    # Shared SMTP relays commonly throttle around 10-14 messages per second (e.g. Amazon
    # SES's starting production quota of 14/s).
    "email": "10/s",
    # Receivers are the participants' own systems.
    "webhook": "20/s",
    "sandbox": None,
}


class UnknownChannelError(LookupError):
    """A contact method kind with no transport."""


def transport_for(kind: str) -> type[Transport]:
    """The transport class for ``kind``.

    Raises :class:`UnknownChannelError` naming the known kinds when there is none.
    """
    try:
        return REGISTRY[kind]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise UnknownChannelError(
            f"no transport for channel kind {kind!r} (known: {known})"
        ) from None


__all__ = [
    "QUEUE",
    "RATE_LIMIT",
    "REGISTRY",
    "DeliveryReceipt",
    "OutboundMessage",
    "ReceiptStatus",
    "Transport",
    "TransportError",
    "UnknownChannelError",
    "transport_for",
]
