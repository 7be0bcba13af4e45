"""The registry, queues and rate limits the task layer relies on."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from celery.worker import control
from celery.worker.consumer.consumer import Consumer
from django.test import override_settings

from dr_platform.celery import app
from events import tasks
from events.channels import (
    QUEUE,
    RATE_LIMIT,
    REGISTRY,
    Transport,
    UnknownChannelError,
    transport_for,
)
from events.channels.sandbox import SandboxTransport
from events.channels.sms import SmsTransport

KINDS = {"sms", "voice", "pager_wctp", "pager_snpp", "email", "webhook", "sandbox"}


def test_every_kind_has_a_transport_a_queue_and_a_rate_limit() -> None:
    assert set(REGISTRY) == KINDS
    assert set(QUEUE) == KINDS
    assert set(RATE_LIMIT) == KINDS


def test_each_transport_declares_its_own_kind() -> None:
    for kind, transport in REGISTRY.items():
        assert issubclass(transport, Transport)
        assert transport.kind == kind


def test_queues_are_one_per_channel() -> None:
    assert set(QUEUE.values()) == {"sms", "voice", "pager", "email", "webhook", "sandbox"}
    assert QUEUE["pager_wctp"] == QUEUE["pager_snpp"] == "pager"


def test_rate_limits_are_celery_rate_strings() -> None:
    for limit in RATE_LIMIT.values():
        assert limit is None or re.fullmatch(r"\d+(\.\d+)?/[smh]", limit)
    assert RATE_LIMIT["sms"] == "1/s"


def test_it_finds_the_transport_for_a_kind() -> None:
    assert transport_for("sms") is SmsTransport
    assert transport_for("sandbox") is SandboxTransport


def test_it_names_the_known_kinds_for_an_unknown_kind() -> None:
    with pytest.raises(UnknownChannelError, match="'fax'.*email.*webhook"):
        transport_for("fax")


def test_a_limited_channel_batches_as_many_sends_as_its_rate_allows_per_second(settings) -> None:
    from events.channels import MAX_SEND_BATCH, send_batching

    settings.NOTIFICATION_RATE_LIMITS = {}
    assert send_batching("sms") == (1, "1/s")  # Twilio long code: one per task, 1 a second
    assert send_batching("email") == (10, "1/s")  # ten per task, one task a second
    assert send_batching("pager") == (5, "1/s")  # both pager kinds share the queue
    assert send_batching("sandbox") == (MAX_SEND_BATCH, None)
    settings.NOTIFICATION_RATE_LIMITS = {"sms": "200/s", "voice": "30/m"}
    assert MAX_SEND_BATCH == 100
    assert send_batching("sms") == (100, "2/s")  # still 200 messages a second
    assert send_batching("voice") == (1, "0.5/s")
    settings.NOTIFICATION_RATE_LIMITS = {"sms": None}
    assert send_batching("sms") == (MAX_SEND_BATCH, None)


def test_a_rate_limit_for_an_unknown_channel_is_refused(settings) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from events.channels import rate_limit

    settings.NOTIFICATION_RATE_LIMITS = {"fax": "1/s"}
    with pytest.raises(ImproperlyConfigured, match="fax"):
        rate_limit("sms")


class _WorkerBuckets:
    """The part of a Celery worker's consumer that makes a token bucket of each task's
    ``rate_limit`` (Celery's own code), without a broker."""

    bucket_for_task = Consumer.bucket_for_task
    reset_rate_limits = Consumer.reset_rate_limits

    def __init__(self) -> None:
        self.app, self.task_buckets = app, {}
        self.reset_rate_limits()


def test_a_worker_limits_each_send_task_by_the_settings_in_effect_when_it_starts() -> None:
    assert tasks.SEND_TASKS  # the send tasks are registered
    with override_settings(NOTIFICATION_RATE_LIMITS={}):
        buckets = _WorkerBuckets().task_buckets
    assert buckets["events.send_sms"].fill_rate == 1.0
    assert buckets["events.send_sandbox"] is None
    with override_settings(NOTIFICATION_RATE_LIMITS={"sms": "30/m", "sandbox": "5/s"}):
        buckets = _WorkerBuckets().task_buckets
    assert buckets["events.send_sms"].fill_rate == 0.5  # one text every two seconds
    assert buckets["events.send_sandbox"].fill_rate == 1.0  # five per task, a task a second


def test_a_rate_set_by_celery_control_holds_over_the_settings_until_cleared() -> None:
    worker = _WorkerBuckets()
    state = SimpleNamespace(app=app, consumer=worker)
    try:
        assert "ok" in control.rate_limit(state, "events.send_email", "2/s")
        with override_settings(NOTIFICATION_RATE_LIMITS={"email": "50/s"}):
            worker.reset_rate_limits()
            assert worker.task_buckets["events.send_email"].fill_rate == 2.0
    finally:
        app.tasks["events.send_email"].rate_limit = None  # back to the settings
    with override_settings(NOTIFICATION_RATE_LIMITS={"email": "50/s"}):
        assert app.tasks["events.send_email"].rate_limit == "1/s"  # 50 per task
