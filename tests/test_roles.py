"""Staff roles: groups from the migration, permissions from dr_platform.roles."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from dr_platform.roles import AUDITORS, BILLING, PROGRAM_MANAGERS, sync_role_permissions

pytestmark = pytest.mark.django_db


def _codenames(group_name: str) -> set[str]:
    group = Group.objects.get(name=group_name)
    return set(group.permissions.values_list("codename", flat=True))


def test_the_migration_creates_the_three_staff_groups():
    assert set(Group.objects.values_list("name", flat=True)) >= {
        PROGRAM_MANAGERS,
        AUDITORS,
        BILLING,
    }


def test_program_managers_manage_organizations_and_memberships():
    codenames = _codenames(PROGRAM_MANAGERS)
    for action in ("view", "add", "change", "delete"):
        assert f"{action}_organization" in codenames
        assert f"{action}_membership" in codenames


def test_auditors_and_billing_only_read_organizations():
    for group_name in (AUDITORS, BILLING):
        codenames = _codenames(group_name)
        assert "view_organization" in codenames
        assert not codenames & {"add_organization", "change_organization", "delete_organization"}
        assert "change_membership" not in codenames


def test_syncing_twice_changes_nothing():
    before = {name: _codenames(name) for name in (PROGRAM_MANAGERS, AUDITORS, BILLING)}
    sync_role_permissions()
    sync_role_permissions()
    assert {name: _codenames(name) for name in before} == before


def test_a_manager_can_open_the_organization_admin_but_an_auditor_cannot_delete(
    client, manager, auditor, organization_a
):
    client.force_login(manager)
    assert client.get("/admin/enrollment/organization/").status_code == 200
    client.force_login(auditor)
    assert client.get("/admin/enrollment/organization/").status_code == 200
    delete_url = f"/admin/enrollment/organization/{organization_a.pk}/delete/"
    assert client.get(delete_url).status_code == 403
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    assert type(organization_a).objects.filter(pk=organization_a.pk).exists()


def test_a_participant_cannot_open_the_admin_or_the_console(client, participant_a):
    client.force_login(participant_a)
    assert client.get("/admin/").status_code == 302  # the admin's own login page
    assert client.get("/console/").status_code == 403
