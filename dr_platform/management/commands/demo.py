"""Run the platform for a demo: web server, a real Celery worker and beat, all at once.

``manage.py demo`` runs until Ctrl-C and then stops every process it started.
``manage.py demo --check`` starts the same processes headless, opens the main pages as
each demo role, sends a task through the worker and waits for its answer, then stops
everything and exits 0, or 1 saying what failed.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dr_platform.celery import ALL_QUEUES
from dr_platform.demo import DEMO_PASSWORD, demo_logins


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Command(BaseCommand):
    help = "Run the web server, a Celery worker and beat with the demo data (Ctrl-C stops)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--check", action="store_true", help="Verify pages and a task round trip, then stop."
        )

    def handle(self, *args, port: int, check: bool, **options) -> None:
        if check:
            port = _free_port()
        log_dir = Path(settings.VAR_DIR) / "log"
        log_dir.mkdir(parents=True, exist_ok=True)
        python = sys.executable
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        commands = {
            "web": [python, manage, "runserver", f"127.0.0.1:{port}", "--noreload"],
            "worker": [
                python, "-m", "celery", "-A", "dr_platform", "worker",
                "-Q", ",".join(ALL_QUEUES), "--concurrency", "2", "--loglevel", "INFO",
                "--hostname", f"demo-{uuid.uuid4().hex[:6]}@%h",
            ],
            "beat": [
                python, "-m", "celery", "-A", "dr_platform", "beat", "--loglevel", "INFO",
                "--pidfile", "",
            ],
        }  # fmt: skip
        processes: dict[str, subprocess.Popen] = {}
        logs = {}
        try:
            for name, command in commands.items():
                if check:
                    logs[name] = (log_dir / f"demo-{name}.log").open("w")
                    processes[name] = subprocess.Popen(  # noqa: S603 - our own interpreter
                        command, cwd=settings.BASE_DIR, stdout=logs[name], stderr=subprocess.STDOUT
                    )
                else:
                    processes[name] = subprocess.Popen(command, cwd=settings.BASE_DIR)  # noqa: S603
            base_url = f"http://127.0.0.1:{port}"
            self._wait_for_web(base_url, processes)
            if check:
                failures = self._check(base_url)
                if failures:
                    for failure in failures:
                        self.stderr.write(self.style.ERROR(f"FAILED: {failure}"))
                    for name in processes:
                        tail = (log_dir / f"demo-{name}.log").read_text(errors="replace")[-2000:]
                        self.stderr.write(f"--- last lines of the {name} log ---\n{tail}")
                    raise CommandError(f"demo check failed: {len(failures)} problem(s)")
                self.stdout.write(self.style.SUCCESS("Demo check passed."))
                return
            self._announce(base_url)
            while all(process.poll() is None for process in processes.values()):
                time.sleep(0.5)
            stopped = [name for name, process in processes.items() if process.poll() is not None]
            raise CommandError(f"{', '.join(stopped)} stopped unexpectedly; stopping the demo.")
        except KeyboardInterrupt:
            self.stdout.write("\nStopping the demo…")
        finally:
            self._stop(processes)
            for handle in logs.values():
                handle.close()

    def _wait_for_web(self, base_url: str, processes: dict[str, subprocess.Popen]) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            for name, process in processes.items():
                if process.poll() is not None:
                    raise CommandError(f"the {name} process exited with code {process.returncode}")
            try:
                if requests.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise CommandError(f"the web server did not answer {base_url}/healthz within 90 s")

    def _announce(self, base_url: str) -> None:
        self.stdout.write(self.style.SUCCESS(f"\nThe platform is running at {base_url}/"))
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        self.stdout.write(f"  {'admin':<10} superuser")
        for login in demo_logins():
            self.stdout.write(f"  {login.username:<10} {login.description}")
        self.stdout.write("Press Ctrl-C to stop the web server, the worker and beat.\n")

    def _check(self, base_url: str) -> list[str]:
        failures: list[str] = []
        for login in demo_logins():
            before = len(failures)
            session = requests.Session()
            try:
                form = session.get(f"{base_url}/accounts/login/", timeout=10)
                token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
                response = session.post(
                    f"{base_url}/accounts/login/",
                    data={
                        "username": login.username,
                        "password": DEMO_PASSWORD,
                        "csrfmiddlewaretoken": token.group(1) if token else "",
                    },
                    headers={"Referer": f"{base_url}/accounts/login/"},
                    timeout=10,
                )
            except requests.RequestException as error:
                failures.append(f"{login.username}: login request failed: {error}")
                continue
            if "sessionid" not in session.cookies:
                failures.append(f"{login.username}: login refused ({response.status_code})")
                continue
            for page in login.pages:
                status = session.get(f"{base_url}{page}", timeout=30).status_code
                if status != 200:
                    failures.append(f"{login.username}: {page} answered {status}, expected 200")
            for page in login.forbidden:
                status = session.get(f"{base_url}{page}", timeout=30).status_code
                if status != 404:
                    failures.append(f"{login.username}: {page} answered {status}, expected 404")
            if len(failures) == before:
                self.stdout.write(f"  pages ok for {login.username}")
        failures.extend(self._check_task_round_trip())
        return failures

    def _check_task_round_trip(self) -> list[str]:
        from dr_platform.celery import ping

        payload = f"demo-check-{uuid.uuid4()}"
        try:
            answer = ping.delay(payload).get(timeout=60)
        except Exception as error:  # noqa: BLE001 - report whatever went wrong
            return [f"task round trip through the worker failed: {type(error).__name__}: {error}"]
        if answer != payload:
            return [f"task round trip returned {answer!r}, expected {payload!r}"]
        self.stdout.write("  task round trip through the worker ok")
        return []

    def _stop(self, processes: dict[str, subprocess.Popen]) -> None:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
