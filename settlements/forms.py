"""Forms of the meter data pages: the upload form of the manager console."""

from __future__ import annotations

from zoneinfo import available_timezones

from django import forms

from enrollment.models import Meter
from settlements.meterdata import FORMATS

FORMAT_LABELS = {
    "canonical": "Canonical CSV (meter_id, interval_start, kwh, …)",
    "utility": "Utility download CSV (preamble, DATE, START TIME, USAGE)",
    "wide": "Wide CSV (one row per meter and day)",
    "greenbutton": "Green Button XML (ESPI)",
}


class MeterDataUploadForm(forms.Form):
    """A meter data file and the import options; ``cleaned_data['meter']`` is a Meter or None."""

    file = forms.FileField(
        help_text="CSV or Green Button XML; large files import in the background."
    )
    format = forms.ChoiceField(
        choices=[("", "Detect from the file"), *((name, FORMAT_LABELS[name]) for name in FORMATS)],
        required=False,
    )
    meter = forms.CharField(
        max_length=64,
        required=False,
        label="Meter id",
        help_text="Needed for a utility download or a Green Button file whose usage point is "
        "not mapped to a meter; limits other files to this meter.",
    )
    time_zone = forms.CharField(
        max_length=64,
        required=False,
        help_text="IANA zone of wall-clock files; default: the meter's program zone.",
    )
    correction = forms.BooleanField(
        required=False,
        label="Correction",
        help_text="Replace stored readings that differ; the old values are kept as revisions.",
    )
    valid_rows_only = forms.BooleanField(
        required=False,
        label="Import the valid rows",
        help_text="Store the valid rows and list the rejected ones in an error report, instead "
        "of rejecting the whole file.",
    )

    def clean_meter(self) -> Meter | None:
        meter_id = self.cleaned_data["meter"].strip()
        if not meter_id:
            return None
        meter = Meter.objects.filter(meter_id=meter_id).first()
        if meter is None:
            raise forms.ValidationError(f"No meter has the id {meter_id!r}.")
        return meter

    def clean_time_zone(self) -> str:
        zone = self.cleaned_data["time_zone"].strip()
        if zone and zone not in available_timezones():
            raise forms.ValidationError(f"{zone!r} is not an IANA time zone name.")
        return zone
