"""The sandbox channel: no I/O, messages land in an outbox hook."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import pytest

from events.channels.base import DeliveryReceipt, ReceiptStatus, TransportError
from events.channels.sandbox import (
    OutboxEntry,
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
    stored: list[OutboxEntry] = []
    message = make_message(kind="sandbox")

    receipt = SandboxTransport(stored.extend).notify(message)

    assert stored == [OutboxEntry(receipt.provider_reference, message)]
    assert receipt.provider_reference.startswith("sandbox-")
    assert receipt.status is ReceiptStatus.DELIVERED


def test_it_uses_the_memory_outbox_by_default(make_message: MessageFactory) -> None:
    message = make_message(kind="sandbox")

    receipt = SandboxTransport.from_settings().notify(message)

    [entry] = memory_outbox.entries
    assert (entry.message, entry.reference) == (message, receipt.provider_reference)


def test_it_uses_a_registered_outbox(make_message: MessageFactory) -> None:
    stored: list[str] = []
    register_outbox(lambda entries: stored.extend(entry.reference for entry in entries))

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


def broken(entries: Sequence[OutboxEntry]) -> None:
    raise RuntimeError("database is locked")


def test_it_raises_transient_error_when_the_outbox_fails(make_message: MessageFactory) -> None:

    with pytest.raises(TransportError) as caught:
        SandboxTransport(broken).notify(make_message(kind="sandbox"))

    assert caught.value.permanent is False
    assert "database is locked" in caught.value.message


def test_it_hands_a_whole_batch_to_the_outbox_at_once(make_message: MessageFactory) -> None:
    calls: list[list[OutboxEntry]] = []
    messages = [make_message(kind="sandbox", address=f"+1212555010{n}") for n in range(3)]

    groups = list(SandboxTransport(lambda e: calls.append(list(e))).notify_many(
        messages, deadline=time.monotonic() - 1))  # fmt: skip

    [stored] = calls  # one call, even past the deadline: nothing waits for a provider
    assert [entry.message for entry in stored] == messages
    [answers] = groups  # one group: the caller records the receipts in one write
    assert [index for index, _ in answers] == [0, 1, 2]
    receipts = [receipt for _, receipt in answers]
    assert all(isinstance(receipt, DeliveryReceipt) for receipt in receipts)
    assert [r.provider_reference for r in receipts] == [entry.reference for entry in stored]


def test_a_failed_batch_is_a_transient_error_for_every_message(
    make_message: MessageFactory,
) -> None:
    messages = [make_message(kind="sandbox"), make_message(kind="sandbox")]

    [answers] = SandboxTransport(broken).notify_many(messages, deadline=time.monotonic() + 5)

    assert [index for index, _ in answers] == [0, 1]
    for _, error in answers:
        assert isinstance(error, TransportError) and error.permanent is False
        assert "database is locked" in error.message
