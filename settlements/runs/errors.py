"""Errors of settlement runs: one for refused requests, with a message for the user."""

from __future__ import annotations


class SettlementError(ValueError):
    """A settlement request that cannot be done as asked (the message says why and what to do
    instead): an overlapping run, a run in the wrong status, missing payment rules."""
