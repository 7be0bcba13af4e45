"""The demo channel: every message lands in an outbox instead of leaving the machine.

The transport does no I/O itself. It hands the message to an outbox hook -- passed to the
constructor, or registered once at startup with :func:`register_outbox` (the events app
registers one that stores the message for the outbox page). Without either, messages go
to the in-memory :data:`memory_outbox`, which is what tests read.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Self

from .base import DeliveryReceipt, OutboundMessage, ReceiptStatus, Transport, TransportError

#: Stores one message under its fake provider reference.
OutboxHook = Callable[[OutboundMessage, str], None]


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One message kept by :class:`MemoryOutbox`."""

    reference: str
    message: OutboundMessage


class MemoryOutbox:
    """A bounded, thread-safe in-memory outbox (the newest ``maxlen`` messages)."""

    def __init__(self, maxlen: int = 1000) -> None:
        self._entries: deque[OutboxEntry] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def __call__(self, message: OutboundMessage, reference: str) -> None:
        with self._lock:
            self._entries.append(OutboxEntry(reference, message))

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
        reference = f"sandbox-{uuid.uuid4()}"
        hook = self.outbox or registered_outbox()
        try:
            hook(message, reference)
        except TransportError:
            raise
        except Exception as exc:
            raise TransportError(f"sandbox outbox failed: {exc}") from exc
        return DeliveryReceipt(
            provider_reference=reference, status=ReceiptStatus.DELIVERED, detail="sandbox outbox"
        )
