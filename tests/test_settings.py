"""Configuration from the environment: good values parse, bad ones stop start-up clearly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from dr_platform.env import database_config, env_bool, env_int, env_list, env_url

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "k" * 20 + "-production-secret-from-the-environment-" + "z" * 20,
    "ALLOWED_HOSTS": "dr.example.com",
}


def _run_manage(*args: str, **environment: str) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS"}
    }
    env.update(environment)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_parses_booleans_in_every_documented_spelling():
    assert env_bool("X", False, {"X": "Yes"}) is True
    assert env_bool("X", True, {"X": "off"}) is False
    assert env_bool("X", True, {}) is True


def test_it_names_the_variable_of_a_bad_boolean():
    with pytest.raises(ImproperlyConfigured, match=r"DEBUG='maybe' is not a boolean"):
        env_bool("DEBUG", False, {"DEBUG": "maybe"})


def test_it_rejects_non_integers_and_values_below_the_minimum():
    with pytest.raises(ImproperlyConfigured, match="EMAIL_PORT='smtp' is not an integer"):
        env_int("EMAIL_PORT", 25, {"EMAIL_PORT": "smtp"})
    with pytest.raises(ImproperlyConfigured, match="must be at least 1"):
        env_int("EMAIL_PORT", 25, {"EMAIL_PORT": "0"}, minimum=1)
    assert env_int("EMAIL_PORT", 25, {"EMAIL_PORT": " 2525 "}) == 2525


def test_it_splits_lists_and_drops_empty_items():
    assert env_list("ALLOWED_HOSTS", [], {"ALLOWED_HOSTS": "a.example, ,b.example,"}) == [
        "a.example",
        "b.example",
    ]


def test_it_rejects_a_broker_url_with_an_unsupported_scheme():
    with pytest.raises(ImproperlyConfigured, match="unsupported scheme 'amqp'"):
        env_url("CELERY_BROKER_URL", "", ("filesystem", "redis"), {"CELERY_BROKER_URL": "amqp://x"})


def test_it_builds_postgres_and_sqlite_database_settings():
    postgres = database_config("postgres://dr:secret@db.internal:5433/dr_platform")
    assert postgres["ENGINE"] == "django.db.backends.postgresql"
    assert (postgres["HOST"], postgres["PORT"], postgres["NAME"]) == (
        "db.internal",
        5433,
        "dr_platform",
    )
    sqlite = database_config("sqlite:////tmp/dr.sqlite3")
    assert sqlite["NAME"] == "/tmp/dr.sqlite3"
    assert sqlite["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_it_rejects_an_unsupported_database_url():
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL='mysql://x/y' is not supported"):
        database_config("mysql://x/y")


def test_start_up_stops_without_a_secret_key_when_debug_is_off():
    result = _run_manage("check", DEBUG="0", ALLOWED_HOSTS="dr.example.com")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_start_up_stops_on_a_bad_value_naming_the_variable():
    result = _run_manage("check", DEBUG="perhaps")
    assert result.returncode != 0
    assert "DEBUG='perhaps' is not a boolean" in result.stderr


def test_production_configuration_passes_the_deploy_check_without_warnings():
    result = _run_manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_it_parses_notification_rate_limits_per_channel():
    from dr_platform.env import env_rates

    rates = env_rates("RATES", {"RATES": " sms=30/s, voice=1 ,webhook=none, email=600/m "})
    assert rates == {"sms": "30/s", "voice": "1", "webhook": None, "email": "600/m"}
    assert env_rates("RATES", {}) == {}


@pytest.mark.parametrize("value", ["sms", "sms=fast", "=1/s", "sms=1/d"])
def test_it_names_the_variable_for_a_malformed_rate(value):
    from dr_platform.env import env_rates

    with pytest.raises(ImproperlyConfigured, match="RATES"):
        env_rates("RATES", {"RATES": value})


def test_production_sends_wctp_credentials_only_to_the_configured_gateway_and_no_private_host():
    result = _run_manage(
        "shell",
        "-c",
        "from django.conf import settings; "
        "print(settings.DR_ALLOW_PRIVATE_OUTBOUND, settings.WCTP_TRUSTED_GATEWAYS)",
        WCTP_ENDPOINT="https://wctp.carrier.example/wctp",
        **PRODUCTION,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False ['https://wctp.carrier.example/wctp']"


def test_it_reads_the_trusted_wctp_gateways_and_the_private_outbound_switch():
    result = _run_manage(
        "shell",
        "-c",
        "from django.conf import settings; "
        "print(settings.DR_ALLOW_PRIVATE_OUTBOUND, settings.WCTP_TRUSTED_GATEWAYS)",
        WCTP_TRUSTED_GATEWAYS="https://a.example/wctp, https://b.example/wctp",
        DR_ALLOW_PRIVATE_OUTBOUND="1",
        **PRODUCTION,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == (
        "True ['https://a.example/wctp', 'https://b.example/wctp']"
    )
