"""The sandbox channel: no I/O, messages land in an outbox hook."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from events.channels.base import OutboundMessage, ReceiptStatus, TransportError
from events.channels.sandbox import (
    SandboxTransport,
    memory_outbox,
    register_outbox,
    registered_outbox,
)

from .conftest import MessageFactory


@pytest.fixture(autouse=True)
def clean_outbox() -> Iterator[None]:
    memory_outbox.clear()
    yield
    register_outbox(None)
    memory_outbox.clear()


def test_it_stores_the_message_in_the_given_outbox(make_message: MessageFactory) -> None:
    stored: list[tuple[OutboundMessage, str]] = []
    message = make_message(kind="sandbox")

    receipt = SandboxTransport(lambda m, ref: stored.append((m, ref))).notify(message)

    assert stored == [(message, receipt.provider_reference)]
    assert receipt.provider_reference.startswith("sandbox-")
    assert receipt.status is ReceiptStatus.DELIVERED


def test_it_uses_the_memory_outbox_by_default(make_message: MessageFactory) -> None:
    message = make_message(kind="sandbox")

    receipt = SandboxTransport.from_settings().notify(message)

    [entry] = memory_outbox.entries
    assert (entry.message, entry.reference) == (message, receipt.provider_reference)


def test_it_uses_a_registered_outbox(make_message: MessageFactory) -> None:
    stored: list[str] = []
    register_outbox(lambda m, ref: stored.append(ref))

    receipt = SandboxTransport().notify(make_message(kind="sandbox"))

    assert stored == [receipt.provider_reference]
    assert memory_outbox.entries == []
    register_outbox(None)
    assert registered_outbox() is memory_outbox


def test_it_gives_every_message_its_own_reference(make_message: MessageFactory) -> None:
    transport = SandboxTransport()
    message = make_message(kind="sandbox")

    first = transport.notify(message)
    second = transport.notify(message)

    assert first.provider_reference != second.provider_reference


def test_it_raises_transient_error_when_the_outbox_fails(make_message: MessageFactory) -> None:
    def broken(message: OutboundMessage, reference: str) -> None:
        raise RuntimeError("database is locked")

    with pytest.raises(TransportError) as caught:
        SandboxTransport(broken).notify(make_message(kind="sandbox"))

    assert caught.value.permanent is False
    assert "database is locked" in caught.value.message
