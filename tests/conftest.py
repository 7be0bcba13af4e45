"""Shared fixtures: the named cast, real-service requirements, and an isolated broker.

Tests that need PostgreSQL or Redis are marked ``postgres`` / ``redis``. They skip, saying
why, when the service is not configured or not reachable, except when
``DR_REQUIRE_SERVICES=1`` (set by ``.ci/run``): then they fail, so CI never passes by
silently skipping them.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.db import connection

from dr_platform.celery import app as celery_app

REQUIRE_SERVICES = os.environ.get("DR_REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes"}


def redis_url() -> str:
    """The Redis URL tests use: the broker's when it is Redis, else REDIS_URL or the default."""
    if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        return settings.CELERY_BROKER_URL
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), 1):
            return True
    except OSError:
        return False


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (DR_REQUIRE_SERVICES=1: required services must be present)")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _service_markers(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        _unavailable(f"needs PostgreSQL; DATABASE_URL points at {connection.vendor}")
    if request.node.get_closest_marker("redis") and not _reachable(redis_url()):
        _unavailable(f"needs Redis at {redis_url()}, which does not answer")


@pytest.fixture(autouse=True)
def _loopback_stubs_allowed(settings) -> None:
    """The provider stubs listen on 127.0.0.1, which the outbound policy refuses unless
    DR_ALLOW_PRIVATE_OUTBOUND is on (it defaults to DEBUG); tests of the policy turn it off."""
    settings.DR_ALLOW_PRIVATE_OUTBOUND = True


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    """Factories and logins hash passwords in most tests; PBKDF2 would cost seconds each."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session", autouse=True)
def _isolated_celery(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Give the test session its own filesystem-broker folders (when that broker is in use).

    A developer's running demo shares ``var/celery``; without this, its worker could take
    the test suite's messages. Returns the environment a worker subprocess needs to use the
    same broker and result store as the test process.
    """
    environment: dict[str, str] = {}
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        var_dir = tmp_path_factory.mktemp("var")
        broker = var_dir / "celery" / "broker"
        control = var_dir / "celery" / "control"
        results = var_dir / "celery" / "results"
        for folder in (broker, control, results):
            folder.mkdir(parents=True)
        celery_app.conf.broker_transport_options = {
            "data_folder_in": str(broker),
            "data_folder_out": str(broker),
            "control_folder": str(control),
        }
        celery_app.conf.result_backend = f"file://{results}"
        environment["DR_VAR_DIR"] = str(var_dir)
    return environment


@pytest.fixture
def worker_environment(_isolated_celery: dict[str, str]) -> dict[str, str]:
    """The environment for a Celery worker subprocess sharing this test session's broker."""
    return {**os.environ, **_isolated_celery}


# --- the named cast -----------------------------------------------------------------------


@pytest.fixture
def organization_a(db):
    from tests.factories import OrganizationFactory

    return OrganizationFactory(legal_name="Harbor Cold Storage LLC")


@pytest.fixture
def organization_b(db):
    from tests.factories import OrganizationFactory

    return OrganizationFactory(legal_name="Northside Medical Center")


@pytest.fixture
def participant_a(organization_a):
    """An admin member of organization A, and nothing else."""
    from tests.factories import MembershipFactory

    return MembershipFactory(organization=organization_a, role="admin").user


@pytest.fixture
def participant_b(organization_b):
    """An admin member of organization B, who must never see A's data."""
    from tests.factories import MembershipFactory

    return MembershipFactory(organization=organization_b, role="admin").user


@pytest.fixture
def manager(db):
    from tests.factories import staff_user

    return staff_user("Program managers")


@pytest.fixture
def auditor(db):
    from tests.factories import staff_user

    return staff_user("Auditors")


@pytest.fixture
def billing_clerk(db):
    from tests.factories import staff_user

    return staff_user("Billing")
