"""A program's weekend and holiday baseline method: set in the admin beside the main one,
checked as the main one is, published in the API, and given to the demo's program."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from dr_platform.demo import load_foundation
from enrollment.demo import PROGRAM_NAME, load_enrollment_demo
from enrollment.models import Enrollment, Organization, Program, Site
from tests.enrollment.factories import ProgramFactory
from tests.enrollment.test_admin_enrollment import _program_form

pytestmark = pytest.mark.django_db


def _signed_in(client, user):
    client.force_login(user)
    return client


def test_a_manager_gives_a_program_a_weekend_method_with_overrides(client, manager):
    data = _program_form(
        baseline_preset="caiso_10_of_10",
        weekend_baseline_preset="caiso_weekend_4_of_4",
        weekend_baseline_overrides=json.dumps({"lookback_days": 60}),
    )

    response = _signed_in(client, manager).post(reverse("admin:enrollment_program_add"), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    program = Program.objects.get(name="Winter Peak 2026")
    assert program.weekend_baseline_preset == "caiso_weekend_4_of_4"
    assert program.weekend_baseline_overrides == {"lookback_days": 60}


def test_a_program_added_without_a_weekend_method_keeps_one_method(client, manager):
    response = _signed_in(client, manager).post(
        reverse("admin:enrollment_program_add"), _program_form()
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    program = Program.objects.get(name="Winter Peak 2026")
    assert (program.weekend_baseline_preset, program.weekend_baseline_overrides) == ("", {})


def test_the_admin_shows_the_weekend_method_beside_the_main_one(client, manager):
    response = _signed_in(client, manager).get(reverse("admin:enrollment_program_add"))

    body = response.content.decode()
    assert 'name="weekend_baseline_preset"' in body
    assert 'name="weekend_baseline_overrides"' in body
    assert "Empty: the main baseline method measures every event." in body
    fields = response.context["adminform"].form.fields
    assert fields["weekend_baseline_preset"].required is False
    assert body.index('name="baseline_overrides"') < body.index('name="weekend_baseline_preset"')
    assert body.index('name="weekend_baseline_overrides"') < body.index(
        'name="capacity_rate_per_kw_month"'
    )


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (
            {"weekend_baseline_overrides": json.dumps({"pool_dayz": 3})},
            "weekend_baseline_overrides",
            "These overrides do not make a valid caiso_weekend_4_of_4 method: unknown "
            "override(s) for baseline preset 'caiso_weekend_4_of_4': pool_dayz; allowed:",
        ),
        (
            {"weekend_baseline_overrides": json.dumps({"select_days": 6})},
            "weekend_baseline_overrides",
            "select_days must be between 1 and pool_days (4), got 6.",
        ),
        (
            {"weekend_baseline_overrides": json.dumps({"pool_days": "4"})},
            "weekend_baseline_overrides",
            "pool_days must be an int, got '4'.",
        ),
        (
            {"weekend_baseline_overrides": "[2, 2]"},
            "weekend_baseline_overrides",
            "Overrides are an object of parameter names to values.",
        ),
        (
            {
                "weekend_baseline_preset": "",
                "weekend_baseline_overrides": json.dumps({"pool_days": 2}),
            },
            "weekend_baseline_overrides",
            "These overrides need a weekend and holiday method: choose one, or clear them.",
        ),
        (
            {"weekend_baseline_preset": "caiso_weekend_9_of_9"},
            "weekend_baseline_preset",
            "Select a valid choice. caiso_weekend_9_of_9 is not one of the available choices.",
        ),
        # The main method is checked the same way.
        (
            {"baseline_overrides": json.dumps({"select_days": 6})},
            "baseline_overrides",
            "These overrides do not make a valid pjm_high_4_of_5 method: select_days must be "
            "between 1 and pool_days (5), got 6.",
        ),
    ],
)
def test_a_bad_baseline_method_is_a_form_error_that_says_what_is_wrong(
    client, manager, overrides, field, message
):
    data = _program_form(**{"weekend_baseline_preset": "caiso_weekend_4_of_4", **overrides})

    response = _signed_in(client, manager).post(reverse("admin:enrollment_program_add"), data)

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert message in " ".join(form.errors[field])
    assert not Program.objects.exists()


def test_the_api_publishes_the_weekend_method(client, participant_a):
    program = ProgramFactory(
        weekend_baseline_preset="caiso_weekend_4_of_4",
        weekend_baseline_overrides={"lookback_days": 60},
    )
    client.force_login(participant_a)

    detail = client.get(f"/api/programs/{program.pk}/").json()

    assert detail["baseline_preset"] == "caiso_10_of_10"
    assert detail["weekend_baseline_preset"] == "caiso_weekend_4_of_4"
    assert detail["weekend_baseline_overrides"] == {"lookback_days": 60}


# --- demo data ------------------------------------------------------------------------------


def _counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count() for model in (Program, Organization, Site, Enrollment)
    }


def test_the_enrollment_demo_loads_twice_and_its_program_gets_the_weekend_method(settings):
    settings.NOTIFICATION_MODE = "sandbox"
    load_foundation()
    load_enrollment_demo()
    program = Program.objects.get(name=PROGRAM_NAME)
    assert (program.baseline_preset, program.weekend_baseline_preset) == (
        "nyiso_high_5_of_10",
        "nyiso_weekend_high_2_of_3",
    )
    before = _counts()
    # As a demo loaded before programs had a weekend method left it.
    Program.objects.filter(pk=program.pk).update(weekend_baseline_preset="")

    load_enrollment_demo()

    assert _counts() == before
    program.refresh_from_db()
    assert program.weekend_baseline_preset == "nyiso_weekend_high_2_of_3"
