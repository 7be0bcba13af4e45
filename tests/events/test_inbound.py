"""Replies and callbacks: SMS words, Twilio status and keypress callbacks (with real
signatures), WCTP statuses and pager replies, and signed email links."""

from __future__ import annotations

import datetime as dt
import uuid
import xml.etree.ElementTree as ET  # noqa: S405 - parsing our own test responses

import pytest
from django.core import signing
from twilio.request_validator import RequestValidator

from enrollment.models import ContactMethod
from events import services
from events.channels.wctp import message_id_for
from events.models import EscalationStep, InboundMessage, Notification, Participation
from events.notices import REPLY_TOKEN_SALT, compose, reply_link
from tests.enrollment.factories import ContactMethodFactory
from tests.events.conftest import STUB_AUTH_TOKEN
from tests.stubs.wctp import message_reply, status_info

pytestmark = pytest.mark.django_db

SITE_URL = "https://dr.example.com"
P = Participation.Status
N = Notification.Status


@pytest.fixture(autouse=True)
def _twilio_settings(settings) -> None:
    settings.TWILIO_AUTH_TOKEN = STUB_AUTH_TOKEN
    settings.SITE_URL = SITE_URL


def _signed_post(client, path: str, params: dict[str, str], *, token: str = STUB_AUTH_TOKEN):
    signature = RequestValidator(token).compute_signature(f"{SITE_URL}{path}", params)
    return client.post(path, params, HTTP_X_TWILIO_SIGNATURE=signature)


def sms(client, sender: str, body: str, **kwargs):
    return _signed_post(
        client, "/hooks/twilio/sms/", {"From": sender, "Body": body, "MessageSid": "SMx"}, **kwargs
    )


def said(response) -> str:
    """The text of the TwiML ``<Message>`` (or ``<Say>``) elements of a response."""
    root = ET.fromstring(response.content)  # noqa: S314 - our own response
    return " ".join((node.text or "") for node in root.iter() if node.tag in ("Message", "Say"))


LEE = "+12125550202"
DANA = "+12125550101"


@pytest.fixture
def northside_participation(call_event_soon) -> Participation:
    event = call_event_soon()
    return event.participations.get(enrollment__site__name="Northside Campus")


# --- SMS -------------------------------------------------------------------------------


def test_a_reply_of_1_acknowledges_the_senders_open_notice(client, northside_participation):
    response = sms(client, LEE, "1")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert said(response).startswith("Thank you: Northside Campus acknowledged the event of")
    northside_participation.refresh_from_db()
    assert northside_participation.status == P.ACKNOWLEDGED
    assert northside_participation.acknowledged_via == "sms"
    stored = InboundMessage.objects.get()
    assert (stored.action, stored.participation, stored.sender) == (
        "acknowledged", northside_participation, LEE,
    )  # fmt: skip
    assert stored.notification.participation == northside_participation


@pytest.mark.parametrize("word", ["YES", "ack", " Ack! thanks"])
def test_yes_and_ack_acknowledge_too(client, northside_participation, word):
    sms(client, LEE, word)
    northside_participation.refresh_from_db()
    assert northside_participation.status == P.ACKNOWLEDGED


def test_a_reply_of_2_opts_out_before_the_cutoff(client, northside_participation):
    response = sms(client, LEE, "2")
    assert said(response) == "Northside Campus is opted out of this event."
    northside_participation.refresh_from_db()
    assert (northside_participation.status, northside_participation.opted_out_via) == (
        P.OPTED_OUT, "sms",
    )  # fmt: skip


def test_an_opt_out_after_the_cutoff_is_refused_with_the_reason(
    client, northside_participation, program
):
    program.opt_out_cutoff_minutes = 600
    program.save()
    response = sms(client, LEE, "OUT")
    assert said(response).startswith("Opt-outs for this event closed at")
    northside_participation.refresh_from_db()
    assert northside_participation.status == P.PENDING
    assert InboundMessage.objects.get().action == "refused"


def test_an_opt_out_is_refused_where_the_program_allows_none(
    client, northside_participation, program
):
    program.opt_outs_per_season = 0
    program.save()
    assert said(sms(client, LEE, "2")) == "This program does not allow opting out of events."


def test_stop_disables_the_number_and_start_enables_it_again(client, methods):
    response = sms(client, LEE, "STOP")
    assert "no longer receive" in said(response)
    method = ContactMethod.objects.get(pk=methods["lee_sms"].pk)
    assert method.disabled_at is not None and method.disabled_reason == "STOP reply"
    # The voice line on the same number is another method: STOP is about messages.
    assert ContactMethod.objects.get(pk=methods["lee_voice"].pk).disabled_at is None
    assert "again" in said(sms(client, LEE, "START"))
    assert ContactMethod.objects.get(pk=methods["lee_sms"].pk).disabled_at is None
    assert list(InboundMessage.objects.order_by("pk").values_list("action", flat=True)) == [
        "stop", "start",
    ]  # fmt: skip


def test_start_never_undoes_a_provider_disabling(client, methods):
    ContactMethod.objects.filter(pk=methods["lee_sms"].pk).update(
        disabled_at=dt.datetime(2026, 7, 1, tzinfo=dt.UTC), disabled_reason="Twilio error 21211"
    )
    sms(client, LEE, "START")
    assert ContactMethod.objects.get(pk=methods["lee_sms"].pk).disabled_at is not None


def test_help_explains_how_to_answer(client, methods):
    assert "Reply 1 to acknowledge" in said(sms(client, LEE, "help"))


def test_an_unknown_sender_is_stored_and_told_nothing(client, northside_participation):
    response = sms(client, "+19998887777", "1")
    text = said(response)
    assert text.startswith("This number is not registered")
    assert "Northside" not in text and "event of" not in text
    stored = InboundMessage.objects.get()
    assert (stored.action, stored.participation) == ("unknown_sender", None)
    northside_participation.refresh_from_db()
    assert northside_participation.status == P.PENDING


def test_a_reply_with_no_open_event_says_so(client, methods):
    assert said(sms(client, LEE, "1")) == "There is no open event to answer."


def test_an_invalid_signature_is_refused(client, northside_participation):
    assert sms(client, LEE, "1", token="not-the-token").status_code == 403
    assert client.post("/hooks/twilio/sms/", {"From": LEE, "Body": "1"}).status_code == 403
    assert not InboundMessage.objects.exists()
    northside_participation.refresh_from_db()
    assert northside_participation.status == P.PENDING


# --- Twilio status callbacks ------------------------------------------------------------


def _status(client, notification_uuid, **params):
    return _signed_post(client, f"/hooks/twilio/status/{notification_uuid}/", params)


def test_status_callbacks_only_move_forward(client, northside_participation):
    notification = northside_participation.notifications.get()
    Notification.objects.filter(pk=notification.pk).update(status=N.SENT)
    assert _status(client, notification.uuid, MessageStatus="delivered").status_code == 200
    for late in ("sent", "queued", "delivered", "failed"):
        assert _status(client, notification.uuid, MessageStatus=late).status_code == 200
    notification.refresh_from_db()
    assert notification.status == N.DELIVERED and notification.delivered_at is not None
    actions = list(notification.inbound.order_by("pk").values_list("action", flat=True))
    assert actions == ["status", "ignored", "ignored", "ignored", "ignored"]


def test_an_undelivered_message_fails_and_the_next_method_is_tried(client, northside_participation):
    notification = northside_participation.notifications.get()
    Notification.objects.filter(pk=notification.pk).update(status=N.SENT)
    _status(client, notification.uuid, MessageStatus="undelivered", ErrorCode="30003")
    notification.refresh_from_db()
    assert (notification.status, notification.error_code) == (N.FAILED, "30003")
    step = EscalationStep.objects.get(participation=northside_participation)
    assert step.reason == "delivery_failed"
    assert step.notifications.get().contact_method.kind == "voice"


def test_call_statuses_map_to_delivery(client, northside_participation):
    notification = northside_participation.notifications.get()
    _status(client, notification.uuid, CallStatus="ringing")
    notification.refresh_from_db()
    assert notification.status == N.SENT
    _status(client, notification.uuid, CallStatus="completed")
    notification.refresh_from_db()
    assert notification.status == N.DELIVERED


def test_a_callback_for_an_unknown_notification_still_answers_200(client, db):
    response = _status(client, uuid.uuid4(), MessageStatus="delivered")
    assert response.status_code == 200
    assert InboundMessage.objects.get().action == "ignored"


def test_a_status_callback_with_a_bad_signature_is_refused(client, northside_participation):
    notification = northside_participation.notifications.get()
    path = f"/hooks/twilio/status/{notification.uuid}/"
    response = client.post(path, {"MessageStatus": "delivered"}, HTTP_X_TWILIO_SIGNATURE="bad")
    assert response.status_code == 403


# --- voice keypresses -------------------------------------------------------------------


def _gather(client, notification_uuid, digits):
    return _signed_post(
        client, f"/hooks/twilio/voice/{notification_uuid}/gather/", {"Digits": digits}
    )


def test_pressing_1_acknowledges_and_2_opts_out(client, northside_participation, call_event_soon):
    notification = northside_participation.notifications.get()
    response = _gather(client, notification.uuid, "1")
    assert "acknowledgement has been recorded" in said(response)
    northside_participation.refresh_from_db()
    assert (northside_participation.status, northside_participation.acknowledged_via) == (
        P.ACKNOWLEDGED, "voice",
    )  # fmt: skip
    assert "opted out" in said(_gather(client, notification.uuid, "2"))
    northside_participation.refresh_from_db()
    assert northside_participation.status == P.OPTED_OUT


def test_a_wrong_key_repeats_the_menu(client, northside_participation):
    notification = northside_participation.notifications.get()
    response = _gather(client, notification.uuid, "9")
    assert b"<Gather" in response.content and b"not a valid choice" in response.content


def test_a_keypress_for_an_unknown_notice_reveals_nothing(client, db):
    response = _gather(client, uuid.uuid4(), "1")
    assert said(response) == "This notice can no longer be answered by phone. Goodbye."


# --- WCTP -------------------------------------------------------------------------------


@pytest.fixture
def pager_notification(methods, call_event_soon) -> Notification:
    ContactMethodFactory(
        contact=methods["lee_sms"].contact, kind=ContactMethod.Kind.PAGER_WCTP,
        address="4045551234", escalation_order=1,
    )  # fmt: skip
    event = call_event_soon()
    return event.notifications.get(contact_method__kind="pager_wctp")


def _wctp(client, document: bytes):
    return client.post("/hooks/wctp/", document, content_type="text/xml")


def test_wctp_status_notices_move_the_notification_forward(client, pager_notification):
    message_id = message_id_for(pager_notification.uuid)
    response = _wctp(client, status_info(message_id, "DELIVERED"))
    assert b"wctp-Success" in response.content
    _wctp(client, status_info(message_id, "QUEUED"))
    pager_notification.refresh_from_db()
    assert pager_notification.status == N.DELIVERED


def test_a_pager_reply_acknowledges(client, pager_notification):
    _wctp(client, message_reply(message_id_for(pager_notification.uuid), "1"))
    participation = pager_notification.participation
    participation.refresh_from_db()
    assert (participation.status, participation.acknowledged_via) == (P.ACKNOWLEDGED, "wctp")


def test_a_multiple_choice_reply_opts_out(client, pager_notification):
    _wctp(client, message_reply(message_id_for(pager_notification.uuid), "Opt out", mcr=True))
    participation = pager_notification.participation
    participation.refresh_from_db()
    assert participation.status == P.OPTED_OUT


def test_a_reply_without_our_message_id_is_matched_by_pager_id(client, pager_notification):
    _wctp(client, message_reply("carrier-own-id", "YES"))
    participation = pager_notification.participation
    participation.refresh_from_db()
    assert participation.status == P.ACKNOWLEDGED


def test_a_document_that_is_not_wctp_gets_a_failure_confirmation(client, db):
    response = _wctp(client, b"<hello/>")
    assert response.status_code == 200
    assert b'errorCode="301"' in response.content


def test_a_status_for_an_unknown_message_is_accepted_and_ignored(client, db):
    response = _wctp(client, status_info(uuid.uuid4().hex, "DELIVERED"))
    assert b"wctp-Success" in response.content
    assert InboundMessage.objects.get().action == "ignored"


# --- email links ------------------------------------------------------------------------


@pytest.fixture
def harbor_participation(call_event_soon) -> Participation:
    return call_event_soon().participations.get(enrollment__site__name="Harbor North")


def test_notice_emails_carry_signed_acknowledge_and_opt_out_links(harbor_participation):
    notification = harbor_participation.notifications.first()
    email = Notification(
        event=notification.event, participation=harbor_participation,
        contact_method=ContactMethod.objects.get(kind="email"), kind="notice",
    )  # fmt: skip
    content = compose(email)
    assert content.reply_links["acknowledge"].startswith(f"{SITE_URL}/hooks/email/")
    assert content.reply_links["acknowledge"] in content.text
    assert content.reply_links["opt_out"] in content.text


def test_an_email_link_confirms_on_get_and_acts_only_on_post(client, harbor_participation):
    url = reply_link(harbor_participation, "acknowledge").removeprefix(SITE_URL)
    page = client.get(url)
    assert page.status_code == 200
    assert b'<form method="post">' in page.content and b"Harbor North" in page.content
    harbor_participation.refresh_from_db()
    assert harbor_participation.status == P.PENDING  # a mail scanner's GET changes nothing
    done = client.post(url)
    assert b"Thank you: Harbor North acknowledged" in done.content
    harbor_participation.refresh_from_db()
    assert (harbor_participation.status, harbor_participation.acknowledged_via) == (
        P.ACKNOWLEDGED, "email",
    )  # fmt: skip
    assert InboundMessage.objects.get().channel == "email_link"


def test_an_opt_out_link_opts_out(client, harbor_participation):
    client.post(reply_link(harbor_participation, "opt_out").removeprefix(SITE_URL))
    harbor_participation.refresh_from_db()
    assert harbor_participation.status == P.OPTED_OUT


def test_a_forged_or_tampered_link_is_not_found(client, harbor_participation):
    forged = signing.dumps({"p": harbor_participation.pk, "a": "opt_out"}, salt="other-salt")
    assert client.get(f"/hooks/email/{forged}/").status_code == 404
    good = reply_link(harbor_participation, "acknowledge").removeprefix(SITE_URL)
    assert client.post(good.replace("/hooks/email/", "/hooks/email/x")).status_code == 404
    assert REPLY_TOKEN_SALT  # the salt is what separates these tokens from any other


def test_a_link_expires_when_the_event_is_over_or_cancelled(
    client, harbor_participation, manager_user
):
    url = reply_link(harbor_participation, "acknowledge").removeprefix(SITE_URL)
    services.event_cancel(event=harbor_participation.event, by=manager_user, reason="Relief")
    response = client.post(url)
    assert response.status_code == 410
    harbor_participation.refresh_from_db()
    assert harbor_participation.status == P.PENDING
