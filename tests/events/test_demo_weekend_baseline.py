"""The events demo's winter program measures weekend and holiday events with the weekend
variant of its weekday method, also when an earlier load created it without one."""

from __future__ import annotations

import pytest

from dr_platform.demo import load_foundation
from enrollment.models import Enrollment, Program
from events import demo
from events.models import Event, Participation
from tests.events.test_demo_events import _enrollment_demo_stand_in

pytestmark = pytest.mark.django_db


def _counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Program, Enrollment, Event, Participation)
    }


def test_the_events_demo_loads_twice_and_its_winter_program_gets_the_weekend_method(settings):
    settings.NOTIFICATION_MODE = "sandbox"
    load_foundation()
    _enrollment_demo_stand_in()
    demo.load_events_demo()
    winter = Program.objects.get(name=demo.WINTER_PROGRAM_NAME)
    assert winter.weekend_baseline_preset == "nyiso_weekend_high_2_of_3"
    before = _counts()
    Program.objects.filter(pk=winter.pk).update(weekend_baseline_preset="")

    demo.load_events_demo()

    assert _counts() == before
    winter.refresh_from_db()
    assert winter.weekend_baseline_preset == "nyiso_weekend_high_2_of_3"
    # The stand-in summer program uses CAISO 10 of 10 and was made by a factory, not a demo:
    # the events demo leaves it alone.
    summer = Program.objects.get(name=demo.SUMMER_PROGRAM_NAME)
    assert summer.weekend_baseline_preset == ""
