"""The payment rules applied to one site's settlement period."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from settlements.payments import _text
from settlements.payments._numbers import clamp
from settlements.payments.lines import LineItem
from settlements.payments.outcomes import EventAssessment, Key, SitePeriod, assess_events
from settlements.payments.rules import PaymentRules

ZERO = Decimal(0)
ONE = Decimal(1)


class _Terms:
    """What the lines of every site share under one set of rules (rate texts, the months'
    ISO dates), worked out once per :func:`settle_sites` call, not once per site: a season
    run settles ~1,000 sites with the same rules. Display only, like ``_text``."""

    __slots__ = ("capacity_rate_text", "energy_rate_text", "iso_months")

    def __init__(self, rules: PaymentRules) -> None:
        capacity, energy = rules.capacity_rate, rules.energy_rate
        self.capacity_rate_text = None if capacity is None else _text.rate(capacity)
        self.energy_rate_text = None if energy is None else f" × {_text.rate(energy)}/kWh"
        self.iso_months: dict[dt.date, str] = {}

    def iso(self, months: Sequence[dt.date]) -> list[str]:
        """``month.isoformat()`` of each month, each written once."""
        known = self.iso_months
        texts = []
        for month in months:
            text = known.get(month)
            if text is None:
                text = known[month] = month.isoformat()
            texts.append(text)
        return texts


@dataclasses.dataclass(frozen=True)
class PerformanceFactor:
    """The capacity payment's performance factor for one site and period.

    - ``factor``: the factor applied, after the program's floor and cap (full precision;
      negative means a penalty).
    - ``method_factor``: the factor from the method, before the floor and cap.
    - ``average_ratio``: mean of the counted events' performance ratios (``None`` when
      no event counted, in which case the factor is 1).
    - ``event_ratios``: (event key, ratio) of each counted event, in the given order.
    - ``failed_events``: (event key, month, ratio) of events below the threshold
      (``threshold`` method only).
    - ``voided_months``: months whose capacity payment a failed event voids.
    - ``excluded``: (event key, note) of events left out by the rules.
    - ``explanation``: ``"factor 0.875 (average performance ratio 0.875 over 2 events:
      ...)"``.
    """

    factor: Decimal
    method_factor: Decimal
    average_ratio: Decimal | None
    event_ratios: tuple[tuple[Key, Decimal], ...]
    failed_events: tuple[tuple[Key, dt.date, Decimal], ...]
    voided_months: tuple[dt.date, ...]
    excluded: tuple[tuple[Key, str], ...]
    explanation: str


def factor_from_ratio(ratio: Decimal, rules: PaymentRules) -> Decimal:
    """The method's factor for an average performance ratio, before floor and cap.

    ``linear``: the ratio within [0, 1]. ``piecewise``: the breakpoint schedule
    (interpolated or stepped, flat outside it). ``threshold``: 1 (its effect is to void
    months, see :func:`performance_factor`).
    """
    if rules.factor_method == "linear":
        return min(max(ratio, ZERO), ONE)
    if rules.factor_method == "threshold":
        return ONE
    points = rules.breakpoints
    if ratio <= points[0][0]:
        return points[0][1]
    if ratio >= points[-1][0]:
        return points[-1][1]
    for (low_ratio, low_factor), (high_ratio, high_factor) in zip(points, points[1:], strict=False):
        if low_ratio <= ratio < high_ratio:
            if rules.interpolation == "step":
                return low_factor
            share = (ratio - low_ratio) / (high_ratio - low_ratio)
            return low_factor + (high_factor - low_factor) * share
    raise AssertionError("unreachable: the ratio lies within the schedule")


def performance_factor(site: SitePeriod, rules: PaymentRules) -> PerformanceFactor:
    """The performance factor of ``site``'s capacity payment for its period.

    Each counted event's ratio is its average kW reduction (after the negative-reduction
    treatment) / its committed kW; the average ratio is their plain mean; the method turns
    it into a factor (1 with no counted event), then ``capacity_factor_floor`` / ``_cap``
    bound it. Under ``threshold`` an event with a ratio below ``threshold_ratio`` voids
    its month. Full Decimal precision throughout; ratios are rounded only for display.
    """
    return _performance_factor(assess_events(site.events, rules), rules)


def _performance_factor(
    assessments: Sequence[EventAssessment], rules: PaymentRules
) -> PerformanceFactor:
    counted, excluded_list, ratio_list = [], [], []
    for item in assessments:
        if item.treatment == "excluded":
            excluded_list.append((item.outcome.event_key, item.note))
        else:
            counted.append(item)
            ratio_list.append((item.outcome.event_key, item.performance_ratio))
    excluded, ratios = tuple(excluded_list), tuple(ratio_list)
    failed: tuple[tuple[Key, dt.date, Decimal], ...] = ()
    if rules.factor_method == "threshold":
        assert rules.threshold_ratio is not None
        failed = tuple(
            (item.outcome.event_key, item.outcome.event_date.replace(day=1), item.performance_ratio)
            for item in counted
            if item.performance_ratio < rules.threshold_ratio
        )
    voided = tuple(sorted({month for _, month, _ in failed}))
    if counted:
        average: Decimal | None = sum([ratio for _, ratio in ratios], ZERO) / len(ratios)
        method_factor = factor_from_ratio(average, rules)
    else:
        average, method_factor = None, ONE
    factor = clamp(method_factor, rules.capacity_factor_floor, rules.capacity_factor_cap)
    explanation = _factor_explanation(rules, average, method_factor, factor, ratios, excluded)
    return PerformanceFactor(
        factor=factor,
        method_factor=method_factor,
        average_ratio=average,
        event_ratios=ratios,
        failed_events=failed,
        voided_months=voided,
        excluded=excluded,
        explanation=explanation,
    )


def capacity_line(site: SitePeriod, rules: PaymentRules) -> LineItem | None:
    """The capacity payment (kind ``"penalty"`` when the factor is negative), or ``None``.

    ``None`` when the rules have no ``capacity_rate``. kW-month: quantity = committed kW
    x months paid. kW-season: quantity = committed kW x months paid / months in the
    period (1 season when none is voided). Amount = quantity x rate x factor, $.
    """
    if rules.capacity_rate is None:
        return None
    return _capacity_line(
        site, rules, _performance_factor(assess_events(site.events, rules), rules)
    )


def _capacity_line(
    site: SitePeriod,
    rules: PaymentRules,
    performance: PerformanceFactor,
    terms: _Terms | None = None,
) -> LineItem:
    if terms is None:
        terms = _Terms(rules)
    rate = rules.capacity_rate
    assert rate is not None
    months = site.months
    paid = [month for month in months if month not in performance.voided_months]
    committed = site.committed_kw
    if rules.capacity_unit == "kW-month":
        quantity = committed * len(paid)
        span = f"{len(paid)} month{'s' if len(paid) != 1 else ''}"
        if len(paid) != len(months):
            span = f"{len(paid)} of {len(months)} months"
    else:
        quantity = committed * len(paid) / len(months)
        span = (
            "1 season" if len(paid) == len(months) else f"{len(paid)}/{len(months)} of the season"
        )
    if performance.voided_months:
        span += f" ({_voided_text(performance, rules)})"
    amount = quantity * rate * performance.factor
    unit = rules.capacity_unit
    explanation = (
        f"Committed {_text.kw(committed)} kW × {span} = {_text.kw(quantity)} {unit} × "
        f"{terms.capacity_rate_text}/{unit} × {performance.explanation} = "
        f"{_text.dollars(amount)}"
    )
    details = {
        "committed_kw": str(committed),
        "paid_months": terms.iso(paid),
        "voided_months": terms.iso(performance.voided_months),
        "failed_events": [
            {"event_key": key, "month": month.isoformat(), "performance_ratio": str(ratio)}
            for key, month, ratio in performance.failed_events
        ],
        "event_ratios": [
            {"event_key": key, "performance_ratio": str(r)} for key, r in performance.event_ratios
        ],
        "excluded_events": [{"event_key": key, "note": note} for key, note in performance.excluded],
        "average_ratio": None
        if performance.average_ratio is None
        else str(performance.average_ratio),
        "method_factor": str(performance.method_factor),
        "factor": str(performance.factor),
    }
    return LineItem._computed(
        "penalty" if performance.factor < 0 else "capacity",
        site.site_key,
        None,
        quantity,
        unit,
        rate,
        amount,
        explanation,
        details,
    )


def energy_lines(site: SitePeriod, rules: PaymentRules) -> list[LineItem]:
    """One energy payment line per counted event, in event order (none without a rate).

    Amount = reduction kWh (after the treatments) x ``energy_rate``, within
    ``energy_floor_per_event`` / ``energy_cap_per_event``; $0 for an event voided by the
    threshold rule or counted as zero performance. Excluded events have no line.
    """
    return _energy_lines(site, rules, assess_events(site.events, rules))


def _energy_lines(
    site: SitePeriod,
    rules: PaymentRules,
    assessments: Sequence[EventAssessment],
    terms: _Terms | None = None,
) -> list[LineItem]:
    rate = rules.energy_rate
    if rate is None:
        return []
    if terms is None:
        terms = _Terms(rules)
    rate_text = terms.energy_rate_text
    threshold = rules.threshold_ratio
    by_threshold = rules.factor_method == "threshold" and threshold is not None
    floor, cap = rules.energy_floor_per_event, rules.energy_cap_per_event
    limited = floor is not None or cap is not None
    # Most lines: an event counted as measured from totals, with nothing to note, under
    # rules without a threshold or limits. Their text and details written out here, as
    # the general path below writes them.
    plain_rules = not by_threshold and not limited
    kw, dollars, site_key, computed = _text.kw, _text.dollars, site.site_key, LineItem._computed
    lines = []
    for item in assessments:
        treatment = item.treatment
        if treatment == "excluded":
            continue
        kwh = item.reduction_kwh
        raw = kwh * rate
        outcome = item.outcome
        if (
            plain_rules
            and treatment == "counted"
            and not item.note
            and outcome.reduction_kw is None
        ):
            details = {
                "committed_kw": str(outcome.committed_kw),
                "treatment": treatment,
                "reduction_kwh": str(kwh),
                "average_kw": str(item.average_kw),
                "performance_ratio": str(item.performance_ratio),
            }
            if outcome.is_test:
                details["is_test"] = True
            if outcome.opted_out:
                details["opted_out"] = True
            lines.append(
                computed(
                    "energy",
                    site_key,
                    outcome.event_key,
                    kwh,
                    "kWh",
                    rate,
                    raw,
                    f"Reduction {kw(kwh)} kWh{rate_text} = {dollars(raw)}",
                    details,
                )
            )
            continue
        if treatment == "counted":
            text = f"Reduction {kw(kwh)} kWh{_interval_text(item)}{rate_text} = {dollars(raw)}"
        else:
            text = f"{_capitalised(item.note)}: {kw(kwh)} kWh{rate_text} = {dollars(raw)}"
        voided = by_threshold and item.performance_ratio < threshold  # type: ignore[operator]
        if voided:
            amount = ZERO
            text += (
                f", not paid: performance ratio {_text.ratio(item.performance_ratio)} is below "
                f"the threshold {_text.ratio(threshold)}"  # type: ignore[arg-type]
            )
        elif limited:
            amount = clamp(raw, floor, cap)
            text += _limit_text(raw, amount, "per event")
        else:
            amount = raw
        details = _event_details(item)
        if amount != raw:
            details["unlimited_amount"] = str(raw)
            text = f"{text} = {dollars(amount)}"
        if voided:
            details["voided_by_threshold"] = True
        lines.append(
            computed("energy", site_key, outcome.event_key, kwh, "kWh", rate, amount, text, details)
        )
    return lines


def season_line(site: SitePeriod, rules: PaymentRules) -> LineItem | None:
    """The season pay-for-performance line, or ``None`` (no ``season_rate``, no events).

    Quantity = the mean of the counted events' average kW reductions (kW-season); amount
    = quantity x ``season_rate`` within ``season_floor`` / ``season_cap``. ``site``'s
    period is taken to be the season.
    """
    return _season_line(site, rules, assess_events(site.events, rules))


def _season_line(
    site: SitePeriod, rules: PaymentRules, assessments: Sequence[EventAssessment]
) -> LineItem | None:
    rate = rules.season_rate
    counted = [item for item in assessments if item.counted]
    if rate is None or not counted:
        return None
    quantity = sum((item.average_kw for item in counted), ZERO) / len(counted)
    raw = quantity * rate
    amount = clamp(raw, rules.season_floor, rules.season_cap)
    events = ", ".join(
        f"{item.outcome.event_key}: {_text.kw(item.average_kw)} kW" for item in counted
    )
    noun = "event" if len(counted) == 1 else "events"
    text = (
        f"Average event reduction {_text.kw(quantity)} kW over {len(counted)} {noun} "
        f"({events}) × {_text.rate(rate)}/kW-season = {_text.dollars(raw)}"
        f"{_limit_text(raw, amount, 'for the season')}"
    )
    if amount != raw:
        text += f" = {_text.dollars(amount)}"
    return LineItem(
        kind="season",
        site_key=site.site_key,
        quantity=quantity,
        unit="kW-season",
        rate=rate,
        amount=amount,
        explanation=text,
        details={
            "event_average_kw": [
                {"event_key": item.outcome.event_key, "average_kw": str(item.average_kw)}
                for item in counted
            ],
            "unlimited_amount": str(raw),
        },
    )


def excess_energy_lines(site: SitePeriod, rules: PaymentRules) -> list[LineItem]:
    """One excess-energy charge per counted event with energy above the firm level.

    Quantity = ``excess_kwh`` (> 0), rate = -``excess_energy_rate``, amount = quantity x
    rate, its magnitude at most ``excess_charge_cap_per_event``. None without a rate.
    An opt-out counted as zero performance is still charged as measured.
    """
    return _excess_lines(site, rules, assess_events(site.events, rules))


def _excess_lines(
    site: SitePeriod, rules: PaymentRules, assessments: Sequence[EventAssessment]
) -> list[LineItem]:
    rate = rules.excess_energy_rate
    if rate is None:
        return []
    lines = []
    for item in assessments:
        excess = item.outcome.excess_kwh
        if not item.counted or excess is None or excess == 0:
            continue
        raw = -(excess * rate)
        cap = rules.excess_charge_cap_per_event
        amount = clamp(raw, None if cap is None else -cap, None)
        text = (
            f"Excess {_text.kw(excess)} kWh above the firm service level × "
            f"{_text.rate(rate)}/kWh charge = {_text.dollars(raw)}"
        )
        if amount != raw:
            text += f", limited to {_text.dollars(amount)} per event"
        lines.append(
            LineItem(
                kind="excess_energy",
                site_key=site.site_key,
                event_key=item.outcome.event_key,
                quantity=excess,
                unit="kWh",
                rate=-rate,
                amount=amount,
                explanation=text if amount == raw else f"{text} = {_text.dollars(amount)}",
                details={"unlimited_amount": str(raw)},
            )
        )
    return lines


def settle_site(site: SitePeriod, rules: PaymentRules) -> list[LineItem]:
    """Every line the rules give ``site`` for its period.

    In order: the capacity (or penalty) line, the season line, then per event (in the
    given order) its energy line and its excess-energy line. Kinds the rules have no rate
    for are left out. Raises ``ValueError`` for an outcome the rules cannot treat
    (``"floor_interval"`` with totals only).
    """
    return _settle(site, rules, _Terms(rules))


def settle_sites(sites: Iterable[SitePeriod], rules: PaymentRules) -> Iterator[list[LineItem]]:
    """:func:`settle_site` for each site, in the given order, under the same ``rules``: the
    batch entry point of a settlement run (what the lines of all sites share is worked
    out once). Yields each site's lines as it is settled; raises as ``settle_site``."""
    terms = _Terms(rules)
    for site in sites:
        yield _settle(site, rules, terms)


def _settle(site: SitePeriod, rules: PaymentRules, terms: _Terms) -> list[LineItem]:
    assessments = assess_events(site.events, rules)
    lines: list[LineItem] = []
    if rules.capacity_rate is not None:
        lines.append(_capacity_line(site, rules, _performance_factor(assessments, rules), terms))
    season = _season_line(site, rules, assessments)
    if season is not None:
        lines.append(season)
    energy = _energy_lines(site, rules, assessments, terms)
    if rules.excess_energy_rate is None:
        # No excess lines: the energy lines are already one per counted event, in order.
        lines.extend(energy)
        return lines
    by_event = {line.event_key: line for line in energy}
    excess = {line.event_key: line for line in _excess_lines(site, rules, assessments)}
    for item in assessments:
        key = item.outcome.event_key
        lines.extend(line for line in (by_event.get(key), excess.get(key)) if line is not None)
    return lines


def _factor_explanation(
    rules: PaymentRules,
    average: Decimal | None,
    method_factor: Decimal,
    factor: Decimal,
    ratios: tuple[tuple[Key, Decimal], ...],
    excluded: tuple[tuple[Key, str], ...],
) -> str:
    not_counted = "".join(f"; event {key} not counted: {note}" for key, note in excluded)
    if average is None:
        reason = f"no events in the period{not_counted}"
    else:
        noun = "event" if len(ratios) == 1 else "events"
        listed = ", ".join(f"event {key}: {_text.ratio(ratio)}" for key, ratio in ratios)
        if rules.factor_method == "threshold" and rules.threshold_ratio is not None:
            # The threshold rule voids months instead of scaling by the average ratio.
            threshold = _text.ratio(rules.threshold_ratio)
            reason = (
                f"threshold rule, performance ratio {threshold} or more in each event; "
                f"{len(ratios)} {noun}: {listed}{not_counted}"
            )
        else:
            reason = (
                f"average performance ratio {_text.ratio(average)} over {len(ratios)} {noun}: "
                f"{listed}{not_counted}"
            )
        if rules.factor_method == "linear" and method_factor != average:
            reason += f"; linear factor limited to {_text.ratio(method_factor)}"
        elif rules.factor_method == "piecewise":
            how = "linear interpolation" if rules.interpolation == "linear" else "steps"
            schedule = ", ".join(
                f"{_text.ratio(r)} → {_text.ratio(f)}" for r, f in rules.breakpoints
            )
            reason += f"; schedule ({how}) {schedule} gives {_text.ratio(method_factor)}"
    if factor > method_factor:
        reason += f"; raised to the floor {_text.ratio(factor)}"
    elif factor < method_factor:
        reason += f"; lowered to the cap {_text.ratio(factor)}"
    return f"factor {_text.ratio(factor)} ({reason})"


def _voided_text(performance: PerformanceFactor, rules: PaymentRules) -> str:
    parts = []
    for month in performance.voided_months:
        events = ", ".join(
            f"event {key} ratio {_text.ratio(ratio)}"
            for key, event_month, ratio in performance.failed_events
            if event_month == month
        )
        parts.append(f"{_text.month(month)} not paid: {events}")
    threshold = rules.threshold_ratio
    assert threshold is not None
    return f"{'; '.join(parts)} below the threshold {_text.ratio(threshold)}"


def _interval_text(item: EventAssessment) -> str:
    """How the kWh were reached, for a counted event (zeroed events say so in front).

    A counted event's note is the negative-reduction treatment (intervals or the event
    floored at 0), which changes the reduction and so the ratio from the measured one: the
    ratio as settled is said too, the one the capacity factor lists for the event, since
    the measurement sentence a run appends gives the measured ratio.
    """
    if item.treatment != "counted":
        return ""
    parts = []
    if item.outcome.reduction_kw is not None:
        parts.append(f"{item.intervals} intervals of {item.outcome.interval_minutes} min")
        if item.missing_intervals:
            parts.append(f"{item.missing_intervals} missing")
    if item.note:
        parts.append(item.note)
        parts.append(f"performance ratio {_text.ratio(item.performance_ratio)} as settled")
    return f" ({'; '.join(parts)})" if parts else ""


def _limit_text(raw: Decimal, amount: Decimal, scope: str) -> str:
    if amount < raw:
        return f", capped at {_text.dollars(amount)} {scope}"
    if amount > raw:
        return f", raised to the floor {_text.dollars(amount)} {scope}"
    return ""


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _event_details(item: EventAssessment) -> dict[str, Any]:
    """The event's own inputs of an energy line: committed kW, treatment, kWh, average kW and
    performance ratio; ``note``, ``is_test`` and ``opted_out`` only when they say
    something, interval counts only for an outcome given per interval. (The event and the
    rules are the line's and the caller's to record, once, not on every line; the energy
    line adds ``unlimited_amount`` when a limit changed the amount and
    ``voided_by_threshold`` when the threshold rule voided it.)"""
    outcome = item.outcome
    details: dict[str, Any] = {
        "committed_kw": str(outcome.committed_kw),
        "treatment": item.treatment,
        "reduction_kwh": str(item.reduction_kwh),
        "average_kw": str(item.average_kw),
        "performance_ratio": str(item.performance_ratio),
    }
    if item.note:
        details["note"] = item.note
    if outcome.is_test:
        details["is_test"] = True
    if outcome.opted_out:
        details["opted_out"] = True
    if outcome.reduction_kw is not None:
        details["interval_minutes"] = outcome.interval_minutes
        details["intervals"] = item.intervals
        details["missing_intervals"] = item.missing_intervals
        details["floored_intervals"] = item.floored_intervals
    return details
