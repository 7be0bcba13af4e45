"""Forms of the events portal pages: declaring a site unavailable (maintenance, a closure).

The form only parses input; ``services.unavailability_declare`` holds the rules (the window
must end after it starts and not be over, and it must be declared before the opt-out
cut-off of any event it overlaps).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.db.models import QuerySet

from enrollment.models import Site
from events.services.rules import time_range_error


class UnavailabilityForm(forms.Form):
    """A site and a local window; ``window()`` gives it as aware datetimes.

    Times are wall-clock times of the site's program time zone (``zones`` maps site id to
    an IANA name; sites without a program use ``settings.TIME_ZONE``), because that is the
    clock events are called in.
    """

    site = forms.ModelChoiceField(queryset=Site.objects.none(), empty_label=None)
    starts_at = forms.DateTimeField(
        label="From", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    ends_at = forms.DateTimeField(
        label="Until", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    reason = forms.CharField(
        max_length=300,
        help_text="For example: chiller maintenance, generator overhaul, site closed.",
    )

    def __init__(
        self, *args: object, sites: QuerySet[Site], zones: Mapping[int, str], **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)
        self.zones = dict(zones)
        self.fields["site"].queryset = sites.order_by("name")
        names = sorted(set(self.zones.values()) or {settings.TIME_ZONE})
        self.fields["starts_at"].help_text = f"Local time ({', '.join(names)})."

    def clean(self) -> dict[str, object]:
        data = super().clean()
        for name in ("starts_at", "ends_at"):
            value = data.get(name)
            if value is not None and (out_of_range := time_range_error(value)):
                self.add_error(name, out_of_range)
        return data

    def zone_for(self, site: Site) -> ZoneInfo:
        """The time zone the window of ``site`` is entered in."""
        return ZoneInfo(self.zones.get(site.pk, settings.TIME_ZONE))

    def window(self) -> tuple[dt.datetime, dt.datetime]:
        """The cleaned window as aware datetimes in the site's zone.

        Django made the entered times aware in the current (default) zone; the wall-clock
        value is what the participant meant, so it is re-read in the site's zone.
        """
        zone = self.zone_for(self.cleaned_data["site"])

        def local(value: dt.datetime) -> dt.datetime:
            return value.replace(tzinfo=None).replace(tzinfo=zone)

        return local(self.cleaned_data["starts_at"]), local(self.cleaned_data["ends_at"])
