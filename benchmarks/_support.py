"""What the benchmark scripts share (``make bench`` runs every script here but this one)."""

from __future__ import annotations

from urllib.parse import urlparse


def ensure_database(url: str) -> None:
    """Create the benchmark database when it does not exist yet."""
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{name}"')
