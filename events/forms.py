"""Forms of the events console: filters, calling and changing an event, simulated replies.

Event times are typed as wall-clock times of the *program's* time zone (whatever the
browser's or the server's zone); :func:`program_local` turns them into aware datetimes, and
the services store UTC. Rules are not checked here: the services return every broken rule
and the views show them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone

from dr_platform.models import OutboxMessage
from enrollment.models import Enrollment, Organization, Program, Site
from events.models import Event
from events.services.rules import time_range_error

DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


class WallClockDateTimeField(forms.DateTimeField):
    """A date and time as typed, returned naive: the form applies the program's zone."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL)

    def to_python(self, value: Any) -> dt.datetime | None:
        # Parsing under UTC never meets a DST gap; the zone is dropped again at once.
        with timezone.override(dt.UTC):
            result = super().to_python(value)
        return result.replace(tzinfo=None) if result is not None else None

    def prepare_value(self, value: Any) -> Any:
        # Initial values are already naive wall-clock times; never shift them.
        return value


def program_local(wall_clock: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """``wall_clock`` (naive) as an aware datetime in ``zone``, converted to UTC.

    Raises ``ValidationError`` for a time that does not exist in ``zone`` (skipped when the
    clocks go forward) and for one outside the years the platform handles. An ambiguous
    time (clocks going back) is its first occurrence.
    """
    out_of_range = time_range_error(wall_clock)
    if out_of_range:
        raise ValidationError(out_of_range)
    aware = wall_clock.replace(tzinfo=zone)
    utc = aware.astimezone(dt.UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != wall_clock:
        raise ValidationError(
            f"{wall_clock:%Y-%m-%d %H:%M} does not exist in {zone.key} (the clocks skip it)."
        )
    return utc


def program_wall_clock(moment: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The naive wall-clock time of the aware ``moment`` in ``zone`` (for initial values)."""
    return moment.astimezone(zone).replace(tzinfo=None)


def _distinct_site_values(field: str) -> list[tuple[str, str]]:
    values = (
        Site.objects.filter(enrollments__status=Enrollment.Status.ACTIVE)
        .exclude(**{field: ""})
        .order_by(field)
        .values_list(field, flat=True)
        .distinct()
    )
    return [(value, value) for value in values]


class EventFilterForm(forms.Form):
    """The event list's filters, read from the query string; all optional."""

    program = forms.ModelChoiceField(
        queryset=Program.objects.order_by("name"), required=False, empty_label="All programs"
    )
    status = forms.ChoiceField(
        choices=[("", "All statuses"), *Event.Status.choices], required=False
    )
    kind = forms.ChoiceField(choices=[("", "All kinds"), *Event.Kind.choices], required=False)

    def filtered(self) -> dict[str, Any]:
        """The valid filters as ORM lookups; invalid ones are dropped (and shown)."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        lookups: dict[str, Any] = {}
        if data.get("program"):
            lookups["program"] = data["program"]
        if data.get("status"):
            lookups["status"] = data["status"]
        if data.get("kind"):
            lookups["kind"] = data["kind"]
        return lookups


class SiteChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Site) -> str:
        where = " / ".join(value for value in (obj.zone, obj.substation, obj.feeder) if value)
        return f"{obj.name} — {obj.organization.legal_name}" + (f" ({where})" if where else "")


class TargetingForm(forms.Form):
    """Whom an event reaches: everyone, grid locations (a union), or chosen sites."""

    ALL, GRID, SITES = "all", "grid", "sites"

    targeting = forms.ChoiceField(
        choices=[
            (ALL, "All active enrollments of the program"),
            (GRID, "Zones, substations or feeders"),
            (SITES, "Chosen sites"),
        ],
        initial=ALL,
        widget=forms.RadioSelect,
    )
    zones = forms.MultipleChoiceField(required=False)
    substations = forms.MultipleChoiceField(required=False)
    feeders = forms.MultipleChoiceField(required=False)
    sites = SiteChoiceField(
        queryset=Site.objects.none(),
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 8}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["zones"].choices = _distinct_site_values("zone")
        self.fields["substations"].choices = _distinct_site_values("substation")
        self.fields["feeders"].choices = _distinct_site_values("feeder")
        self.fields["sites"].queryset = self.site_queryset()

    def site_queryset(self) -> QuerySet[Site]:
        return (
            Site.objects.filter(enrollments__status=Enrollment.Status.ACTIVE)
            .select_related("organization")
            .order_by("name", "pk")
            .distinct()
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        mode = data.get("targeting")
        if mode == self.GRID and not (
            data.get("zones") or data.get("substations") or data.get("feeders")
        ):
            raise ValidationError("Choose at least one zone, substation or feeder.")
        if mode == self.SITES and not data.get("sites"):
            self.add_error("sites", "Choose at least one site.")
        return data

    def targets(self) -> dict[str, list]:
        """The service's targeting keywords; all empty lists target everyone."""
        data = self.cleaned_data
        mode = data["targeting"]
        return {
            "zones": list(data.get("zones") or []) if mode == self.GRID else [],
            "substations": list(data.get("substations") or []) if mode == self.GRID else [],
            "feeders": list(data.get("feeders") or []) if mode == self.GRID else [],
            "sites": list(data.get("sites") or []) if mode == self.SITES else [],
        }

    @classmethod
    def initial_for(cls, event: Event) -> dict[str, Any]:
        """Initial targeting values describing ``event``'s current targeting."""
        site_ids = list(event.target_sites.values_list("pk", flat=True))
        grid = event.target_zones or event.target_substations or event.target_feeders
        mode = cls.SITES if site_ids and not grid else cls.GRID if grid else cls.ALL
        return {
            "targeting": mode,
            "zones": event.target_zones,
            "substations": event.target_substations,
            "feeders": event.target_feeders,
            "sites": site_ids,
        }


class EventCreateForm(TargetingForm):
    """Call an event: program, kind, local start and end, targeting and reason."""

    field_order = ["program", "kind", "starts_at", "ends_at", "targeting"]

    program = forms.ModelChoiceField(queryset=Program.objects.order_by("name"))
    kind = forms.ChoiceField(choices=Event.Kind.choices, initial=Event.Kind.ECONOMIC)
    starts_at = WallClockDateTimeField(
        label="Starts", help_text="Local time of the program's time zone."
    )
    ends_at = WallClockDateTimeField(
        label="Ends", help_text="Local time of the program's time zone."
    )
    reason = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why the event is called (grid emergency, price, drill ...).",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        program = data.get("program")
        if program is None:
            return data
        for name in ("starts_at", "ends_at"):
            if data.get(name) is not None:
                try:
                    data[name] = program_local(data[name], program.zone)
                except ValidationError as error:
                    self.add_error(name, error)
        return data


class EventModifyForm(TargetingForm):
    """Change a scheduled or active event: times (shorter, longer, moved) and targets."""

    field_order = ["starts_at", "ends_at", "targeting"]

    starts_at = WallClockDateTimeField(label="Starts")
    ends_at = WallClockDateTimeField(label="Ends")
    reason = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why it changes (kept on the event).",
    )

    def __init__(self, *args: Any, event: Event, **kwargs: Any) -> None:
        self.event = event
        zone = event.program.zone
        kwargs.setdefault(
            "initial",
            {
                "starts_at": program_wall_clock(event.starts_at, zone),
                "ends_at": program_wall_clock(event.ends_at, zone),
                **self.initial_for(event),
            },
        )
        super().__init__(*args, **kwargs)
        help_text = f"Local time, {event.program.time_zone}."
        self.fields["starts_at"].help_text = help_text
        self.fields["ends_at"].help_text = help_text
        if event.status == Event.Status.ACTIVE:
            # The service refuses to move an active event's start; do not offer it.
            self.fields["starts_at"].disabled = True
            self.fields["starts_at"].help_text = "The event has started; only its end can change."

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        zone = self.event.program.zone
        for name in ("starts_at", "ends_at"):
            if data.get(name) is not None:
                try:
                    data[name] = program_local(data[name], zone)
                except ValidationError as error:
                    self.add_error(name, error)
        return data


class EventCancelForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Participants already told are sent a cancel notice.",
    )


class OutboxFilterForm(forms.Form):
    """The outbox filters: channel kind, address (contains) and organization."""

    kind = forms.ChoiceField(required=False)
    address = forms.CharField(required=False, max_length=300)
    organization = forms.ModelChoiceField(
        queryset=Organization.objects.order_by("legal_name"),
        required=False,
        empty_label="All organizations",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        kinds = OutboxMessage.objects.order_by("kind").values_list("kind", flat=True).distinct()
        self.fields["kind"].choices = [("", "All kinds"), *((kind, kind) for kind in kinds)]

    def filtered(self) -> dict[str, Any]:
        """The valid filters as ORM lookups; invalid ones are dropped (and shown)."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        lookups: dict[str, Any] = {}
        if data.get("kind"):
            lookups["kind"] = data["kind"]
        if data.get("address"):
            lookups["address__icontains"] = data["address"].strip()
        if data.get("organization"):
            lookups["organization"] = data["organization"]
        return lookups


class SimulatedReplyForm(forms.Form):
    text = forms.CharField(
        max_length=160,
        label="Reply",
        help_text="As the participant would answer: 1, YES, 2, STOP, START, HELP ...",
    )
