"""Fixtures for the transport tests: the loopback stubs and a message factory."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from events.channels.base import OutboundMessage
from tests.stubs.fixtures import (  # noqa: F401 -- fixtures are found by name
    smtp_stub,
    snpp_stub,
    twilio_stub,
    wctp_stub,
    webhook_stub,
)

MessageFactory = Callable[..., OutboundMessage]


@pytest.fixture
def make_message() -> MessageFactory:
    """Build an OutboundMessage; keyword arguments override the defaults."""

    def build(**overrides: Any) -> OutboundMessage:
        notification_id = overrides.pop("notification_id", None) or uuid.uuid4()
        values: dict[str, Any] = {
            "notification_id": notification_id,
            "kind": "sms",
            "address": "+15555550100",
            "subject": "Demand response event tomorrow 17:00-19:00",
            "text": "Event tomorrow 17:00-19:00. Reply 1 to acknowledge, 2 to opt out.",
            "callback_url": f"https://dr.example.com/hooks/twilio/status/{notification_id}/",
        }
        values.update(overrides)
        return OutboundMessage(**values)

    return build
