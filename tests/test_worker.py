"""Tasks really travel through a broker to a worker and back (never eager mode)."""

from __future__ import annotations

import uuid

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker

from dr_platform.celery import ALL_QUEUES, CHANNEL_QUEUES, ping
from dr_platform.celery import app as celery_app
from tests.conftest import redis_url
from tests.workers import start_celery_worker, stop_celery_worker

pytestmark = pytest.mark.worker


def _worker(environment: dict[str, str], queues: tuple[str, ...] = ALL_QUEUES):
    return start_celery_worker(environment, queues)


def test_the_pipeline_defaults_are_safe_for_notifications():
    conf = celery_app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_time_limit and conf.task_soft_time_limit < conf.task_time_limit
    assert conf.task_always_eager is False
    assert {queue.name for queue in conf.task_queues} >= set(CHANNEL_QUEUES)
    assert conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"


def test_a_task_round_trips_through_an_in_process_worker():
    payload = f"in-process-{uuid.uuid4()}"
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        assert ping.delay(payload).get(timeout=30) == payload


def test_a_task_round_trips_through_a_worker_subprocess(worker_environment):
    worker = _worker(worker_environment)
    try:
        payload = f"subprocess-{uuid.uuid4()}"
        assert ping.delay(payload).get(timeout=60) == payload
    finally:
        stop_celery_worker(worker)


def test_a_task_sent_to_a_channel_queue_reaches_a_worker_of_that_queue(worker_environment):
    worker = _worker(worker_environment, queues=("sms",))
    try:
        payload = f"sms-queue-{uuid.uuid4()}"
        assert ping.apply_async((payload,), queue="sms").get(timeout=60) == payload
    finally:
        stop_celery_worker(worker)


@pytest.mark.redis
def test_a_task_round_trips_through_redis(worker_environment):
    url = redis_url()
    worker = _worker({**worker_environment, "CELERY_BROKER_URL": url, "CELERY_RESULT_BACKEND": url})
    producer = Celery("redis-round-trip", broker=url, backend=url)
    try:
        payload = f"redis-{uuid.uuid4()}"
        result = producer.send_task("dr_platform.ping", args=(payload,), queue="default")
        assert result.get(timeout=60) == payload
    finally:
        stop_celery_worker(worker)
        producer.close()
