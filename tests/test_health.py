"""/healthz: 200 when the database and broker answer, 503 naming what does not."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connections

pytestmark = pytest.mark.django_db


def test_it_answers_200_when_database_and_broker_are_reachable(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_it_answers_503_when_the_broker_is_unreachable(client, settings):
    # Nothing listens on port 1 of loopback: the connection is refused at once.
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"] != "ok"


def test_it_answers_503_when_the_database_is_unreachable(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connections["default"], "cursor", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "connection refused" in response.json()["checks"]["database"]


def test_it_is_not_redirected_to_https_for_load_balancers(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
