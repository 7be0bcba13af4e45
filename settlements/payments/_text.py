"""Formatting numbers for explanations a participant can check by hand.

Display only: nothing here feeds a calculation.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from settlements.payments._numbers import money

_THREE = Decimal("0.001")
_SIX = Decimal("0.000001")
_THOUSAND = Decimal(1000)


def kw(value: Decimal) -> str:
    """kW or kWh with three places (watts), e.g. ``120.000``, ``1,250.000``."""
    shown = value.quantize(_THREE, ROUND_HALF_UP)
    # Below a thousand there is no separator to write, and str() writes the same text as
    # format() (three places, no exponent) in a third of the time; explanations write
    # ~20,000 of these in a season run.
    return str(shown) if -_THOUSAND < shown < _THOUSAND else f"{shown:,}"


def ratio(value: Decimal) -> str:
    """A ratio or factor with three places; ``≈`` and six places when three are not exact."""
    shown = value.quantize(_THREE, ROUND_HALF_UP)
    if shown == value:
        return str(shown)
    return "≈" + str(value.quantize(_SIX, ROUND_HALF_UP))


def dollars(value: Decimal) -> str:
    """Money as ``$1,890.00`` or ``-$25.00`` (rounded to cents half up for display)."""
    cents = money(value)
    sign = "-" if cents < 0 else ""
    magnitude = abs(cents)
    if magnitude < _THOUSAND:
        # Two places already and no separator: str() writes what format() would, faster.
        return f"{sign}${magnitude!s}"
    return f"{sign}${magnitude:,.2f}"


def rate(value: Decimal) -> str:
    """A rate with at least two places and as many more as it has: ``$18.00``, ``$0.125``."""
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    places = max(2, -magnitude.normalize().as_tuple().exponent)  # type: ignore[operator]
    return f"{sign}${magnitude:,.{places}f}"


def month(value: object) -> str:
    """A month as ``2026-07``."""
    return f"{value:%Y-%m}"
