"""Errors raised by the baseline library."""

from __future__ import annotations


class InsufficientData(Exception):  # noqa: N818 - public name fixed by the library's API
    """Too few eligible days (or readings) to compute a baseline or a measurement.

    ``found`` is how many eligible days or readings there were and ``required`` how many
    the method needs; both are also in the message so that a settlement reviewer sees them.
    """

    def __init__(self, message: str, *, found: int, required: int) -> None:
        super().__init__(message)
        self.found = found
        self.required = required
