"""BaselineSpec validation, JSON round trip and presets with overrides."""

from __future__ import annotations

import dataclasses
import json

import pytest

from settlements.baselines import PRESETS, BaselineSpec, spec_from_preset


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"selection": "lowest"}, "unknown selection 'lowest'"),
        ({"day_type": "holiday"}, "unknown day_type"),
        ({"adjustment": "ratio"}, "unknown adjustment 'ratio'"),
        ({"adjustment_direction": "down"}, "unknown adjustment_direction"),
        ({"pool_days": 4, "select_days": 5, "selection": "highest"}, "select_days must be"),
        ({"pool_days": 0, "select_days": 0}, "pool_days must be at least 1"),
        ({"pool_days": 5, "select_days": 4}, "selection 'all'"),
        ({"pool_days": 10, "select_days": 7, "selection": "middle"}, "must be even"),
        ({"lookback_days": 5}, "lookback_days"),
        ({"min_days": 0}, "min_days"),
        ({"min_days": 11}, "min_days"),
        ({"low_usage_fraction": 1.5}, "low_usage_fraction"),
        ({"adjustment_hours": -1}, "adjustment_hours must not be negative"),
        ({"adjustment_gap_hours": -0.5}, "adjustment_gap_hours must not be negative"),
        ({"adjustment": "additive"}, "needs adjustment_hours > 0"),
        ({"adjustment_cap": -0.1}, "adjustment_cap must not be negative"),
        ({"adjustment_hours": float("nan")}, "finite"),
    ],
)
def test_it_rejects_incoherent_parameters_with_a_clear_message(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        BaselineSpec(**changes)  # type: ignore[arg-type]


def test_it_rejects_parameters_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match="pool_days must be an int"):
        BaselineSpec(pool_days=5.0, select_days=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="adjustment_hours must be a number"):
        BaselineSpec(adjustment_hours="3")  # type: ignore[arg-type]


def test_it_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["pjm_high_4_of_5"].pool_days = 6  # type: ignore[misc]


def test_it_round_trips_through_json() -> None:
    for spec in PRESETS.values():
        assert BaselineSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_from_dict_names_unknown_and_missing_keys() -> None:
    data = PRESETS["caiso_10_of_10"].to_dict()
    with pytest.raises(ValueError, match="unknown baseline parameter.*window_hours"):
        BaselineSpec.from_dict({**data, "window_hours": 2})
    del data["min_days"]
    with pytest.raises(ValueError, match="missing baseline parameter.*min_days"):
        BaselineSpec.from_dict(data)


def test_spec_from_preset_applies_overrides_from_json() -> None:
    overrides = json.loads('{"adjustment_hours": 4, "adjustment_cap": null, "lookback_days": 60}')

    spec = spec_from_preset("pjm_high_4_of_5", overrides)

    assert spec == dataclasses.replace(
        PRESETS["pjm_high_4_of_5"], adjustment_hours=4.0, adjustment_cap=None, lookback_days=60
    )
    assert isinstance(spec.adjustment_hours, float)
    assert spec_from_preset("pjm_high_4_of_5", {}) == PRESETS["pjm_high_4_of_5"]


def test_spec_from_preset_rejects_an_unknown_preset_or_override_key() -> None:
    with pytest.raises(ValueError, match="unknown baseline preset 'miso_3_of_4'.*caiso_10_of_10"):
        spec_from_preset("miso_3_of_4", {})
    with pytest.raises(ValueError, match="unknown override.*pool_size.*allowed: adjustment"):
        spec_from_preset("caiso_10_of_10", {"pool_size": 5})


def test_spec_from_preset_validates_the_overridden_spec() -> None:
    with pytest.raises(ValueError, match="select_days"):
        spec_from_preset("nyiso_high_5_of_10", {"select_days": 11})


def test_presets_cannot_be_replaced_in_place() -> None:
    with pytest.raises(TypeError):
        PRESETS["caiso_10_of_10"] = BaselineSpec()  # type: ignore[index]
