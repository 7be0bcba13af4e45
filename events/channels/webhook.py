"""Signed JSON webhooks.

The body is compact JSON with sorted keys. ``X-DR-Signature: sha256=<hex>`` is the
HMAC-SHA256 of the exact body bytes under the method's secret; ``X-DR-Timestamp`` (Unix
seconds) is also inside the signed body as ``"timestamp"``, so a receiver that checks the
signature can also refuse stale replays. Receivers verify with :func:`verify`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Final, Self
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import NewConnectionError

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

SIGNATURE_HEADER: Final = "X-DR-Signature"
TIMESTAMP_HEADER: Final = "X-DR-Timestamp"
NOTIFICATION_HEADER: Final = "X-DR-Notification"
SIGNATURE_PREFIX: Final = "sha256="


def sign(body: bytes, secret: str) -> str:
    """The ``X-DR-Signature`` value for ``body``: ``"sha256="`` + hex HMAC-SHA256."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify(body: bytes, secret: str, header: str | None) -> bool:
    """Whether ``header`` is a valid signature of ``body`` under ``secret``.

    Compares in constant time. Returns ``False`` for a missing header, another scheme or
    an empty secret (an empty secret would let anyone sign).
    """
    if not header or not secret or not header.startswith(SIGNATURE_PREFIX):
        return False
    return hmac.compare_digest(sign(body, secret).encode(), header.strip().encode())


def build_body(message: OutboundMessage, *, timestamp: int) -> bytes:
    """The JSON body posted for ``message``, as UTF-8 bytes."""
    document = {
        "notification_id": str(message.notification_id),
        "subject": message.subject,
        "text": message.text,
        "html": message.html,
        "reply_links": dict(message.reply_links),
        "timestamp": timestamp,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """Request timeout in seconds and the User-Agent sent to receivers."""

    timeout: float = 10.0
    user_agent: str = "dr-platform-webhook/1"

    @classmethod
    def from_settings(cls) -> WebhookSettings:
        """Read ``WEBHOOK_TIMEOUT`` from Django settings."""
        from django.conf import settings

        return cls(timeout=float(getattr(settings, "WEBHOOK_TIMEOUT", 10)))


class WebhookTransport(Transport):
    """POST the notice to the method's URL (``address``), signed with ``options["secret"]``.

    Unless private addresses are allowed, the host is resolved and checked at every send
    and the request goes to an address that was checked, with the original Host header
    and, for https, TLS (SNI, certificate) for the original name
    (:func:`dr_platform.outbound.http_targets`): a second lookup by the HTTP client could
    answer an internal address (DNS rebinding). The addresses are tried in the resolver's
    order, moving on only when no connection could be made.

    Redirects are refused, never followed: a receiver that moved must be updated by its
    owner, and following them would let a receiver bounce our signed request elsewhere,
    to a host nobody checked.
    """

    kind = "webhook"

    def __init__(self, config: WebhookSettings, session: requests.Session | None = None) -> None:
        self.config = config
        self.session = session or outbound.http_session()

    @classmethod
    def from_settings(cls) -> Self:
        """The transport configured by the ``WEBHOOK_*`` settings."""
        return cls(WebhookSettings.from_settings())

    def notify(self, message: OutboundMessage) -> DeliveryReceipt:
        """POST one notice.

        Returns a ``DELIVERED`` receipt (the receiver answered 2xx) without a provider
        reference.

        Raises ``TransportError``: permanent for a non-http(s) URL, one the outbound policy
        refuses (a private address, a bad port: :mod:`dr_platform.outbound`), a missing
        secret, a redirect and 4xx answers other than 408 and 429; transient for a host
        that does not resolve, timeouts, connection errors, 5xx, 408 and 429 (with
        ``retry_after``).
        """
        url = message.address.strip()
        if urlsplit(url).scheme not in ("http", "https"):
            raise TransportError(f"webhook URL {url!r} is not an http(s) URL", permanent=True)
        try:
            # Again at send time: the URL may predate the policy, or its host resolve
            # elsewhere now.
            targets = outbound.http_targets(url)
        except outbound.OutboundAddressError as exc:
            raise TransportError(
                f"webhook URL refused: {exc}",
                permanent=not isinstance(exc, outbound.UnresolvedHostError),
            ) from None
        secret = message.options.get("secret", "")
        if not secret:
            raise TransportError("webhook method has no signing secret", permanent=True)
        timestamp = int(time.time())
        body = build_body(message, timestamp=timestamp)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": self.config.user_agent,
            SIGNATURE_HEADER: sign(body, secret),
            TIMESTAMP_HEADER: str(timestamp),
            NOTIFICATION_HEADER: str(message.notification_id),
        }
        response = self._post(targets, body, headers)
        status = response.status_code
        if 200 <= status < 300:
            return DeliveryReceipt(
                provider_reference=None, status=ReceiptStatus.DELIVERED, detail=f"HTTP {status}"
            )
        raise TransportError(
            f"webhook answered HTTP {status}",
            permanent=not http_status_is_transient(status),
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            code=str(status),
        )

    def _post(
        self, targets: list[outbound.HttpTarget], body: bytes, headers: dict[str, str]
    ) -> requests.Response:
        """The receiver's answer from the first target that takes a connection.

        Moves to the next target only when connecting failed, so a request that may have
        arrived is never sent twice. Raises a transient ``TransportError`` when none
        answers.
        """
        error: requests.RequestException | None = None
        for target in targets:
            try:
                return self.session.post(
                    target.url,
                    data=body,
                    headers={**headers, **target.headers},
                    timeout=self.config.timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                error = exc
                if not _not_connected(exc):
                    break
        if isinstance(error, requests.Timeout):
            raise TransportError(f"webhook timed out: {error}") from error
        raise TransportError(f"webhook unreachable: {error}") from error


def _not_connected(exc: requests.RequestException) -> bool:
    """Whether ``exc`` came before any byte was sent: the connection itself failed."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    # requests wraps urllib3's MaxRetryError, whose reason says what went wrong.
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)
