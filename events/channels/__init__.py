"""Notification transports, one module per channel, and the registry the task layer uses.

``transport_for(kind)`` gives the transport class for a contact method's kind;
``QUEUE[kind]`` is the Celery queue its sends run on (one per channel, so a slow pager
gateway never holds up SMS), and ``RATE_LIMIT[kind]`` the default Celery ``rate_limit`` for
that queue's send task.

Celery rate limits are per worker, not global: with N workers on a queue the account-wide
rate is N times the value here, so size the ``sms`` and ``voice`` workers accordingly, or
raise the limits with ``NOTIFICATION_RATE_LIMITS`` when the account has more throughput
(a short code, a messaging service). See :func:`send_batching` for how a limit becomes
the batch size and rate of a queue's send task.
"""

from __future__ import annotations

import math
from typing import Final

from celery.utils.time import rate as parse_rate
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

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


#: Notifications one send task message carries at most (a channel without a rate limit):
#: one broker message and one task run per 100 sends instead of per send. A batch's fixed
#: costs (the task, claiming and reading its rows) are shared by more sends than at 50 (the
#: dispatch benchmark ran 1-2 s faster); with ten in flight at once a hundred still take
#: about two seconds against a provider answering in 200 ms.
MAX_SEND_BATCH: Final = 100


def rate_limit(kind: str) -> str | None:
    """The send rate limit of channel ``kind``: ``NOTIFICATION_RATE_LIMITS`` (from the
    environment, e.g. ``sms=30/s,voice=1/s``; ``none`` for no limit) over :data:`RATE_LIMIT`.

    Raises ``ImproperlyConfigured`` when the setting names a channel that does not exist.
    """
    overrides = settings.NOTIFICATION_RATE_LIMITS
    unknown = sorted(set(overrides) - set(REGISTRY))
    if unknown:
        raise ImproperlyConfigured(
            f"NOTIFICATION_RATE_LIMITS names unknown channels {', '.join(unknown)} "
            f"(known: {', '.join(sorted(REGISTRY))})."
        )
    return overrides[kind] if kind in overrides else RATE_LIMIT[kind]


def send_batching(queue: str) -> tuple[int, str | None]:
    """``(notifications per task message, the send task's rate_limit)`` for ``queue``.

    A channel limited to r messages per second carries up to r notifications per message
    (at most :data:`MAX_SEND_BATCH`) and its task is limited to r / batch messages per
    second, so the messages per second stay r: SMS at 1/s stays one notification per task
    at 1/s, email at 10/s becomes ten per task at one task a second. The strictest limit
    of the kinds sharing the queue applies (the pager protocols).
    """
    limits = [parse_rate(rate_limit(kind)) for kind, name in QUEUE.items() if name == queue]
    limited = [per_second for per_second in limits if per_second]
    if not limits:
        raise UnknownChannelError(f"no channel uses the queue {queue!r}")
    if not limited:
        return MAX_SEND_BATCH, None
    per_second = min(limited)
    batch = max(1, min(MAX_SEND_BATCH, math.floor(per_second)))
    return batch, f"{per_second / batch:g}/s"


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
    "MAX_SEND_BATCH",
    "QUEUE",
    "RATE_LIMIT",
    "REGISTRY",
    "DeliveryReceipt",
    "OutboundMessage",
    "ReceiptStatus",
    "Transport",
    "TransportError",
    "UnknownChannelError",
    "rate_limit",
    "send_batching",
    "transport_for",
]
