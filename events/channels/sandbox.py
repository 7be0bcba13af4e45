"""The demo channel: every message lands in an outbox instead of leaving the machine.

The transport does no I/O itself. It hands the messages to an outbox hook -- passed to
the constructor, or registered once at startup with :func:`register_outbox` (the events app
passes one that stores them for the outbox page). Without either, messages go to the
in-memory :data:`memory_outbox`, which is what tests read. A send task's batch reaches the
hook in one call, so a hook that writes to a database can do it in one statement.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Self

from .base import DeliveryReceipt, OutboundMessage, ReceiptStatus, Transport, TransportError


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One message handed to an outbox, under its fake provider reference."""

    reference: str
    message: OutboundMessage


#: Stores a batch of messages (one or a send task's whole batch), all or none: raising
#: means none was stored.
OutboxHook = Callable[[Sequence[OutboxEntry]], None]


class MemoryOutbox:
    """A bounded, thread-safe in-memory outbox (the newest ``maxlen`` messages)."""

    def __init__(self, maxlen: int = 1000) -> None:
        self._entries: deque[OutboxEntry] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def __call__(self, entries: Sequence[OutboxEntry]) -> None:
        with self._lock:
            self._entries.extend(entries)

    @property
    def entries(self) -> list[OutboxEntry]:
        """A snapshot, oldest first."""
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        """Forget every message."""
        with self._lock:
            self._entries.clear()


memory_outbox: Final = MemoryOutbox()
_registered: OutboxHook | None = None


def register_outbox(hook: OutboxHook | None) -> None:
    """Make ``hook`` the outbox of every sandbox transport built without one.

    ``None`` goes back to :data:`memory_outbox`.
    """
    global _registered
    _registered = hook


def registered_outbox() -> OutboxHook:
    """The hook a sandbox transport built without one uses."""
    return _registered or memory_outbox


class SandboxTransport(Transport):
    """Pretend to deliver: hand the message to the outbox hook and return a fake reference."""

    kind = "sandbox"

    def __init__(self, outbox: OutboxHook | None = None) -> None:
        self.outbox = outbox

    @classmethod
    def from_settings(cls) -> Self:
        """A sandbox transport using the registered outbox (no settings needed)."""
        return cls()

    def notify(self, message: OutboundMessage) -> DeliveryReceipt:
        """Store ``message`` in the outbox.

        Returns a ``DELIVERED`` receipt with the reference ``sandbox-<uuid4>``. Raises
        ``TransportError`` (transient) when the hook fails, so the sandbox exercises the
        same retry path as the real channels.
        """
        [(_, answer)] = self._store([message])
        if isinstance(answer, TransportError):
            raise answer
        return answer

    def notify_many(
        self, messages: Sequence[OutboundMessage], *, deadline: float
    ) -> Iterator[list[tuple[int, DeliveryReceipt | Exception]]]:
        """Store the whole batch with one call to the outbox hook and yield every answer
        as one group: the receipts :meth:`notify` returns, or, when the hook failed, the
        same transient ``TransportError`` for each message (the hook stores all or none).

        Nothing waits for a provider here, so ``deadline`` holds no message back.
        """
        if messages:
            yield self._store(messages)

    def _store(
        self, messages: Sequence[OutboundMessage]
    ) -> list[tuple[int, DeliveryReceipt | Exception]]:
        entries = [OutboxEntry(f"sandbox-{uuid.uuid4()}", message) for message in messages]
        hook = self.outbox or registered_outbox()
        try:
            hook(entries)
        except TransportError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - every message gets the error, see above
            error = TransportError(f"sandbox outbox failed: {exc}")
            error.__cause__ = exc  # as ``raise ... from exc`` would
        else:
            return [
                (index, DeliveryReceipt(entry.reference, ReceiptStatus.DELIVERED, "sandbox outbox"))
                for index, entry in enumerate(entries)
            ]
        return [(index, error) for index in range(len(entries))]
