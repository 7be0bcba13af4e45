"""Settlement lines: their one shape, totals, and restatement differences."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Literal

from settlements.payments import _text
from settlements.payments._frozen import unchecked
from settlements.payments._numbers import money, to_decimal
from settlements.payments.outcomes import Key

Kind = Literal[
    "capacity",
    "energy",
    "season",
    "penalty",
    "excess_energy",
    "enablement",
    "clawback",
    "adjustment",
]
KINDS: tuple[str, ...] = (
    "capacity",
    "energy",
    "season",
    "penalty",
    "excess_energy",
    "enablement",
    "clawback",
    "adjustment",
)
_KIND_SET = frozenset(KINDS)
LineKey = tuple[str, Key, Key | None, Key | None]


@dataclasses.dataclass(frozen=True, kw_only=True)
class LineItem:
    """One settlement line, as billing receives it.

    - ``kind``: one of :data:`KINDS`.
    - ``site_key``, ``event_key`` (``None`` for period lines), ``reference`` (the caller's
      key for an enablement installment, clawback or adjustment; ``None`` otherwise):
      opaque keys given by the caller; together with ``kind`` they identify the line
      across restatements (:attr:`key`).
    - ``quantity`` (full Decimal precision; store it with the places the store has),
      ``unit`` (``"kW-month"``, ``"kW-season"``, ``"kWh"``, ``"installment"``, ...) and
      ``rate`` ($ per unit; negative for a charge).
    - ``amount``: $, rounded to cents half up here, when the line is written, and nowhere
      before. For energy and season lines it is quantity x rate within the program's
      floor and cap; for capacity and penalty lines quantity x rate x performance factor.
    - ``explanation``: the path from kW to dollars in words a participant can check.
    - ``details``: the line's own inputs, JSON-ready (Decimals as strings): not the rules
      (the caller records ``PaymentRules.to_dict()`` once for all its lines) nor what the
      line's keys already say (its event).
    """

    kind: Kind
    site_key: Key
    event_key: Key | None = None
    reference: Key | None = None
    quantity: Decimal
    unit: str
    rate: Decimal
    amount: Decimal
    explanation: str
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.kind not in _KIND_SET:
            raise ValueError(f"unknown line kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        setter = object.__setattr__
        for name in ("quantity", "rate"):
            value = getattr(self, name)
            if type(value) is not Decimal or not value.is_finite():
                setter(self, name, to_decimal(name, value))
        # The one place an amount is rounded.
        setter(self, "amount", money(to_decimal("amount", self.amount)))
        setter(self, "details", dict(self.details))

    @classmethod
    def _computed(
        cls,
        kind: Kind,
        site_key: Key,
        event_key: Key | None,
        quantity: Decimal,
        unit: str,
        rate: Decimal,
        amount: Decimal,
        explanation: str,
        details: dict[str, Any],
    ) -> LineItem:
        """A line from this package's own builders, whose kind is known, whose numbers are
        finite Decimals and whose details are a fresh dict: only the amount is rounded. A
        season run builds ~11,000 lines, and the checks of ``__init__`` for values that
        cannot be wrong took a fifth of its calculation."""
        return unchecked(
            cls,
            {
                "kind": kind,
                "site_key": site_key,
                "event_key": event_key,
                "reference": None,
                "quantity": quantity,
                "unit": unit,
                "rate": rate,
                "amount": money(amount),  # the one place an amount is rounded, here too
                "explanation": explanation,
                "details": details,
            },
        )

    @property
    def key(self) -> LineKey:
        """(kind, site key, event key, reference): what a restatement matches lines by."""
        return (self.kind, self.site_key, self.event_key, self.reference)

    def to_dict(self) -> dict[str, Any]:
        """The line as a JSON-ready dict (Decimals as strings)."""
        data = dataclasses.asdict(self)
        for name in ("quantity", "rate", "amount"):
            data[name] = str(data[name])
        return data


def amount_line(
    kind: Literal["enablement", "clawback", "adjustment"],
    *,
    site_key: Key,
    amount: Decimal | int | str,
    explanation: str,
    reference: Key | None = None,
    event_key: Key | None = None,
    details: Mapping[str, Any] | None = None,
) -> LineItem:
    """A line for an amount computed elsewhere (an installment, a clawback, an adjustment).

    Quantity 1, unit ``"installment"`` (``"adjustment"`` for adjustments), rate = amount,
    so every line has the same shape. An enablement amount must be >= 0 and a clawback
    <= 0 (as the enrollment services store them); ``ValueError`` otherwise. ``reference``
    (e.g. the installment's id) tells apart several such lines of one site.
    """
    if kind not in ("enablement", "clawback", "adjustment"):
        raise ValueError(f"amount_line is for enablement, clawback or adjustment, not {kind!r}")
    if isinstance(amount, float):
        raise TypeError(f"amount must be a Decimal, int or str, not a float ({amount!r})")
    value = to_decimal("amount", amount)
    if kind == "enablement" and value < 0:
        raise ValueError(f"an enablement installment is not negative, got {value}")
    if kind == "clawback" and value > 0:
        raise ValueError(f"a clawback is negative (money recovered), got {value}")
    return LineItem(
        kind=kind,
        site_key=site_key,
        event_key=event_key,
        reference=reference,
        quantity=Decimal(1),
        unit="adjustment" if kind == "adjustment" else "installment",
        rate=value,
        amount=value,
        explanation=f"{explanation} = {_text.dollars(value)}"
        if explanation
        else _text.dollars(value),
        details={"amount": str(value), **(details or {})},
    )


def enablement_line(
    *, site_key: Key, amount: Decimal | int | str, explanation: str, reference: Key | None = None
) -> LineItem:
    """An enablement incentive installment (>= 0); see :func:`amount_line`."""
    return amount_line(
        "enablement", site_key=site_key, amount=amount, explanation=explanation, reference=reference
    )


def clawback_line(
    *, site_key: Key, amount: Decimal | int | str, explanation: str, reference: Key | None = None
) -> LineItem:
    """A clawback of enablement incentives (<= 0); see :func:`amount_line`."""
    return amount_line(
        "clawback", site_key=site_key, amount=amount, explanation=explanation, reference=reference
    )


def total(lines: Iterable[LineItem]) -> Decimal:
    """The sum of the lines' (already rounded) amounts, $; ``Decimal("0.00")`` for none."""
    return sum((line.amount for line in lines), Decimal("0.00"))


def difference(old_lines: Iterable[LineItem], new_lines: Iterable[LineItem]) -> list[LineItem]:
    """The lines of a restatement: ``new_lines`` against the last approved ``old_lines``.

    Lines are matched by :attr:`LineItem.key`. A line whose amount changed gives a delta
    line (quantity and amount are new minus old, rate the new rate, the explanation
    tells both); an old line with no new match gives a negating line; a new line with no
    old match is given as it is; a line whose amount is unchanged gives nothing. The
    result follows the order of ``new_lines``, then the negated old lines in their order,
    so ``total(old) + total(difference(old, new)) == total(new)``. Raises ``ValueError``
    when one list holds two lines with the same key.
    """
    old_by_key = _by_key(old_lines, "old")
    new_by_key = _by_key(new_lines, "new")
    result: list[LineItem] = []
    for key, new in new_by_key.items():
        old = old_by_key.get(key)
        if old is None:
            result.append(new)
        elif new.amount != old.amount:
            delta = new.amount - old.amount
            result.append(
                dataclasses.replace(
                    new,
                    quantity=new.quantity - old.quantity,
                    amount=delta,
                    explanation=(
                        f"Restatement: now {_text.dollars(new.amount)} ({new.explanation}); "
                        f"was {_text.dollars(old.amount)} ({old.explanation}); "
                        f"difference {_text.dollars(delta)}"
                    ),
                    details={"restatement": "delta", "old": old.to_dict(), "new": new.to_dict()},
                )
            )
    for key, old in old_by_key.items():
        if key not in new_by_key:
            result.append(
                dataclasses.replace(
                    old,
                    quantity=-old.quantity,
                    amount=-old.amount,
                    explanation=(
                        f"Restatement: reverses {_text.dollars(old.amount)} ({old.explanation}) "
                        f"= {_text.dollars(-old.amount)}"
                    ),
                    details={"restatement": "reversal", "old": old.to_dict()},
                )
            )
    return result


def _by_key(lines: Iterable[LineItem], which: str) -> dict[LineKey, LineItem]:
    by_key: dict[LineKey, LineItem] = {}
    for line in lines:
        if line.key in by_key:
            raise ValueError(f"two {which} lines share the key {line.key!r}")
        by_key[line.key] = line
    return by_key


def adjustment_line(
    *,
    site_key: Key,
    amount: Decimal | int | str,
    explanation: str,
    reference: Key | None = None,
    event_key: Key | None = None,
) -> LineItem:
    """A manual adjustment of either sign; see :func:`amount_line`."""
    return amount_line(
        "adjustment",
        site_key=site_key,
        amount=amount,
        explanation=explanation,
        reference=reference,
        event_key=event_key,
    )
