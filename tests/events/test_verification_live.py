"""Verification codes in live mode: each method's code travels through its real channel.

Every provider is a loopback stub (tests/stubs): the test reads the code out of what the
stub received, exactly as the person holding the phone, pager or mailbox would, and
proves that entering it verifies the method.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from dr_platform.models import OutboxMessage
from enrollment import services
from enrollment.models import ContactMethod
from tests.enrollment.factories import ContactFactory
from tests.stubs import fixtures as stub_fixtures
from tests.stubs.fixtures import STUB_ACCOUNT_SID, STUB_AUTH_TOKEN

# The stub fixtures this module needs beyond the package conftest's (Twilio, WCTP).
smtp_stub = stub_fixtures.smtp_stub
snpp_stub = stub_fixtures.snpp_stub
webhook_stub = stub_fixtures.webhook_stub

pytestmark = pytest.mark.django_db

FROM_NUMBER = "+15005550006"
CODE = re.compile(r"\b(\d{6})\b")


@pytest.fixture
def live(settings):
    """Live mode with every provider pointed nowhere; each test points one at its stub."""
    settings.NOTIFICATION_MODE = "live"
    settings.TWILIO_ACCOUNT_SID = ""
    settings.TWILIO_AUTH_TOKEN = ""
    settings.TWILIO_FROM_NUMBER = ""
    settings.WCTP_ENDPOINT = ""
    settings.SNPP_SERVER = ""
    return settings


@pytest.fixture
def live_twilio(live, twilio_stub):
    live.TWILIO_ACCOUNT_SID = STUB_ACCOUNT_SID
    live.TWILIO_AUTH_TOKEN = STUB_AUTH_TOKEN
    live.TWILIO_FROM_NUMBER = FROM_NUMBER
    live.TWILIO_BASE_URL = twilio_stub.base_url
    live.TWILIO_TIMEOUT = 1
    return twilio_stub


@pytest.fixture
def contact(organization_a):
    return ContactFactory(organization=organization_a, name="Dana Ortiz")


def add_method(contact, by, kind: str, address: str, **extra: str) -> ContactMethod:
    return services.contact_method_create(
        contact=contact, kind=kind, address=address, by=by, **extra
    )


def the_code(text: str) -> str:
    return CODE.search(text).group(1)


def verify(method: ContactMethod, code: str, by) -> ContactMethod:
    services.contact_method_verify(method=method, code=code, by=by)
    method.refresh_from_db()
    return method


# --- each channel ----------------------------------------------------------------------


def test_an_sms_method_gets_its_code_by_text_and_the_code_verifies_it(
    live_twilio, contact, participant_a
):
    method = add_method(contact, participant_a, "sms", "(212) 555-0101")

    services.contact_method_send_verification(method=method, by=participant_a)

    [request] = live_twilio.requests
    assert request.resource == "Messages" and request.outcome == "accepted"
    assert request.auth == (STUB_ACCOUNT_SID, STUB_AUTH_TOKEN)
    assert request.form["To"] == "+12125550101"
    assert request.form["From"] == FROM_NUMBER
    assert "verification code is" in request.form["Body"]
    assert not OutboxMessage.objects.exists()
    assert verify(method, the_code(request.form["Body"]), participant_a).verified_at is not None


def test_a_voice_method_gets_a_call_reading_the_code_digit_by_digit(
    live_twilio, contact, participant_a
):
    method = add_method(contact, participant_a, "voice", "+12125550102")

    services.contact_method_send_verification(method=method, by=participant_a)

    [request] = live_twilio.requests
    assert request.resource == "Calls" and request.form["To"] == "+12125550102"
    twiml = request.form["Twiml"]
    spoken = re.search(r"code is (\d(?:, \d){5})\.", twiml)
    assert spoken is not None, twiml
    # Read twice, with nothing to press: there is no menu for a verification call.
    assert twiml.count(spoken.group(0)) == 2 and "<Gather" not in twiml
    code = spoken.group(1).replace(", ", "")
    assert verify(method, code, participant_a).verified_at is not None


def test_an_email_method_gets_its_code_through_the_smtp_relay(
    live, smtp_stub, contact, participant_a
):
    live.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    live.NOTIFICATION_EMAIL_BACKEND = None
    live.EMAIL_HOST = smtp_stub.host
    live.EMAIL_PORT = smtp_stub.port
    live.EMAIL_HOST_USER = ""
    live.EMAIL_HOST_PASSWORD = ""
    live.EMAIL_USE_TLS = False
    live.DEFAULT_FROM_EMAIL = "Demand Response <dr@dr.example.com>"
    method = add_method(contact, participant_a, "email", "Dana@Harbor.example")

    services.contact_method_send_verification(method=method, by=participant_a)

    [received] = smtp_stub.messages
    assert received.rcpt_tos == ("dana@harbor.example",)
    assert received.message["Subject"] == "Your verification code"
    body = received.message.get_body(("plain",)).get_content()
    assert verify(method, the_code(body), participant_a).verified_at is not None


def test_a_webhook_gets_the_code_posted_and_signed_with_the_methods_secret(
    live, webhook_stub, contact, participant_a
):
    method = add_method(contact, participant_a, "webhook", webhook_stub.url)
    assert len(method.webhook_secret) >= 32

    services.contact_method_send_verification(method=method, by=participant_a)

    [request] = webhook_stub.requests
    assert request.path == "/hooks/dr"
    # The receiver's check, written out: HMAC-SHA256 of the exact body under the secret.
    expected = hmac.new(method.webhook_secret.encode(), request.body, hashlib.sha256)
    assert request.headers["x-dr-signature"] == "sha256=" + expected.hexdigest()
    document = json.loads(request.body)
    assert document["subject"] == "Your verification code"
    assert str(document["timestamp"]) == request.headers["x-dr-timestamp"]
    assert verify(method, the_code(document["text"]), participant_a).verified_at is not None


def test_a_wctp_pager_gets_the_code_from_its_own_carrier(live, wctp_stub, contact, participant_a):
    live.WCTP_SENDER_ID = "dr-platform"
    live.WCTP_SECURITY_CODE = "PLATFORM-SECRET"
    live.WCTP_TRUSTED_GATEWAYS = [wctp_stub.endpoint]
    method = add_method(
        contact, participant_a, "pager_wctp", "5551234", wctp_endpoint=wctp_stub.endpoint
    )

    services.contact_method_send_verification(method=method, by=participant_a)

    # WCTP_ENDPOINT is empty: the page can only have reached the method's own carrier.
    [request] = wctp_stub.requests
    assert request.valid and request.operation == "wctp-SubmitRequest"
    assert request.recipient_id == "5551234" and request.sender_id == "dr-platform"
    assert b'securityCode="PLATFORM-SECRET"' in request.body
    assert verify(method, the_code(request.text), participant_a).verified_at is not None


def test_the_platforms_wctp_credentials_never_reach_an_untrusted_endpoint(
    live, wctp_stub, contact, participant_a
):
    live.WCTP_SENDER_ID = "dr-platform"
    live.WCTP_SECURITY_CODE = "PLATFORM-SECRET"
    live.WCTP_TRUSTED_GATEWAYS = ["https://wctp.carrier.example/wctp"]

    # Refused when saved, with the gateways the participant may choose from ...
    with pytest.raises(ValidationError) as error:
        add_method(contact, participant_a, "pager_wctp", "4242", wctp_endpoint=wctp_stub.endpoint)
    assert "https://wctp.carrier.example/wctp" in error.value.message_dict["wctp_endpoint"][0]
    # ... and a method stored before the gateway list existed is never paged at all.
    stored = ContactMethod.objects.create(
        contact=contact, kind="pager_wctp", address="4242", wctp_endpoint=wctp_stub.endpoint
    )
    with pytest.raises(ValidationError):
        services.contact_method_send_verification(method=stored, by=participant_a)

    assert wctp_stub.requests == []


def test_an_snpp_pager_gets_the_code_from_its_own_gateway(live, snpp_stub, contact, participant_a):
    method = add_method(contact, participant_a, "pager_snpp", "7654321", snpp_host=snpp_stub.server)

    services.contact_method_send_verification(method=method, by=participant_a)

    [page] = snpp_stub.pages
    assert page.pager_ids == ("7654321",)
    assert verify(method, the_code(page.text), participant_a).verified_at is not None


# --- failures ----------------------------------------------------------------------------


def test_a_refused_number_is_explained_and_leaves_no_code_pending(
    live_twilio, contact, participant_a
):
    live_twilio.reject("+12125550103", code=21211)
    method = add_method(contact, participant_a, "sms", "+12125550103")

    with pytest.raises(ValidationError) as error:
        services.contact_method_send_verification(method=method, by=participant_a)

    [message] = error.value.messages
    assert "refused +12125550103" in message and "invalid 'To' phone number" in message
    assert "check the phone number" in message
    method.refresh_from_db()
    assert method.verification_code_hash == "" and method.verification_sent_at is None
    with pytest.raises(ValidationError, match="Send a code first"):
        services.contact_method_verify(method=method, code="123456", by=participant_a)


def test_a_provider_outage_keeps_the_earlier_code_working(live_twilio, contact, participant_a):
    method = add_method(contact, participant_a, "sms", "+12125550104")
    services.contact_method_send_verification(method=method, by=participant_a)
    first_code = the_code(live_twilio.requests[0].form["Body"])
    two_minutes_ago = timezone.now() - dt.timedelta(minutes=2)
    ContactMethod.objects.filter(pk=method.pk).update(verification_sent_at=two_minutes_ago)
    method.refresh_from_db()
    live_twilio.script("503")

    with pytest.raises(ValidationError, match="not answering right now"):
        services.contact_method_send_verification(method=method, by=participant_a)

    assert [r.outcome for r in live_twilio.requests] == ["accepted", "503"]
    method.refresh_from_db()
    assert method.verification_sent_at == two_minutes_ago
    assert verify(method, first_code, participant_a).verified_at is not None


def test_a_receiver_refusing_the_webhook_is_named_with_its_answer(
    live, webhook_stub, contact, participant_a
):
    webhook_stub.status = 404
    method = add_method(contact, participant_a, "webhook", webhook_stub.url)

    with pytest.raises(ValidationError, match=r"refused .*webhook answered HTTP 404"):
        services.contact_method_send_verification(method=method, by=participant_a)

    assert len(webhook_stub.requests) == 1
    method.refresh_from_db()
    assert method.verification_code_hash == ""


def test_an_unconfigured_channel_says_so_and_sends_nothing(live, contact, participant_a):
    method = add_method(contact, participant_a, "sms", "+12125550105")

    with pytest.raises(ValidationError, match="not set up on the platform"):
        services.contact_method_send_verification(method=method, by=participant_a)

    method.refresh_from_db()
    assert method.verification_sent_at is None
    assert not OutboxMessage.objects.exists()


# --- modes and startup ---------------------------------------------------------------------


def test_sandbox_mode_keeps_codes_in_the_outbox(live_twilio, settings, contact, participant_a):
    live_method = add_method(contact, participant_a, "sms", "+12125550106")
    services.contact_method_send_verification(method=live_method, by=participant_a)
    settings.NOTIFICATION_MODE = "sandbox"
    sandbox_method = add_method(contact, participant_a, "sms", "+12125550107")

    services.contact_method_send_verification(method=sandbox_method, by=participant_a)

    assert [r.form["To"] for r in live_twilio.requests] == ["+12125550106"]
    outbox = OutboxMessage.objects.get()
    assert outbox.address == "+12125550107"
    assert verify(sandbox_method, the_code(outbox.body), participant_a).verified_at is not None


def test_a_live_deployment_installs_the_sender_at_startup():
    # The other tests switch modes in-process; this one starts a process in live mode,
    # as a deployment does. (Sandbox at startup is what the rest of the suite runs on.)
    check = (
        "from enrollment import services; from events import verification; "
        "print(services._verification_sender is verification.send_verification_code)"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", check],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "NOTIFICATION_MODE": "live"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == "True"


# --- the portal ----------------------------------------------------------------------------


def method_url(method: ContactMethod, action: str) -> str:
    return f"/portal/o/{method.contact.organization_id}/methods/{method.pk}/{action}/"


def test_a_participant_verifies_an_sms_method_in_the_portal(
    live_twilio, client, contact, participant_a
):
    method = add_method(contact, participant_a, "sms", "+12125550108")
    client.force_login(participant_a)

    page = client.post(method_url(method, "send-code"), follow=True).content.decode()
    assert "A code was sent to SMS +12125550108" in page
    code = the_code(live_twilio.requests[0].form["Body"])
    response = client.post(method_url(method, "verify"), {"code": code}, follow=True)

    assert "is verified" in response.content.decode()
    method.refresh_from_db()
    assert method.verified_at is not None


def test_the_portal_shows_why_a_code_could_not_be_sent(live_twilio, client, contact, participant_a):
    live_twilio.reject("+12125550109", code=21610)
    method = add_method(contact, participant_a, "sms", "+12125550109")
    client.force_login(participant_a)

    page = client.post(method_url(method, "send-code"), follow=True).content.decode()

    assert "The code could not be sent" in page
    assert "recipient has opted out (replied STOP)" in page
    assert "A code was sent" not in page
    method.refresh_from_db()
    assert method.verification_sent_at is None
