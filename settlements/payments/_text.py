"""Formatting numbers for explanations a participant can check by hand.

Display only: nothing here feeds a calculation.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from settlements.payments._numbers import money

_THREE = Decimal("0.001")
_SIX = Decimal("0.000001")


def kw(value: Decimal) -> str:
    """kW or kWh with three places (watts), e.g. ``120.000``."""
    return f"{value.quantize(_THREE, ROUND_HALF_UP):,}"


def ratio(value: Decimal) -> str:
    """A ratio or factor with three places; ``≈`` and six places when three are not exact."""
    shown = value.quantize(_THREE, ROUND_HALF_UP)
    if shown == value:
        return f"{shown}"
    return f"≈{value.quantize(_SIX, ROUND_HALF_UP)}"


def dollars(value: Decimal) -> str:
    """Money as ``$1,890.00`` or ``-$25.00`` (rounded to cents half up for display)."""
    cents = money(value)
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents):,.2f}"


def rate(value: Decimal) -> str:
    """A rate with at least two places and as many more as it has: ``$18.00``, ``$0.125``."""
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    places = max(2, -magnitude.normalize().as_tuple().exponent)  # type: ignore[operator]
    return f"{sign}${magnitude:,.{places}f}"


def month(value: object) -> str:
    """A month as ``2026-07``."""
    return f"{value:%Y-%m}"
