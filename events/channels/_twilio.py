"""The Twilio REST client shared by the ``sms`` and ``voice`` transports.

The official ``twilio`` client always builds ``https://api.twilio.com/...`` URLs (its
``Domain.base_url`` is fixed, and ``edge``/``region`` only rewrite the host name inside
``twilio.com``). To send to another base URL (a loopback stub in tests, a regional proxy)
we hand the client our own ``http_client``: it receives the fully built URL after the
client has applied edge/region, swaps scheme, host and port for the configured base URL and
keeps the path (``/2010-04-01/Accounts/{sid}/Messages.json``). Everything above the HTTP
layer (request signing with the auth token, form encoding, error parsing) stays the
official client's.

The same HTTP client is also where transport-level failures become
:class:`~events.channels.base.TransportError`: the official client drops the response
headers when it raises, so a 429's ``Retry-After`` would otherwise be lost.

There are two such HTTP clients, for the official client's two modes: synchronous
(``requests``, one message per call: :meth:`SmsTransport.notify`) and asynchronous
(``aiohttp``, the official ``AsyncTwilioHttpClient``, for a batch sent concurrently by
:meth:`SmsTransport.notify_many`). Both read the proxy settings of the environment
(``HTTPS_PROXY``, ``NO_PROXY`` ...) once, when they are built, for the one host they talk
to; ``requests`` would otherwise look them up again on every call, a third of a
millisecond each time, 20,000 times in a large dispatch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies
from twilio.base.exceptions import TwilioException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from .base import TransportError, http_status_is_transient, parse_retry_after

logger = logging.getLogger(__name__)

TWILIO_API_BASE_URL = "https://api.twilio.com"

#: Twilio error codes that mean "this number will never take this message". Everything
#: else in the 4xx range is treated the same way, this list only improves the wording.
#: Source: https://www.twilio.com/docs/api/errors
PERMANENT_ERROR_CODES: dict[int, str] = {
    21211: "invalid 'To' phone number",
    21214: "'To' number cannot be reached",
    21217: "phone number does not appear to be valid",
    21408: "permission to send to this region is not enabled",
    21610: "recipient has opted out (replied STOP)",
    21612: "'To' number is not reachable via this route",
    21614: "'To' number is not a mobile number",
    13224: "invalid 'To' number for voice calls",
}


@dataclass(frozen=True, slots=True)
class TwilioSettings:
    """Twilio account configuration. ``timeout`` is in seconds and applies to every call."""

    account_sid: str
    auth_token: str
    from_number: str
    base_url: str = TWILIO_API_BASE_URL
    timeout: float = 10.0

    @classmethod
    def from_settings(cls) -> TwilioSettings:
        """Read ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN``, ``TWILIO_FROM_NUMBER``,
        ``TWILIO_BASE_URL`` and ``TWILIO_TIMEOUT`` from Django settings."""
        from django.conf import settings

        return cls(
            account_sid=getattr(settings, "TWILIO_ACCOUNT_SID", ""),
            auth_token=getattr(settings, "TWILIO_AUTH_TOKEN", ""),
            from_number=getattr(settings, "TWILIO_FROM_NUMBER", ""),
            base_url=getattr(settings, "TWILIO_BASE_URL", "") or TWILIO_API_BASE_URL,
            timeout=float(getattr(settings, "TWILIO_TIMEOUT", 10)),
        )


class _BaseUrl:
    """Where requests go instead of twilio.com, and the proxy the environment names for it."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"Twilio base URL must be an http(s) URL, got {base_url!r}")
        self.scheme = parts.scheme
        self.netloc = parts.netloc
        self.path_prefix = parts.path.rstrip("/")
        # {"https": "http://proxy:3128"}, or {} when no proxy is set or NO_PROXY covers it.
        self.proxies: dict[str, str] = dict(get_environ_proxies(base_url))

    def rewrite(self, url: str) -> str:
        """Return ``url`` with scheme, host and port of the configured base URL."""
        parts = urlsplit(url)
        return urlunsplit(
            (self.scheme, self.netloc, self.path_prefix + parts.path, parts.query, "")
        )


def _refuse_rate_limited(status: int, headers: Mapping[str, str]) -> None:
    if status == 429:
        raise TransportError(
            "Twilio rate limit reached (HTTP 429)",
            permanent=False,
            retry_after=parse_retry_after(headers.get("Retry-After")),
            code="429",
        )


class BaseUrlHttpClient(TwilioHttpClient):
    """A ``TwilioHttpClient`` that sends every request to ``base_url`` instead of twilio.com.

    Also converts network failures and 429 responses into ``TransportError`` (transient),
    because only here are the response headers still available.
    """

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(pool_connections=True, timeout=timeout)
        self._target = _BaseUrl(base_url)
        if self.session is not None:
            # The parent only mounts a pooled adapter for https; plain http (loopback
            # stubs, an internal proxy) gets the same pool size so connections are reused.
            self.session.mount("http://", HTTPAdapter(pool_maxsize=32))
            # The environment is read once (module docstring): the proxy for our one host
            # and the CA bundle requests would take from it.
            self.session.trust_env = False
            self.session.proxies = self._target.proxies
            self.session.verify = (
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            )

    def rewrite(self, url: str) -> str:
        """Return ``url`` with scheme, host and port of the configured base URL."""
        return self._target.rewrite(url)

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        try:
            response = super().request(
                method,
                self.rewrite(url),
                params=params,
                data=data,
                headers=headers,
                auth=auth,
                timeout=timeout,
                allow_redirects=allow_redirects,
            )
        except requests.Timeout as exc:
            raise TransportError(f"Twilio request timed out: {exc}", permanent=False) from exc
        except requests.RequestException as exc:
            raise TransportError(f"Twilio unreachable: {exc}", permanent=False) from exc
        _refuse_rate_limited(response.status_code, response.headers)
        return response


class AsyncBaseUrlHttpClient(AsyncTwilioHttpClient):
    """The official asynchronous HTTP client, sending to ``base_url`` like
    :class:`BaseUrlHttpClient`, with the same conversion of failures into ``TransportError``.

    An ``aiohttp`` session belongs to one event loop: one is opened on first use inside
    each loop that sends (``events.channels._concurrent`` runs one per process), and
    :meth:`close` closes the running loop's.
    """

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(pool_connections=False, timeout=timeout)
        self._target = _BaseUrl(base_url)
        self._proxy = self._target.proxies.get(self._target.scheme)
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        # A client dropped before the process ends (settings changed, tests) closes its
        # sessions on their loops, instead of leaving open connections behind.
        weakref.finalize(self, _close_sessions, self._sessions)

    def rewrite(self, url: str) -> str:
        """Return ``url`` with scheme, host and port of the configured base URL."""
        return self._target.rewrite(url)

    async def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None:
            session = self._sessions[loop] = aiohttp.ClientSession()
        headers = dict(headers or {})
        if auth is not None:
            headers["Authorization"] = aiohttp.encode_basic_auth(auth[0], auth[1])
        body = None
        if data:
            # Form-encoded here, as requests does for the synchronous client (lists become
            # repeated keys): aiohttp turns a dict into a FormData, building a multipart
            # writer for every request, a tenth of the CPU a message costs a worker.
            body = urlencode(data, doseq=True)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        seconds = timeout if timeout is not None else self.timeout
        try:
            async with session.request(
                method.upper(),
                self.rewrite(url),
                params=params,
                data=body,
                headers=headers,
                proxy=self._proxy,
                allow_redirects=allow_redirects,
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as response:
                text = await response.text()
                status, response_headers = response.status, response.headers
        except TimeoutError as exc:
            message = f"Twilio request timed out after {seconds} s"
            raise TransportError(message, permanent=False) from exc
        except aiohttp.ClientError as exc:
            raise TransportError(f"Twilio unreachable: {exc!r}", permanent=False) from exc
        _refuse_rate_limited(status, response_headers)
        return Response(status, text, response_headers)

    async def close(self) -> None:
        """Close the running loop's session."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()


def _close_sessions(sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession]) -> None:
    for loop, session in list(sessions.items()):
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(session.close(), loop)
    sessions.clear()


def _check_settings(config: TwilioSettings) -> None:
    missing = [
        name
        for name, value in (
            ("TWILIO_ACCOUNT_SID", config.account_sid),
            ("TWILIO_AUTH_TOKEN", config.auth_token),
            ("TWILIO_FROM_NUMBER", config.from_number),
        )
        if not value
    ]
    if missing:
        raise ValueError(f"Twilio is not configured: {', '.join(missing)} empty")


def _client(
    config: TwilioSettings, http_client: TwilioHttpClient | AsyncTwilioHttpClient
) -> Client:
    client = Client(config.account_sid, config.auth_token, http_client=http_client)
    # Client() falls back to TWILIO_EDGE / TWILIO_REGION from os.environ; the base URL is
    # the single source of truth for where requests go.
    client.edge = None
    client.region = None
    return client


def build_client(config: TwilioSettings) -> Client:
    """A Twilio REST client for ``config``, talking to ``config.base_url``.

    Raises ``ValueError`` for a missing account SID, auth token or sender number, so a
    misconfigured deployment fails when the transport is built, not on the first send.
    """
    _check_settings(config)
    return _client(config, BaseUrlHttpClient(config.base_url, config.timeout))


def build_async_client(config: TwilioSettings) -> Client:
    """The same client in asynchronous mode (``messages.create_async`` ...); its HTTP
    client opens a session per event loop that uses it. Raises like :func:`build_client`.
    """
    _check_settings(config)
    return _client(config, AsyncBaseUrlHttpClient(config.base_url, config.timeout))


def error_from_exception(exc: TwilioException) -> TransportError:
    """Classify an exception raised by the Twilio client.

    HTTP 5xx, 408 and 429 are transient; 401/403 (our credentials or account) are transient
    as a configuration fault; every other 4xx (invalid number, unsubscribed recipient
    21610, region not enabled ...) is permanent.
    """
    status = getattr(exc, "status", None)
    code = getattr(exc, "code", None)
    text = getattr(exc, "msg", None) or getattr(exc, "detail", None) or str(exc)
    if not isinstance(status, int):
        return TransportError(f"Twilio error: {text}", permanent=False)
    code_text = str(code) if code is not None else str(status)
    if http_status_is_transient(status):
        return TransportError(
            f"Twilio error {code_text} (HTTP {status}): {text}", permanent=False, code=code_text
        )
    if status in (401, 403):
        logger.error("Twilio rejected the platform's credentials: %s", text)
        return TransportError(
            f"Twilio rejected our credentials (HTTP {status}, error {code_text}): {text}",
            permanent=False,
            code=code_text,
        )
    reason = PERMANENT_ERROR_CODES.get(code) if isinstance(code, int) else None
    return TransportError(
        f"Twilio error {code_text} (HTTP {status}): {reason or text}",
        permanent=True,
        code=code_text,
    )


__all__ = [
    "AsyncBaseUrlHttpClient",
    "BaseUrlHttpClient",
    "PERMANENT_ERROR_CODES",
    "TwilioSettings",
    "build_async_client",
    "build_client",
    "error_from_exception",
]
