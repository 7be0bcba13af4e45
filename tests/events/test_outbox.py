"""The sandbox outbox page: messages listed and filtered, and simulated replies that go
through the same inbound path as a real SMS, keypress or email link."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dr_platform.models import OutboxMessage
from events import services
from events.models import Event, InboundMessage, Participation
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

P = Participation.Status
LEE = "+12125550202"


@pytest.fixture
def manager_client(client, manager_user):
    client.force_login(manager_user)
    return client


@pytest.fixture
def event(call_event_soon) -> Event:
    """A scheduled event whose notices a worker has sent into the outbox."""
    event = call_event_soon()
    for notification_id in event.notifications.values_list("pk", flat=True):
        services.notification_send(notification_id)
    return event


def _outbox_message(address: str, kind: str = "sms") -> OutboxMessage:
    return OutboxMessage.objects.filter(address=address, kind=kind).latest("created_at", "pk")


def _reply(client, message: OutboxMessage, text: str):
    return client.post(
        reverse("console:outbox_reply", args=[message.pk]),
        {"text": text, "next": reverse("console:outbox") + "?kind=sms"},
        follow=True,
    )


def test_the_outbox_lists_the_latest_messages_and_filters_them(
    manager_client, event, northside, django_assert_max_num_queries
):
    with django_assert_max_num_queries(12):
        response = manager_client.get(reverse("console:outbox"))
    assert response.status_code == 200
    assert response.context["page_obj"].paginator.count == 3
    assert "Reply 1 to acknowledge" in response.content.decode()
    by_address = manager_client.get(reverse("console:outbox"), {"address": "5550202"})
    assert [m.address for m in by_address.context["page_obj"]] == [LEE]
    by_organization = manager_client.get(reverse("console:outbox"), {"organization": northside.pk})
    assert {m.organization_id for m in by_organization.context["page_obj"]} == {northside.pk}
    by_kind = manager_client.get(reverse("console:outbox"), {"kind": "sms"})
    assert by_kind.context["page_obj"].paginator.count == 3
    unknown_kind = manager_client.get(reverse("console:outbox"), {"kind": "fax"})
    assert "Select a valid choice" in unknown_kind.content.decode()


def test_a_simulated_reply_of_1_acknowledges_the_participation(manager_client, event):
    response = _reply(manager_client, _outbox_message(LEE), "1")
    assert response.redirect_chain[-1][0] == reverse("console:outbox") + "?kind=sms"
    participation = event.participations.get(enrollment__site__name="Northside Campus")
    assert participation.status == P.ACKNOWLEDGED
    assert participation.acknowledged_via == "sms"
    stored = InboundMessage.objects.get()
    assert (stored.channel, stored.sender, stored.action) == ("sms", LEE, "acknowledged")
    assert stored.raw["simulated"] is True
    assert "the platform answers: “Thank you: Northside Campus acknowledged" in (
        response.content.decode()
    )


def test_a_simulated_yes_then_2_opts_out_before_the_cutoff(manager_client, event):
    _reply(manager_client, _outbox_message(LEE), "YES")
    response = _reply(manager_client, _outbox_message(LEE), "2")
    participation = event.participations.get(enrollment__site__name="Northside Campus")
    assert participation.status == P.OPTED_OUT
    assert "Northside Campus is opted out of this event." in response.content.decode()


def test_a_simulated_stop_disables_the_sms_method(manager_client, event, methods):
    response = _reply(manager_client, _outbox_message(LEE), "STOP")
    methods["lee_sms"].refresh_from_db()
    methods["lee_voice"].refresh_from_db()
    assert methods["lee_sms"].disabled_at is not None
    assert methods["lee_voice"].disabled_at is None  # STOP is about text messages only
    assert InboundMessage.objects.get().action == InboundMessage.Action.STOP
    assert "You will no longer receive demand-response notices" in response.content.decode()
    participation = event.participations.get(enrollment__site__name="Northside Campus")
    assert participation.status == P.PENDING


def test_a_simulated_keypress_on_a_call_acknowledges(manager_client, event, methods):
    northside = event.participations.get(enrollment__site__name="Northside Campus")
    services.participation_escalate(participation=northside, now=event.scheduled_at)
    call = event.notifications.get(contact_method=methods["lee_voice"])
    services.notification_send(call.pk)
    response = _reply(manager_client, _outbox_message(LEE, kind="voice"), "1")
    northside.refresh_from_db()
    assert northside.status == P.ACKNOWLEDGED
    assert northside.acknowledged_via == "voice"
    assert "the platform answers:" in response.content.decode()


def test_a_reply_to_a_message_kind_without_replies_is_explained(manager_client, db):
    message = OutboxMessage.objects.create(kind="webhook", address="https://x.example", body="{}")
    response = _reply(manager_client, message, "1")
    assert "Replies can be simulated for event notices by SMS, voice or email." in (
        response.content.decode()
    )
    assert not InboundMessage.objects.exists()


def test_only_managers_may_simulate_replies(client, billing_clerk, event):
    client.force_login(billing_clerk)
    page = client.get(reverse("console:outbox"))
    assert page.status_code == 200
    assert "Send reply" not in page.content.decode()
    response = client.post(
        reverse("console:outbox_reply", args=[_outbox_message(LEE).pk]), {"text": "1"}
    )
    assert response.status_code == 403
    assert not InboundMessage.objects.exists()


def test_participants_and_auditors_may_not_open_the_outbox(client, auditor, northside, event):
    client.force_login(MembershipFactory(organization=northside).user)
    assert client.get(reverse("console:outbox")).status_code == 403
    client.force_login(auditor)
    assert client.get(reverse("console:outbox")).status_code == 403
