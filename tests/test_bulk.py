"""insert_instances: what goes in comes back, byte for byte, with ids (COPY on PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dr_platform.bulk import insert_instances, new_instances
from dr_platform.models import OutboxMessage
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

AWKWARD = "back\\slash, tab\t, newline\n, return\r, quote ' \" , \\N, unicode é ✓"


def test_it_stores_awkward_text_nulls_and_uuids_and_sets_the_ids():
    organization = OrganizationFactory()
    reference = uuid.uuid4()
    rows = [
        OutboxMessage(kind="sms", address="+12125550101", body=AWKWARD, reference=reference),
        OutboxMessage(kind="email", address="a@example.com", subject="\\N", body="",
                      organization=organization),
    ]  # fmt: skip
    before = dt.datetime.now(dt.UTC)
    with CaptureQueriesContext(connection) as queries:
        insert_instances(OutboxMessage, rows)
    writes = [q["sql"] for q in queries if q["sql"].startswith(("COPY", "INSERT"))]
    assert len(writes) == 1
    assert writes[0].startswith("COPY" if connection.vendor == "postgresql" else "INSERT")
    assert all(row.pk is not None and not row._state.adding for row in rows)
    first, second = (OutboxMessage.objects.get(pk=row.pk) for row in rows)
    assert (first.body, first.reference, first.organization_id) == (AWKWARD, reference, None)
    assert (second.subject, second.body, second.organization_id) == ("\\N", "", organization.pk)
    assert first.created_at >= before - dt.timedelta(seconds=1)  # auto_now_add filled


def test_it_keeps_json_with_escapes_intact(notification_payload_row):
    notification, payload = notification_payload_row
    from events.models import Notification

    assert Notification.objects.get(pk=notification.pk).payload == payload


@pytest.fixture
def notification_payload_row():
    from events.models import Notification
    from tests.events.conftest import NOW

    payload = {"note": AWKWARD, "nested": {"list": [1, "2\\n", None, True]}}
    from tests.enrollment.factories import ContactMethodFactory, EnrollmentFactory, ProgramFactory
    from tests.factories import staff_user

    program = ProgramFactory()
    enrollment = EnrollmentFactory(program=program)
    method = ContactMethodFactory()
    from events.models import Event, Participation

    event = Event.objects.create(
        program=program, kind="test", starts_at=NOW + dt.timedelta(hours=2),
        ends_at=NOW + dt.timedelta(hours=3), created_by=staff_user("Program managers"),
    )  # fmt: skip
    participation = Participation(event=event, enrollment=enrollment, committed_kw=10)
    insert_instances(Participation, [participation])
    notification = Notification(
        event=event, participation=participation, contact_method=method, kind="notice",
        channel="sandbox", next_attempt_at=NOW, queued_at=NOW, payload=payload,
    )  # fmt: skip
    insert_instances(Notification, [notification])
    return notification, payload


def test_it_refuses_rows_that_already_have_an_id():
    message = OutboxMessage.objects.create(kind="sms", address="+1", body="x")
    if connection.vendor != "postgresql":
        pytest.skip("the COPY path (PostgreSQL) is the one that checks; SQLite uses bulk_create")
    with pytest.raises(ValueError, match="new OutboxMessage rows only"):
        insert_instances(OutboxMessage, [message])


def test_new_instances_equal_keyword_construction_with_fresh_defaults_per_row():
    from events.models import Notification

    now = dt.datetime(2026, 7, 15, 18, 0, tzinfo=dt.UTC)
    given = {"event_id": 7, "participation_id": 8, "contact_method_id": 9, "kind": "notice",
             "channel": "sms", "next_attempt_at": now, "queued_at": now}  # fmt: skip

    first, second = new_instances(Notification, [given, {**given, "payload": {"a": 1}}])
    expected = Notification(**given)

    for field in Notification._meta.concrete_fields:
        if field.attname not in ("uuid", "payload"):
            assert getattr(first, field.attname) == getattr(expected, field.attname), field.name
    assert first.pk is None and first._state.adding
    assert first.status == Notification.Status.QUEUED and first.attempts == 0  # defaults
    assert isinstance(first.uuid, uuid.UUID) and first.uuid != second.uuid  # one per row
    assert first.payload == {} and second.payload == {"a": 1}
    assert first.payload is not new_instances(Notification, [given])[0].payload


def test_new_instances_refuses_a_name_that_is_not_a_field_attribute():
    from events.models import Notification

    with pytest.raises(TypeError, match="'event'"):
        new_instances(Notification, [{"event": None}])
