"""Reachability checks behind ``/healthz``."""

from __future__ import annotations

import os

from django.conf import settings
from django.db import connections

from dr_platform.celery import app as celery_app


def database_status() -> str | None:
    """Return None when the default database answers ``SELECT 1``, else the error text."""
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # noqa: BLE001 - any failure means "unhealthy", with its reason
        return f"{type(error).__name__}: {error}"
    return None


def broker_status(timeout: float = 2.0) -> str | None:
    """Return None when the Celery broker accepts a connection, else the error text."""
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    folder = options.get("data_folder_in")
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        if not folder or not os.access(folder, os.W_OK):
            return f"broker folder {folder!r} is missing or not writable"
        return None
    try:
        with celery_app.connection_for_write(url=settings.CELERY_BROKER_URL) as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
    except Exception as error:  # noqa: BLE001
        return f"{type(error).__name__}: {error}"
    return None
