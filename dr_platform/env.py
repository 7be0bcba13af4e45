"""Reading configuration from the environment.

Every setting the platform takes from the environment goes through these helpers, so a bad
value stops start-up with a message that names the variable and says what was expected,
instead of failing later somewhere deep in a request.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str, environ: Mapping[str, str] = os.environ) -> str:
    """Return the variable's value stripped of surrounding blanks, or ``default`` when unset."""
    value = environ.get(name)
    return default if value is None else value.strip()


def env_bool(name: str, default: bool, environ: Mapping[str, str] = os.environ) -> bool:
    """Return a boolean; accepts 1/0, true/false, yes/no, on/off (any case).

    Raises ImproperlyConfigured for any other value, naming the variable.
    """
    value = environ.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a boolean; use one of 1/0, true/false, yes/no, on/off."
    )


def env_int(
    name: str,
    default: int,
    environ: Mapping[str, str] = os.environ,
    *,
    minimum: int | None = None,
) -> int:
    """Return an integer, at least ``minimum`` when given; raises ImproperlyConfigured."""
    value = environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} must be at least {minimum}.")
    return number


def env_list(name: str, default: list[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    """Return a comma-separated list with blanks and empty items removed."""
    value = environ.get(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


_RATE = re.compile(r"^\d+(\.\d+)?(/[smh])?$")


def env_rates(name: str, environ: Mapping[str, str] = os.environ) -> dict[str, str | None]:
    """Return ``kind=rate`` pairs as a dict, e.g. ``sms=30/s,voice=1/s,webhook=none``.

    A rate is a Celery rate limit (``N``, ``N/s``, ``N/m`` or ``N/h``) or ``none`` (no
    limit, stored as ``None``). Unset or empty gives ``{}``. Raises ImproperlyConfigured
    for a malformed pair, naming the variable.
    """
    rates: dict[str, str | None] = {}
    for item in env_list(name, [], environ):
        kind, separator, rate = (part.strip() for part in item.partition("="))
        if not separator or not kind:
            raise ImproperlyConfigured(f"{name}: {item!r} is not kind=rate (e.g. sms=30/s).")
        if rate.lower() == "none":
            rates[kind] = None
        elif _RATE.match(rate):
            rates[kind] = rate
        else:
            raise ImproperlyConfigured(
                f"{name}: {rate!r} for {kind} is not a rate; use N/s, N/m, N/h or none."
            )
    return rates


def env_url(
    name: str,
    default: str,
    schemes: tuple[str, ...],
    environ: Mapping[str, str] = os.environ,
) -> str:
    """Return a URL whose scheme is one of ``schemes``; raises ImproperlyConfigured otherwise."""
    value = env_str(name, default, environ)
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in schemes:
        raise ImproperlyConfigured(
            f"{name}={value!r} has an unsupported scheme {scheme!r}; "
            f"expected one of: {', '.join(s + '://' for s in schemes)}."
        )
    return value


def database_config(url: str, *, conn_max_age: int = 60) -> dict:
    """Turn a ``DATABASE_URL`` into a Django DATABASES entry.

    Supports ``sqlite:///relative/or/absolute.sqlite3`` and ``postgres://`` (psycopg 3).
    SQLite gets a write-ahead log and immediate transactions, because the web server and
    the Celery worker write to the same file at the same time in the demo.
    """
    import dj_database_url

    if not url.startswith(("sqlite://", "postgres://", "postgresql://", "pgsql://")):
        raise ImproperlyConfigured(
            f"DATABASE_URL={url!r} is not supported; use sqlite:///path or postgres://..."
        )
    try:
        config = dj_database_url.parse(url, conn_max_age=conn_max_age, conn_health_checks=True)
    except ValueError as error:
        raise ImproperlyConfigured(f"DATABASE_URL={url!r} cannot be parsed: {error}") from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config["CONN_MAX_AGE"] = 0
        config["OPTIONS"] = {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
        # The test database is a file, not memory, so that a worker subprocess started by an
        # integration test can open the same database (tests pass it the file's path); one
        # per test process, so two test runs never share it.
        name = Path(str(config["NAME"]))
        config["TEST"] = {"NAME": str(name.with_name(f"test_{name.stem}_{os.getpid()}.sqlite3"))}
    return config
