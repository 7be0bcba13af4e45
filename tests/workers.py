"""Celery worker subprocesses for tests that send tasks through a real broker.

A worker started here runs this checkout's ``dr_platform`` app with the solo pool, so a
test decides exactly when it has work and when it stops; it shares the test's database
when the environment carries :func:`database_url`.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """The URL of this test run's database, for a worker process to use the same one."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    return (
        f"postgres://{settings['USER']}:{settings.get('PASSWORD') or ''}@"
        f"{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"
    )


def start_celery_worker(
    environment: Mapping[str, str], queues: Iterable[str], *, name: str = "test"
) -> subprocess.Popen:
    """Start a solo-pool worker consuming ``queues`` with ``environment``."""
    return subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "dr_platform", "worker",
            "--pool", "solo", "--loglevel", "WARNING", "-Q", ",".join(queues),
            "--hostname", f"{name}-{uuid.uuid4().hex[:8]}@%h",
        ],
        cwd=ROOT,
        env=dict(environment),
    )  # fmt: skip


def stop_celery_worker(worker: subprocess.Popen) -> None:
    """Stop ``worker`` (warm shutdown, killed after 20 s); nothing if it has exited."""
    if worker.poll() is not None:
        return
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
