"""A webhook receiver stub: records each POST (path, headers, exact body bytes).

Answers 200 by default; ``script(503, 429, "timeout", 404)`` sets the answers to the next
requests (a status code, ``"timeout"`` to stall past the client's timeout, or ``"reset"``
to drop the connection), and ``status`` the answer after the script runs out.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ._http import FaultPlan, QuietHandler, ThreadedStub


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One POST as the receiver got it. Header names are lower-cased."""

    path: str
    headers: dict[str, str]
    body: bytes
    answered: str


class _Handler(QuietHandler):
    def do_POST(self) -> None:
        stub: WebhookStub = self.server.stub
        body = self.read_body()
        fault = stub.faults.next()
        answer = fault or str(stub.status)
        stub._record(
            WebhookRequest(
                path=self.path,
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body,
                answered=answer,
            )
        )
        if answer == "timeout":
            stub.released.wait(stub.stall_seconds)
            self.drop()
            return
        if answer == "reset":
            self.drop()
            return
        status = int(answer)
        headers = {"Retry-After": stub.retry_after} if status in (429, 503) else None
        if 300 <= status < 400:
            headers = {"Location": "http://127.0.0.1:9/elsewhere"}
        self.respond(status, b'{"ok": true}' if status < 300 else b"{}", headers=headers)


class WebhookStub(ThreadedStub):
    """The receiver stub; post to ``url``."""

    handler = _Handler

    def __init__(self, *, status: int = 200, stall_seconds: float = 5.0) -> None:
        super().__init__()
        self.status = status
        self.stall_seconds = stall_seconds
        self.retry_after = "30"
        self.faults = FaultPlan()
        self._lock = threading.Lock()
        self._requests: list[WebhookRequest] = []

    @property
    def url(self) -> str:
        return f"{self.base_url}/hooks/dr"

    def script(self, *answers: int | str) -> None:
        """Answer the next requests with these statuses or faults, in order."""
        self.faults.script(str(answer) for answer in answers)

    @property
    def requests(self) -> list[WebhookRequest]:
        with self._lock:
            return list(self._requests)

    def _record(self, request: WebhookRequest) -> None:
        with self._lock:
            self._requests.append(request)
