"""Contacts in the portal: adding people and methods, verifying a method end to end."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from dr_platform.models import Membership, OutboxMessage
from enrollment.models import Contact, ContactMethod
from tests.enrollment.factories import ContactFactory, ContactMethodFactory, SiteFactory
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def contact(organization_a):
    return ContactFactory(organization=organization_a, name="Dana Ortiz", title="Plant manager")


def contacts_url(organization) -> str:
    return f"/portal/o/{organization.pk}/contacts/"


def method_url(organization, method, action: str) -> str:
    return f"/portal/o/{organization.pk}/methods/{method.pk}/{action}/"


def code_in_outbox(method: ContactMethod) -> str:
    message = OutboxMessage.objects.filter(address=method.address).latest("created_at", "pk")
    return re.search(r"\b(\d{6})\b", message.body).group(1)


def test_the_contacts_page_lists_methods_with_their_state(client, participant_a, contact):
    ContactMethodFactory(contact=contact, address="+12125550101", escalation_order=1)
    ContactMethodFactory(
        contact=contact, address="+12125550102", escalation_order=2, verified_at=None
    )
    ContactMethodFactory(
        contact=contact,
        kind="email",
        address="dana@example.com",
        escalation_order=3,
        disabled_at=timezone.now(),
        disabled_reason="STOP reply",
    )
    client.force_login(participant_a)

    page = client.get(contacts_url(contact.organization)).content.decode()

    assert "Dana Ortiz" in page and "Plant manager" in page
    assert "+12125550101" in page and "dana@example.com" in page
    assert '<span class="badge ok">Verified</span>' in page
    assert '<span class="badge warn">Not verified</span>' in page
    assert 'class="badge bad"' in page and "Disabled" in page
    assert page.index("+12125550101") < page.index("+12125550102") < page.index("dana@")


def test_an_admin_adds_a_contact_for_some_sites(client, participant_a, organization_a):
    site = SiteFactory(organization=organization_a, name="Cold Store 1")
    SiteFactory(organization=organization_a, name="Cold Store 2")
    client.force_login(participant_a)

    response = client.post(
        f"/portal/o/{organization_a.pk}/contacts/add/",
        {"name": "Sam Lee", "title": "Engineer", "sites": [site.pk]},
        follow=True,
    )

    contact = Contact.objects.get(name="Sam Lee")
    assert contact.organization == organization_a
    assert contact.title == "Engineer"
    assert list(contact.sites.all()) == [site]
    assert response.redirect_chain[-1][0] == (
        f"/portal/o/{organization_a.pk}/contacts/{contact.pk}/methods/add/"
    )
    assert "Sam Lee was added" in response.content.decode()


def test_a_contact_needs_a_name(client, participant_a, organization_a):
    client.force_login(participant_a)
    response = client.post(f"/portal/o/{organization_a.pk}/contacts/add/", {"name": ""})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not Contact.objects.exists()


def test_an_operator_may_add_methods(client, organization_a, contact):
    operator = MembershipFactory(organization=organization_a, role=Membership.Role.OPERATOR).user
    client.force_login(operator)
    client.post(
        f"/portal/o/{organization_a.pk}/contacts/{contact.pk}/methods/add/",
        {"kind": "sms", "address": "(212) 555-0199"},
    )
    method = ContactMethod.objects.get(contact=contact)
    assert method.address == "+12125550199"
    assert method.verified_at is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "sms", "address": "12"}, "is not a valid phone number"),
        ({"kind": "pager_wctp", "address": "5551234"}, "A WCTP pager needs its paging gateway"),
        (
            {"kind": "pager_snpp", "address": "5551234", "snpp_host": "paging.example.com"},
            "Give the paging server as host:port.",
        ),
        ({"kind": "email", "address": "not-an-email"}, "is not an email address."),
    ],
)
def test_a_bad_method_is_explained_on_the_form(
    client, participant_a, organization_a, contact, data, message
):
    client.force_login(participant_a)
    response = client.post(
        f"/portal/o/{organization_a.pk}/contacts/{contact.pk}/methods/add/", data
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ContactMethod.objects.exists()


def test_pagers_keep_their_endpoint_and_server(
    client, participant_a, organization_a, contact, settings
):
    settings.WCTP_TRUSTED_GATEWAYS = ["https://wctp.example.com/wctp"]
    client.force_login(participant_a)
    url = f"/portal/o/{organization_a.pk}/contacts/{contact.pk}/methods/add/"
    client.post(
        url,
        {
            "kind": "pager_wctp",
            "address": "5551234",
            "wctp_endpoint": "https://wctp.example.com/wctp",
        },
    )
    client.post(
        url, {"kind": "pager_snpp", "address": "5551235", "snpp_host": "snpp.example.com:444"}
    )
    wctp = ContactMethod.objects.get(kind="pager_wctp")
    snpp = ContactMethod.objects.get(kind="pager_snpp")
    assert wctp.wctp_endpoint == "https://wctp.example.com/wctp"
    assert snpp.snpp_host == "snpp.example.com:444"


def test_the_form_offers_only_the_platforms_wctp_gateways(
    client, participant_a, organization_a, contact, settings
):
    settings.WCTP_TRUSTED_GATEWAYS = ["https://wctp.carrier-one.example/wctp"]
    client.force_login(participant_a)
    url = f"/portal/o/{organization_a.pk}/contacts/{contact.pk}/methods/add/"

    page = client.get(url).content.decode()
    response = client.post(
        url,
        {"kind": "pager_wctp", "address": "4242", "wctp_endpoint": "https://collector.example/"},
    )

    assert '<option value="https://wctp.carrier-one.example/wctp">' in page
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not ContactMethod.objects.filter(kind="pager_wctp").exists()


def test_verification_end_to_end_with_the_code_from_the_outbox(
    client, participant_a, organization_a, contact
):
    client.force_login(participant_a)

    added = client.post(
        f"/portal/o/{organization_a.pk}/contacts/{contact.pk}/methods/add/",
        {"kind": "sms", "address": "+1 212 555 0142"},
    )
    method = ContactMethod.objects.get(contact=contact)
    assert added["Location"] == method_url(organization_a, method, "verify")

    sent = client.post(method_url(organization_a, method, "send-code"), follow=True)
    assert "A code was sent to SMS +12125550142" in sent.content.decode()
    code = code_in_outbox(method)
    assert OutboxMessage.objects.get(address="+12125550142").organization == organization_a
    assert code in sent.content.decode()  # the sandbox outbox shows it on the page

    wrong = "000000" if code != "000000" else "111111"
    refused = client.post(method_url(organization_a, method, "verify"), {"code": wrong})
    assert "That code is not right; 4 attempt(s) left." in refused.content.decode()
    method.refresh_from_db()
    assert method.verified_at is None

    accepted = client.post(
        method_url(organization_a, method, "verify"), {"code": code}, follow=True
    )
    assert accepted.redirect_chain[-1][0] == contacts_url(organization_a)
    assert "is verified" in accepted.content.decode()
    method.refresh_from_db()
    assert method.verified_at is not None
    assert '<span class="badge ok">Verified</span>' in accepted.content.decode()


def test_a_second_code_within_a_minute_asks_to_wait(client, participant_a, contact):
    method = ContactMethodFactory(contact=contact, verified_at=None)
    organization = contact.organization
    client.force_login(participant_a)
    client.post(method_url(organization, method, "send-code"))

    again = client.post(method_url(organization, method, "send-code"), follow=True)

    assert "please wait before asking again" in again.content.decode()
    assert OutboxMessage.objects.filter(address=method.address).count() == 1


def test_an_expired_code_is_refused(client, participant_a, contact):
    method = ContactMethodFactory(contact=contact, verified_at=None)
    organization = contact.organization
    client.force_login(participant_a)
    client.post(method_url(organization, method, "send-code"))
    code = code_in_outbox(method)
    ContactMethod.objects.filter(pk=method.pk).update(
        verification_sent_at=timezone.now() - dt.timedelta(minutes=31)
    )

    response = client.post(method_url(organization, method, "verify"), {"code": code})

    assert "This code has expired; send a new one." in response.content.decode()
    method.refresh_from_db()
    assert method.verified_at is None


def test_verifying_before_any_code_was_sent_says_so(client, participant_a, contact):
    method = ContactMethodFactory(contact=contact, verified_at=None)
    client.force_login(participant_a)
    response = client.post(method_url(contact.organization, method, "verify"), {"code": "123456"})
    assert "Send a code first." in response.content.decode()


def test_removing_a_method_deletes_it(client, participant_a, contact):
    method = ContactMethodFactory(contact=contact)
    client.force_login(participant_a)
    response = client.post(method_url(contact.organization, method, "remove"), follow=True)
    assert response.redirect_chain[-1][0] == contacts_url(contact.organization)
    assert "was removed from Dana Ortiz" in response.content.decode()
    assert not ContactMethod.objects.filter(pk=method.pk).exists()


def test_the_sandbox_outbox_shows_only_this_organizations_messages(
    client, participant_a, organization_a, organization_b, contact
):
    OutboxMessage.objects.create(
        kind="sms", address="+12125550150", body="Your code is 424242", organization=organization_a
    )
    OutboxMessage.objects.create(
        kind="sms", address="+12125550160", body="Your code is 737373", organization=organization_b
    )
    client.force_login(participant_a)
    page = client.get(contacts_url(organization_a)).content.decode()
    assert "demo sandbox" in page
    assert "424242" in page
    assert "737373" not in page


def test_the_outbox_is_hidden_when_notifications_are_live(
    client, participant_a, organization_a, contact, settings
):
    settings.NOTIFICATION_MODE = "live"
    OutboxMessage.objects.create(
        kind="sms", address="+12125550150", body="Your code is 424242", organization=organization_a
    )
    client.force_login(participant_a)
    page = client.get(contacts_url(organization_a)).content.decode()
    assert "demo sandbox" not in page
    assert "424242" not in page


# --- webhook signing secrets ----------------------------------------------------------------


def rotate_url(organization, method) -> str:
    return method_url(organization, method, "rotate-secret")


@pytest.fixture
def webhook(contact):
    return ContactMethodFactory(
        contact=contact,
        kind="webhook",
        address="https://hooks.harbor.example/dr",
        webhook_secret="the-current-secret-of-harbors-receiver",
    )


def test_an_admin_sees_a_new_webhooks_secret_once_with_how_to_check_it(
    client, participant_a, organization_a, contact
):
    client.force_login(participant_a)

    response = client.post(
        f"/portal/o/{organization_a.pk}/contacts/{contact.pk}/methods/add/",
        {"kind": "webhook", "address": "https://hooks.harbor.example/dr"},
    )

    method = ContactMethod.objects.get(contact=contact, kind="webhook")
    page = response.content.decode()
    assert response.status_code == 200  # the answer to the POST itself, not a redirect
    assert len(method.webhook_secret) >= 32
    assert f'value="{method.webhook_secret}"' in page
    assert "X-DR-Signature" in page and "HMAC-SHA256" in page
    assert "no-store" in response["Cache-Control"]
    assert method_url(organization_a, method, "verify") in page
    # Afterwards no page shows it again.
    assert method.webhook_secret not in client.get(contacts_url(organization_a)).content.decode()
    verify_page = client.get(method_url(organization_a, method, "verify")).content.decode()
    assert method.webhook_secret not in verify_page


def test_an_operator_adding_a_webhook_is_sent_to_an_admin_for_the_secret(
    client, organization_a, contact
):
    operator = MembershipFactory(organization=organization_a, role=Membership.Role.OPERATOR).user
    client.force_login(operator)

    response = client.post(
        f"/portal/o/{organization_a.pk}/contacts/{contact.pk}/methods/add/",
        {"kind": "webhook", "address": "https://hooks.harbor.example/dr"},
        follow=True,
    )

    method = ContactMethod.objects.get(contact=contact, kind="webhook")
    page = response.content.decode()
    assert response.redirect_chain[-1][0] == method_url(organization_a, method, "verify")
    assert method.webhook_secret not in page
    assert "only shown to your organization&#x27;s administrators" in page


def test_an_admin_rotates_a_secret_and_sees_the_new_one_once(
    client, participant_a, organization_a, webhook
):
    client.force_login(participant_a)
    contacts_page = client.get(contacts_url(organization_a)).content.decode()
    assert rotate_url(organization_a, webhook) in contacts_page
    assert "X-DR-Signature" in contacts_page
    assert webhook.webhook_secret not in contacts_page

    response = client.post(rotate_url(organization_a, webhook))

    old = webhook.webhook_secret
    webhook.refresh_from_db()
    assert response.status_code == 200
    assert webhook.webhook_secret != old and len(webhook.webhook_secret) >= 32
    assert f'value="{webhook.webhook_secret}"' in response.content.decode()
    assert old not in response.content.decode()
    assert "no-store" in response["Cache-Control"]


def test_only_webhooks_have_a_secret_to_rotate(client, participant_a, organization_a, contact):
    sms = ContactMethodFactory(contact=contact)
    client.force_login(participant_a)
    response = client.post(rotate_url(organization_a, sms), follow=True)
    assert "Only webhook methods have a signing secret." in response.content.decode()
    sms.refresh_from_db()
    assert sms.webhook_secret == ""


def test_another_organizations_user_can_neither_see_nor_rotate_the_secret(
    client, participant_b, organization_a, organization_b, webhook
):
    client.force_login(participant_b)

    assert client.get(contacts_url(organization_a)).status_code == 404
    assert client.post(rotate_url(organization_a, webhook)).status_code == 404
    # Nor through their own organization's address.
    assert client.post(rotate_url(organization_b, webhook)).status_code == 404
    webhook.refresh_from_db()
    assert webhook.webhook_secret == "the-current-secret-of-harbors-receiver"


@pytest.mark.parametrize("role", [Membership.Role.VIEWER, Membership.Role.OPERATOR])
def test_members_who_are_not_admins_cannot_see_or_rotate_the_secret(
    client, organization_a, webhook, role
):
    member = MembershipFactory(organization=organization_a, role=role).user
    client.force_login(member)

    page = client.get(contacts_url(organization_a)).content.decode()
    response = client.post(rotate_url(organization_a, webhook))

    assert webhook.address in page  # the method itself is listed
    assert webhook.webhook_secret not in page
    assert rotate_url(organization_a, webhook) not in page
    assert response.status_code == 403
    webhook.refresh_from_db()
    assert webhook.webhook_secret == "the-current-secret-of-harbors-receiver"


# --- a failed send leaves the method as it was ---------------------------------------------


def test_after_a_failed_send_the_same_method_object_can_be_sent_a_code_again(
    participant_a, contact
):
    from django.core.exceptions import ValidationError

    from enrollment import services

    method = ContactMethodFactory(contact=contact, verified_at=None)
    earlier = timezone.now() - dt.timedelta(minutes=5)
    ContactMethod.objects.filter(pk=method.pk).update(
        verification_code_hash="digest-of-an-earlier-code",
        verification_sent_at=earlier,
        verification_attempts=2,
    )
    method.refresh_from_db()

    def refusing_sender(method, subject, body):
        raise ValidationError("The provider is not answering.")

    services.set_verification_sender(refusing_sender)
    try:
        with pytest.raises(ValidationError, match="not answering"):
            services.contact_method_send_verification(method=method, by=participant_a)
    finally:
        services.set_verification_sender(None)

    stored = ContactMethod.objects.get(pk=method.pk)
    fields = ("verification_code_hash", "verification_sent_at", "verification_attempts")
    for field in fields:
        assert getattr(method, field) == getattr(stored, field), field
    assert (method.verification_sent_at, method.verification_attempts) == (earlier, 2)

    # No "wait a minute": the failed attempt sent nothing.
    services.contact_method_send_verification(method=method, by=participant_a)
    stored.refresh_from_db()
    assert stored.verification_sent_at > earlier
    assert stored.verification_attempts == 0
    assert OutboxMessage.objects.filter(address=method.address).count() == 1
