"""Fixtures shared by the settlement tests."""

import pytest

from tests.settlements.settlement_helpers import make_program


@pytest.fixture
def july_program(db):
    """$8/kW-month capacity with the linear factor, $0.50/kWh energy."""
    return make_program(capacity_rate="8", energy_rate="0.50")
