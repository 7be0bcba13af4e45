"""A Twilio REST API stub: ``POST /2010-04-01/Accounts/{sid}/Messages.json`` and ``Calls.json``.

It answers like Twilio (201 with a message or call resource, errors as Twilio error JSON)
and can simulate:

* numbers Twilio refuses (``reject("+15005550001", code=21211)``, 21610 opted out ...),
* a script of faults for the next requests (``script("500", "429", "timeout")``),
* a deterministic share of faulty requests (``fail_share(0.1, ("500", "429"), seed=1)``).

Faults: ``"500"``/``"503"`` (server error), ``"429"`` (rate limited, ``Retry-After``),
``"timeout"`` (stall without accepting), ``"accepted_timeout"`` (accept and count the
message, then stall -- the ambiguous case where the client must not assume failure meant
"not sent"), ``"reset"`` (close the connection without answering).

For "exactly once" checks it counts accepted messages per key: the value of
``count_field`` (``StatusCallback`` by default), reduced to the first UUID in it, since the
platform puts the notification id in the callback URL. Work per request is kept minimal
(no logging, one lock) so benchmarks can push tens of thousands of requests through it.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl

from ._http import FaultPlan, QuietHandler, ThreadedStub

UUID_PATTERN: Final = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)
_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/(?P<resource>Messages|Calls)\.json$")

TWILIO_ERROR_MESSAGES: Final[dict[int, str]] = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    21211: "The 'To' number is not a valid phone number.",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number.",  # noqa: E501
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
}


@dataclass(frozen=True, slots=True)
class TwilioRequest:
    """One request as the stub received it."""

    resource: str  # "Messages" or "Calls"
    account_sid: str
    form: dict[str, str]
    auth: tuple[str, str] | None
    outcome: str  # "accepted", or the fault / error that answered it
    sid: str | None


class _Handler(QuietHandler):
    def do_POST(self) -> None:
        stub: TwilioStub = self.server.stub
        body = self.read_body()
        match = _PATH.match(self.path.split("?", 1)[0])
        if match is None:
            self._error(404, 20404)
            return
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        auth = _basic_auth(self.headers.get("Authorization"))
        resource = match["resource"]
        if stub.auth_token is not None and auth != (match["sid"], stub.auth_token):
            stub._record(resource, match["sid"], form, auth, "401", None)
            self._error(401, 20003)
            return
        fault = stub.faults.next()
        if fault in ("500", "503"):
            stub._record(resource, match["sid"], form, auth, fault, None)
            self._error(int(fault), 20500)
            return
        if fault == "429":
            stub._record(resource, match["sid"], form, auth, fault, None)
            self._error(429, 20429, headers={"Retry-After": stub.retry_after})
            return
        if fault == "timeout":
            stub._record(resource, match["sid"], form, auth, fault, None)
            stub.released.wait(stub.stall_seconds)
            self.drop()
            return
        if fault == "reset":
            stub._record(resource, match["sid"], form, auth, fault, None)
            self.drop()
            return
        rejection = stub.rejections.get(form.get("To", ""))
        if rejection is not None:
            status, code = rejection
            stub._record(resource, match["sid"], form, auth, f"error:{code}", None)
            self._error(status, code)
            return
        sid = stub._accept(resource, match["sid"], form, auth, fault or "accepted")
        if fault == "accepted_timeout":
            stub.released.wait(stub.stall_seconds)
            self.drop()
            return
        document = {
            "sid": sid,
            "account_sid": match["sid"],
            "to": form.get("To"),
            "from": form.get("From"),
            "status": "queued",
        }
        if resource == "Messages":
            document["body"] = form.get("Body")
        self.respond(201, json.dumps(document).encode())

    def _error(self, status: int, code: int, headers: dict[str, str] | None = None) -> None:
        document = {
            "code": code,
            "message": TWILIO_ERROR_MESSAGES.get(code, "Error"),
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
        self.respond(status, json.dumps(document).encode(), headers=headers)


def _basic_auth(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user, password


class TwilioStub(ThreadedStub):
    """The Twilio stub. ``base_url`` goes into ``TWILIO_BASE_URL``.

    ``auth_token``: when set, requests must authenticate as ``(account sid, auth_token)``
    or get Twilio's 401/20003. ``record_requests=False`` keeps only the counters (for
    long benchmarks).
    """

    handler = _Handler

    def __init__(
        self,
        *,
        auth_token: str | None = None,
        count_field: str = "StatusCallback",
        stall_seconds: float = 5.0,
        retry_after: str = "1",
        record_requests: bool = True,
    ) -> None:
        super().__init__()
        self.auth_token = auth_token
        self.count_field = count_field
        self.stall_seconds = stall_seconds
        self.retry_after = retry_after
        self.record_requests = record_requests
        self.faults = FaultPlan()
        self.rejections: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._sids = itertools.count(1)
        self._requests: list[TwilioRequest] = []
        self._accepted: Counter[str] = Counter()
        self._attempts: Counter[str] = Counter()

    # --- configuration -----------------------------------------------------------------

    def reject(self, to: str, *, code: int = 21211, status: int = 400) -> None:
        """Answer every request to ``to`` with Twilio error ``code`` and HTTP ``status``."""
        self.rejections[to] = (status, code)

    def script(self, *faults: str) -> None:
        """Answer the next requests with these faults, in order."""
        self.faults.script(faults)

    def fail_share(self, share: float, faults: tuple[str, ...] = ("500",), seed: int = 0) -> None:
        """After the script, fail ``share`` of requests with faults drawn from ``faults``."""
        self.faults.share(share, faults, seed)

    def reset(self) -> None:
        """Forget recorded requests, counters, rejections and faults."""
        with self._lock:
            self._requests.clear()
            self._accepted.clear()
            self._attempts.clear()
        self.rejections.clear()
        self.faults.clear()

    # --- what was received -------------------------------------------------------------

    @property
    def requests(self) -> list[TwilioRequest]:
        """Every request received, in arrival order (empty without ``record_requests``)."""
        with self._lock:
            return list(self._requests)

    @property
    def accepted(self) -> list[TwilioRequest]:
        """The requests answered as accepted (including ``accepted_timeout``)."""
        return [request for request in self.requests if request.sid is not None]

    @property
    def accepted_counts(self) -> Counter[str]:
        """Accepted messages per count key (notification id)."""
        with self._lock:
            return Counter(self._accepted)

    @property
    def attempt_counts(self) -> Counter[str]:
        """All requests per count key, whatever the answer."""
        with self._lock:
            return Counter(self._attempts)

    def count_for(self, key: object) -> int:
        """How many messages were accepted for ``key`` (a notification id)."""
        with self._lock:
            return self._accepted[str(key)]

    def count_key(self, form: dict[str, str]) -> str:
        value = form.get(self.count_field, "")
        match = UUID_PATTERN.search(value)
        if match is None:
            return value
        text = match.group(0).replace("-", "").lower()
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

    # --- called by the handler ---------------------------------------------------------

    def _record(
        self,
        resource: str,
        account_sid: str,
        form: dict[str, str],
        auth: tuple[str, str] | None,
        outcome: str,
        sid: str | None,
    ) -> None:
        key = self.count_key(form)
        with self._lock:
            self._attempts[key] += 1
            if sid is not None:
                self._accepted[key] += 1
            if self.record_requests:
                self._requests.append(
                    TwilioRequest(resource, account_sid, form, auth, outcome, sid)
                )

    def _accept(
        self,
        resource: str,
        account_sid: str,
        form: dict[str, str],
        auth: tuple[str, str] | None,
        outcome: str,
    ) -> str:
        prefix = "SM" if resource == "Messages" else "CA"
        sid = f"{prefix}{next(self._sids):032x}"
        self._record(resource, account_sid, form, auth, outcome, sid)
        return sid
