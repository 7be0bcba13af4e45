"""The shared contract: messages, receipts, errors and Retry-After parsing."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from events.channels.base import (
    OutboundMessage,
    TransportError,
    http_status_is_transient,
    parse_retry_after,
)


def test_outbound_message_is_frozen() -> None:
    message = OutboundMessage(
        notification_id=uuid.uuid4(), kind="sms", address="+15555550100", subject="s", text="t"
    )

    with pytest.raises(dataclasses.FrozenInstanceError):
        message.text = "changed"  # type: ignore[misc]
    assert message.options == {}
    assert message.reply_links == {}


def test_transport_error_defaults_to_transient() -> None:
    error = TransportError("boom")

    assert (error.permanent, error.retry_after, error.code) == (False, None, None)
    assert str(error) == "boom"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), (" 1.5 ", 1.5), ("-3", 0.0), ("", None), (None, None), ("soon", None),
     ("Wed, 21 Oct 2015 07:28:00 GMT", 30.0)],
)  # fmt: skip
def test_it_parses_retry_after(value: str | None, expected: float | None) -> None:
    now = 1445412450.0  # 30 seconds before the HTTP-date above

    assert parse_retry_after(value, now=now) == expected


@pytest.mark.parametrize(
    ("status", "transient"),
    [(500, True), (503, True), (429, True), (408, True), (400, False), (404, False)],
)
def test_it_classifies_http_statuses(status: int, transient: bool) -> None:
    assert http_status_is_transient(status) is transient
