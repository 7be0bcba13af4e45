"""SMS through Twilio's Messages API, using the official ``twilio`` client."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Self

from twilio.base.exceptions import TwilioException
from twilio.rest import Client

from ._concurrent import process_loop, send_concurrently
from ._twilio import TwilioSettings, build_async_client, build_client, error_from_exception
from .base import DeliveryReceipt, OutboundMessage, ReceiptStatus, Transport, TransportError


class SmsTransport(Transport):
    """``POST /2010-04-01/Accounts/{sid}/Messages.json`` with ``StatusCallback``.

    The message body is ``message.text`` as composed by the content layer (it already
    carries the reply instructions). The notification id travels in ``callback_url``, so
    Twilio's status callbacks find the notification without a lookup by SID.

    :meth:`notify` sends one message with the official client in synchronous mode;
    :meth:`notify_many` sends a send task's batch with the same client in asynchronous
    mode, several requests in flight at once (``events.channels._concurrent``).
    """

    kind = "sms"

    def __init__(self, config: TwilioSettings) -> None:
        self.config = config
        self.client: Client = build_client(config)
        self.async_client: Client = build_async_client(config)
        process_loop.close_on_exit(self.async_client.http_client)

    @classmethod
    def from_settings(cls) -> Self:
        """The transport configured by the ``TWILIO_*`` settings."""
        return cls(TwilioSettings.from_settings())

    def notify(self, message: OutboundMessage) -> DeliveryReceipt:
        """Send one SMS.

        Returns a ``QUEUED`` receipt whose reference is the Twilio message SID (``SM...``);
        delivery is reported later to ``callback_url``.

        Raises ``TransportError``: permanent for Twilio 4xx errors about the recipient
        (21211 invalid number, 21610 opted out, 21614 not a mobile number ...); transient for
        timeouts, connection errors, HTTP 5xx and 429 (with ``retry_after``) and for
        rejected credentials.
        """
        try:
            created = self.client.messages.create(**self._fields(message))
        except TwilioException as exc:
            raise error_from_exception(exc) from exc
        return self._receipt(created)

    def notify_many(
        self, messages: Sequence[OutboundMessage], *, deadline: float
    ) -> Iterator[list[tuple[int, DeliveryReceipt | Exception]]]:
        """Send a batch concurrently; answers and errors as :meth:`notify` gives them
        (the contract is :meth:`Transport.notify_many`)."""
        return send_concurrently(self._notify_async, messages, deadline=deadline)

    async def _notify_async(self, message: OutboundMessage) -> DeliveryReceipt:
        try:
            created = await self.async_client.messages.create_async(**self._fields(message))
        except TwilioException as exc:
            raise error_from_exception(exc) from exc
        return self._receipt(created)

    def _fields(self, message: OutboundMessage) -> dict[str, str | None]:
        return {
            "to": message.address,
            "from_": self.config.from_number,
            "body": message.text,
            "status_callback": message.callback_url or None,
        }

    @staticmethod
    def _receipt(created) -> DeliveryReceipt:
        if not created.sid:
            raise TransportError("Twilio accepted the message but returned no SID")
        return DeliveryReceipt(
            provider_reference=created.sid,
            status=ReceiptStatus.QUEUED,
            detail=f"twilio status {created.status}",
        )
