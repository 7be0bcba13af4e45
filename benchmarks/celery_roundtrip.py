"""Celery round-trip throughput against raw Redis list operations.

Sends N no-op tasks (``dr_platform.ping``) through the configured broker to a real worker
process and waits for every result; then pushes and pops the same N message bodies with
redis-py directly. Prints both throughputs and their ratio (Celery / raw).

Environment: CELERY_BROKER_URL (default redis://127.0.0.1:6379/14), BENCH_TASKS (2000),
BENCH_WORKER_CONCURRENCY (2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dr_platform.settings")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.conf import settings  # noqa: E402

from dr_platform.celery import ping  # noqa: E402

TASKS = int(os.environ.get("BENCH_TASKS", "2000"))
CONCURRENCY = os.environ.get("BENCH_WORKER_CONCURRENCY", "2")


def celery_round_trip() -> float:
    worker = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "dr_platform", "worker", "-Q", "default",
            "--concurrency", CONCURRENCY, "--loglevel", "WARNING",
            "--hostname", f"bench-{uuid.uuid4().hex[:6]}@%h",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
    )  # fmt: skip
    try:
        ping.delay("warm-up").get(timeout=60)  # the worker is up and connected
        started = time.perf_counter()
        results = [ping.delay(f"payload-{index}") for index in range(TASKS)]
        for index, result in enumerate(results):
            assert result.get(timeout=120) == f"payload-{index}"
        return time.perf_counter() - started
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def raw_redis(url: str) -> float:
    client = redis.Redis.from_url(url)
    key = f"bench:raw:{uuid.uuid4().hex}"
    bodies = [
        json.dumps([[f"payload-{index}"], {}, {"callbacks": None}]).encode()
        for index in range(TASKS)
    ]
    try:
        started = time.perf_counter()
        for body in bodies:
            client.lpush(key, body)
        for _ in bodies:
            client.brpop([key], timeout=5)
        return time.perf_counter() - started
    finally:
        client.delete(key)


def main() -> int:
    broker = settings.CELERY_BROKER_URL
    if not broker.startswith(("redis://", "rediss://")):
        print(f"celery_roundtrip needs a Redis broker; CELERY_BROKER_URL is {broker}")
        return 1
    celery_seconds = celery_round_trip()
    raw_seconds = raw_redis(broker)
    celery_rate = TASKS / celery_seconds
    raw_rate = TASKS / raw_seconds
    print(f"tasks: {TASKS}, worker concurrency {CONCURRENCY}, broker {broker}")
    print(f"celery round trip: {celery_seconds:.2f} s, {celery_rate:,.0f} tasks/s")
    print(f"raw redis-py push+pop: {raw_seconds:.2f} s, {raw_rate:,.0f} messages/s")
    print(f"ratio celery/raw: {celery_rate / raw_rate:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
