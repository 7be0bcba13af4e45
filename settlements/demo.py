"""Demo meter data: about 120 days of realistic 15-minute load for every demo meter.

The readings go in through the real importer (a canonical CSV written to a temporary file,
then ``meter_data_import_create`` and ``meter_data_import_run``), so the demo's history page
shows the import that brought them. Loading twice adds nothing: the loader skips when the
meters already have readings.

The load of each site: a base load, an occupied-hours plateau on weekdays with an afternoon
peak scaled to the site's peak demand, a lower weekend shape, a day-to-day weather factor
(warm spells raise the afternoon cooling load), and noise. Times of day are local to the
meter's program zone; daylight-saving days have 92 or 100 quarter-hours like real data.

Hook for the events work: ``load_meter_data_demo(past_event_windows=...)`` lowers the load of
a site during each given window (a site that performed), so baselines and performance have
something to measure. There are no events yet, so the demo passes none.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from django.utils import timezone

from enrollment.models import Meter
from settlements import services
from settlements.models import MeterDataImport, MeterReading
from settlements.selectors import meter_time_zones

logger = logging.getLogger(__name__)

DEMO_DAYS = 120
DEMO_FILE_NAME = "demo-interval-readings.csv"


@dataclass(frozen=True)
class PastEventWindow:
    """A past curtailment at one site: load drops by ``reduction_kw`` (kW, average) from
    ``start`` to ``end`` (aware datetimes). For the events work to pass to the loader."""

    site_id: int
    start: dt.datetime
    end: dt.datetime
    reduction_kw: float


def demo_load_kw(
    *,
    starts_utc: pd.DatetimeIndex,
    time_zone: str,
    peak_kw: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Return a plausible average kW per interval for a commercial site.

    ``starts_utc`` are tz-aware interval starts; the daily shape follows the local clock of
    ``time_zone``. The hottest weekday afternoons reach about 85-95% of ``peak_kw``.
    """
    local = starts_utc.tz_convert(time_zone)
    hour = local.hour.to_numpy() + local.minute.to_numpy() / 60.0
    weekday = local.day_of_week.to_numpy() < 5
    day_number = (local.normalize().asi8 // 86_400_000_000_000).astype(np.int64)
    days = np.unique(day_number)
    # Weather: a seasonal curve (warmest late July) plus a few-day random walk.
    day_of_year = pd.to_datetime(days * 86_400, unit="s").day_of_year.to_numpy()
    seasonal = np.cos((day_of_year - 205) / 365.0 * 2 * np.pi)
    spell = np.convolve(rng.normal(0, 0.35, len(days) + 4), np.ones(5) / 5, mode="valid")
    warmth = np.clip(0.55 + 0.35 * seasonal + spell, 0.0, 1.0)
    warmth_of_row = warmth[np.searchsorted(days, day_number)]

    base_share = rng.uniform(0.25, 0.4)
    occupied = 1.0 / (1 + np.exp(-(hour - 7.0) * 2.5)) * (1 / (1 + np.exp((hour - 19.0) * 2.0)))
    afternoon = np.exp(-(((hour - 15.0) / 2.8) ** 2))
    weekday_shape = base_share + 0.35 * occupied + 0.3 * afternoon * warmth_of_row
    weekend_shape = base_share + 0.12 * occupied + 0.12 * afternoon * warmth_of_row
    shape = np.where(weekday, weekday_shape, weekend_shape)
    noise = rng.normal(1.0, 0.03, len(shape))
    return np.clip(shape * noise, 0.05, None) * peak_kw * rng.uniform(0.9, 0.98)


def write_demo_csv(
    path: Path,
    meters: list[Meter],
    *,
    first_day: dt.date,
    days: int,
    past_event_windows: Iterable[PastEventWindow] = (),
    seed: int = 20260601,
) -> int:
    """Write a canonical CSV of 15-minute readings for ``meters`` over ``days`` local days
    starting ``first_day``; return the number of rows. kWh per interval = kW × 0.25."""
    windows: dict[int, list[PastEventWindow]] = {}
    for window in past_event_windows:
        windows.setdefault(window.site_id, []).append(window)
    zones = meter_time_zones([meter.pk for meter in meters])
    rng = np.random.default_rng(seed)
    rows = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("meter_id,interval_start,kwh,interval_minutes,quality\n")
        for meter in meters:
            zone = zones[meter.pk]
            minutes = meter.interval_minutes
            first = pd.Timestamp(first_day, tz=zone)
            last = pd.Timestamp(first_day + dt.timedelta(days=days), tz=zone)
            starts = pd.date_range(
                first.tz_convert("UTC"),
                last.tz_convert("UTC"),
                freq=f"{minutes}min",
                inclusive="left",
            )
            kw = demo_load_kw(
                starts_utc=starts,
                time_zone=zone,
                peak_kw=float(meter.site.peak_demand_kw or 500),
                rng=rng,
            )
            for window in windows.get(meter.site_id, []):
                during = (starts >= window.start) & (starts < window.end)
                kw[during] = np.maximum(kw[during] - window.reduction_kw, 0.05 * kw[during])
            kwh = np.round(kw * minutes / 60.0, 3)
            stamps = starts.strftime("%Y-%m-%dT%H:%M:%SZ")
            out.write(
                "".join(
                    f"{meter.meter_id},{stamp},{value},{minutes},A\n"
                    for stamp, value in zip(stamps, kwh.tolist(), strict=True)
                )
            )
            rows += len(starts)
    return rows


def load_meter_data_demo(
    *, days: int = DEMO_DAYS, past_event_windows: Iterable[PastEventWindow] = ()
) -> MeterDataImport | None:
    """Import ``days`` days (ending yesterday) of readings for every meter; return the import.

    Returns None, doing nothing, when the meters already have readings (loaded before) or
    there are no meters. Raises RuntimeError when the import does not succeed.
    """
    meters = list(Meter.objects.select_related("site").order_by("meter_id"))
    if not meters or MeterReading.objects.filter(meter__in=meters).exists():
        return None
    last_day = timezone.localdate() - dt.timedelta(days=1)
    first_day = last_day - dt.timedelta(days=days - 1)
    with tempfile.TemporaryDirectory(prefix="demo-meterdata-") as folder:
        path = Path(folder) / DEMO_FILE_NAME
        rows = write_demo_csv(
            path, meters, first_day=first_day, days=days, past_event_windows=past_event_windows
        )
        with path.open("rb") as stream:
            record = services.meter_data_import_create(
                stream=stream, file_name=DEMO_FILE_NAME, by=None
            )
        if record.status == MeterDataImport.Status.PENDING:
            record = services.meter_data_import_run(data_import_id=record.pk) or record
    if record.status != MeterDataImport.Status.SUCCEEDED:
        raise RuntimeError(f"the demo meter data import ended {record.status}: {record.message}")
    logger.info("demo meter data: %s readings for %s meters", rows, len(meters))
    return record
