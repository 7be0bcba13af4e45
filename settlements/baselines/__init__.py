"""Baselines and load-reduction measurement for demand-response events.

A small, pure library (numpy and pandas only: no Django, no I/O, no clock) so analysts
can use it in a notebook and it can be tested without a database.

Units: readings are energy, kWh per interval, on a tz-aware DatetimeIndex of interval
starts; every result in kW is mean power over an interval (kW = kWh x 60 / interval
minutes). Local days and wall-clock hours come from an IANA zone; a local day has 92, 96
or 100 quarter-hours.
"""

from settlements.baselines.accuracy import (
    ACCURACY_FLAG_THRESHOLD,
    AccuracyResult,
    DayAccuracy,
    Recommendation,
    baseline_accuracy,
    compare_presets,
    recommend,
)
from settlements.baselines.batch import (
    ReadingsBatch,
    compute_many,
    gaming_flags_many,
    measure_many,
)
from settlements.baselines.direct import (
    FirmServiceLevelResult,
    MeterBeforeAfterResult,
    firm_service_level,
    meter_before_after,
)
from settlements.baselines.engine import BaselineResult, compute_baseline
from settlements.baselines.errors import InsufficientData
from settlements.baselines.gaming import (
    INFLATED_BASELINE_DAY,
    PRE_EVENT_LOAD_DROP,
    GamingFlag,
    gaming_flags,
)
from settlements.baselines.performance import PerformanceResult, measure_performance
from settlements.baselines.presets import PRESETS, nerc_holidays, spec_from_preset
from settlements.baselines.spec import BaselineSpec

__all__ = [
    "PRESETS",
    "BaselineResult",
    "BaselineSpec",
    "FirmServiceLevelResult",
    "InsufficientData",
    "MeterBeforeAfterResult",
    "PerformanceResult",
    "compute_baseline",
    "firm_service_level",
    "measure_performance",
    "meter_before_after",
    "nerc_holidays",
    "spec_from_preset",
    "ACCURACY_FLAG_THRESHOLD",
    "INFLATED_BASELINE_DAY",
    "PRE_EVENT_LOAD_DROP",
    "AccuracyResult",
    "DayAccuracy",
    "GamingFlag",
    "ReadingsBatch",
    "Recommendation",
    "baseline_accuracy",
    "compare_presets",
    "compute_many",
    "gaming_flags",
    "gaming_flags_many",
    "measure_many",
    "recommend",
]
