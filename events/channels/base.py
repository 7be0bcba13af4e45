"""The transport contract shared by every notification channel.

A transport turns one :class:`OutboundMessage` into one provider call. It either returns a
:class:`DeliveryReceipt` (the provider accepted the message) or raises
:class:`TransportError`. The ``permanent`` flag on the error is the only thing the task layer
needs to decide what happens next:

* ``permanent=True``: this message can never reach this address, however often it is
  retried (invalid number, unsubscribed recipient, unknown pager id, mailbox refused). The
  notification is marked failed and the contact method may be flagged.
* ``permanent=False``: the provider or the network had a bad moment (timeout, connection
  refused, HTTP 5xx, 429, SMTP 4xx), or the platform's own provider configuration was
  rejected (bad credentials). Retrying later may succeed; ``retry_after`` carries the
  provider's hint in seconds when it gave one. Configuration faults are transient on
  purpose: the participant's address is not at fault, and once an operator fixes the
  credentials the retries go through.

A send task hands a transport its whole batch through :meth:`Transport.notify_many`, which
yields the answers as they come. The default calls :meth:`Transport.notify` for
one message after the other; a transport with an asynchronous client (SMS through Twilio)
keeps several requests in flight at once instead.

Transports never touch the database; they work on the frozen dataclass below so that the
models can change without touching the channels.
"""

from __future__ import annotations

import abc
import email.utils
import enum
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar, Self

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One notice to one address, as a transport sees it.

    ``address`` is in the channel's own format: an E.164 phone number for ``sms`` and
    ``voice``, an email address, a pager id for ``pager_wctp`` and ``pager_snpp``, an
    ``https`` URL for ``webhook``.

    ``options`` holds the contact method's own settings (keys documented per transport:
    the WCTP endpoint, the SNPP ``host:port``, the webhook secret ...).

    ``callback_url`` is where the provider posts delivery status (Twilio ``StatusCallback``);
    it carries the notification id so an unknown callback can be answered and ignored.

    ``reply_links`` maps reply names to absolute URLs: ``"acknowledge"`` and ``"opt_out"``
    (links for email and webhook bodies) and ``"gather"`` (where Twilio posts the digit a
    participant pressed during a call).
    """

    notification_id: uuid.UUID
    kind: str
    address: str
    subject: str
    text: str
    html: str | None = None
    options: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    callback_url: str | None = None
    reply_links: Mapping[str, str] = field(default_factory=lambda: _EMPTY)


class ReceiptStatus(enum.StrEnum):
    """How far a message got when the transport returned."""

    #: The provider accepted it and will report delivery later (status callback, StatusInfo).
    QUEUED = "queued"
    #: Handed to the next hop (SMTP relay, paging terminal); no further status will come.
    SENT = "sent"
    #: The final recipient system answered (webhook receiver, sandbox outbox).
    DELIVERED = "delivered"


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """What a transport returns when the provider accepted the message.

    ``provider_reference`` is the provider's id for the message (Twilio SID, SMTP Message-ID,
    WCTP message id or tracking number) or ``None`` when the provider gives none (SNPP).
    Status callbacks are matched on the notification id, never on this reference alone.
    """

    provider_reference: str | None
    status: ReceiptStatus
    detail: str = ""


class TransportError(Exception):
    """A send that did not go through.

    ``permanent`` says whether retrying the same message to the same address can ever help
    (see the module docstring). ``retry_after`` is the provider's back-off hint in seconds
    (HTTP ``Retry-After``), or ``None``. ``code`` is the provider's own error code as text
    (Twilio ``21211``, WCTP ``403``, SMTP ``550``, HTTP ``503``) for logs and the
    notification row.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after
        self.code = code

    def __repr__(self) -> str:
        return (
            f"TransportError({self.message!r}, permanent={self.permanent}, "
            f"retry_after={self.retry_after}, code={self.code!r})"
        )


class Transport(abc.ABC):
    """One channel. Subclasses set ``kind`` and implement :meth:`notify`.

    Instances hold only configuration (and, for HTTP channels, a connection pool); they are
    safe to reuse across messages and threads.
    """

    kind: ClassVar[str]

    @classmethod
    @abc.abstractmethod
    def from_settings(cls) -> Self:
        """Build the transport from ``django.conf.settings`` (secrets come from the env)."""

    @abc.abstractmethod
    def notify(self, message: OutboundMessage) -> DeliveryReceipt:
        """Send ``message`` once.

        Returns a receipt when the provider accepted the message. Raises
        :class:`TransportError` otherwise, ``permanent`` as described in the module
        docstring. Never retries by itself: retries belong to the task layer, which knows
        the notification's deadline.
        """

    def notify_many(
        self, messages: Sequence[OutboundMessage], *, deadline: float
    ) -> Iterator[list[tuple[int, DeliveryReceipt | Exception]]]:
        """Send each of ``messages`` once; yield the answers as they come, in groups.

        Each group holds ``(index, receipt or error)`` for the answers that arrived since
        the previous group, so the caller records them together (one database write)
        before it looks for more, while the rest are still in flight. A message not started
        by ``deadline`` (a ``time.monotonic()`` value) is neither sent nor yielded: the
        caller hands it back. The first message is always started. An error is yielded,
        never raised: a :class:`TransportError` as :meth:`notify` raises it, anything
        else (a bug, a misconfiguration) as it came.

        This default sends one message after the other through :meth:`notify` and yields
        each answer as a group of one.
        """
        for index, message in enumerate(messages):
            if index and time.monotonic() >= deadline:
                return
            try:
                receipt = self.notify(message)
            except Exception as exc:  # noqa: BLE001 - handed to the caller, see above
                yield [(index, exc)]
            else:
                yield [(index, receipt)]


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` value (delta-seconds or HTTP-date).

    Returns ``None`` for a missing or unparseable value, and never a negative number.
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


def http_status_is_transient(status: int) -> bool:
    """Whether an HTTP error status is worth retrying: 5xx, 408 and 429."""
    return status >= 500 or status in (408, 429)
