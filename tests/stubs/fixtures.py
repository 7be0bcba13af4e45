"""Pytest fixtures starting and stopping the loopback stubs.

Import the ones a test package needs into its ``conftest.py``. Each fixture gives a fresh,
started stub per test and stops it afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .smtp import SmtpStub
from .snpp import SnppStub
from .twilio import TwilioStub
from .wctp import WctpStub
from .webhook import WebhookStub

STUB_AUTH_TOKEN = "stub-auth-token"
STUB_ACCOUNT_SID = "AC" + "0" * 32


@pytest.fixture
def twilio_stub() -> Iterator[TwilioStub]:
    """A Twilio API stub requiring ``(STUB_ACCOUNT_SID, STUB_AUTH_TOKEN)``."""
    with TwilioStub(auth_token=STUB_AUTH_TOKEN, stall_seconds=3.0) as stub:
        yield stub


@pytest.fixture
def wctp_stub() -> Iterator[WctpStub]:
    """A WCTP gateway stub validating submits against the DTD."""
    with WctpStub(stall_seconds=3.0) as stub:
        yield stub


@pytest.fixture
def snpp_stub() -> Iterator[SnppStub]:
    """An SNPP gateway stub (reconfigure attributes before sending)."""
    with SnppStub(idle_timeout=3.0) as stub:
        yield stub


@pytest.fixture
def smtp_stub() -> Iterator[SmtpStub]:
    """An aiosmtpd relay stub."""
    with SmtpStub() as stub:
        yield stub


@pytest.fixture
def webhook_stub() -> Iterator[WebhookStub]:
    """A webhook receiver stub answering 200."""
    with WebhookStub(stall_seconds=3.0) as stub:
        yield stub
