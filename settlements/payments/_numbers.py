"""Turning caller values into Decimal, and the one place amounts are rounded."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")


def to_decimal(name: str, value: object) -> Decimal:
    """``value`` as a finite Decimal; raises ``TypeError`` or ``ValueError`` naming ``name``.

    Decimal, int and str are taken exactly. A float is taken by its shortest repr
    (``0.1`` becomes ``Decimal("0.1")``, not its binary expansion), which is the number a
    person reading the meter data would see. bool is refused.
    """
    if type(value) is Decimal and value.is_finite():
        return value  # the common case, first
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"{name} must be a number, got {value!r}") from None
    elif hasattr(value, "__float__"):
        # numpy scalars: take their float value, as for a float.
        return to_decimal(name, float(value))  # type: ignore[arg-type]
    else:
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not number.is_finite():
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def to_optional_decimal(name: str, value: object) -> Decimal | None:
    """Like :func:`to_decimal`, but ``None`` stays ``None``."""
    return None if value is None else to_decimal(name, value)


def to_reading(name: str, value: object) -> Decimal | None:
    """An interval value, or ``None`` when it is missing (``None`` or NaN)."""
    if value is None:
        return None
    if isinstance(value, Decimal) and value.is_nan():
        return None
    if not isinstance(value, Decimal | int | str) and hasattr(value, "__float__"):
        if math.isnan(float(value)):  # type: ignore[arg-type]
            return None
    return to_decimal(name, value)


def money(value: Decimal) -> Decimal:
    """Round to cents, half up. Only :class:`~settlements.payments.lines.LineItem` calls it."""
    return value.quantize(CENT, ROUND_HALF_UP)  # positional: the keyword costs 4x


def clamp(value: Decimal, floor: Decimal | None, cap: Decimal | None) -> Decimal:
    """``value`` raised to ``floor`` and lowered to ``cap`` (either may be ``None``)."""
    if floor is not None and value < floor:
        value = floor
    if cap is not None and value > cap:
        value = cap
    return value
