"""Which outbound addresses the platform may call on a participant's behalf.

Participants name some of the places the platform connects to: a webhook URL, their
paging carrier's WCTP endpoint, an SNPP server. Unchecked, that lets anyone with a portal
login make the platform's workers connect to its own network (the database, Redis, a cloud
metadata service at 169.254.169.254) or carry the platform's WCTP credentials to a server
of their choosing. The policy lives here, once, and is applied both when a method is saved
(:mod:`enrollment.services`) and when a message is sent (the channels), because a stored
address may predate the policy and a host name may resolve elsewhere later.

At send time the platform connects to the addresses it just checked, never to a second
lookup of the name: a hostile DNS server could answer a public address to the check and
127.0.0.1 to the connection (DNS rebinding). SNPP connects to the addresses
:func:`check_host` returns; HTTP goes through :func:`http_targets` and :func:`http_session`.

Two rules:

* An address a participant supplies must resolve only to global unicast addresses (not
  loopback, private, shared, link-local, multicast or reserved) and use a port from 1 to
  65535. ``DR_ALLOW_PRIVATE_OUTBOUND`` lifts the address rule (development, the demo and
  the tests, whose stub servers listen on 127.0.0.1); it is off whenever DEBUG is off.
* The platform's own WCTP ``senderID`` and ``securityCode`` go only to the gateways the
  operator lists in ``WCTP_TRUSTED_GATEWAYS`` (by default ``WCTP_ENDPOINT``).
"""

from __future__ import annotations

import http.cookiejar
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter


class OutboundAddressError(ValueError):
    """An outbound address the policy refuses; the message says why, for the participant."""


class UnresolvedHostError(OutboundAddressError):
    """The host name did not resolve: refused at save, but only a transient failure at send
    time (a DNS outage must not disable a participant's method)."""


def private_outbound_allowed() -> bool:
    """Whether ``DR_ALLOW_PRIVATE_OUTBOUND`` lets participant addresses reach any host."""
    return bool(getattr(settings, "DR_ALLOW_PRIVATE_OUTBOUND", False))


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_port(port: int) -> None:
    """Raise :class:`OutboundAddressError` unless ``port`` is from 1 to 65535."""
    if not 0 < port < 65536:
        raise OutboundAddressError(f"Port {port} is not a valid port (1-65535).")


def check_host(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, each checked against the policy.

    Returns the resolved IP addresses as strings, in the resolver's order of preference
    (empty when private addresses are allowed, in which case nothing is resolved). Raises
    :class:`OutboundAddressError` for a bad port, a host that does not resolve, or one
    resolving to any non-global address -- all of them are checked, so a name with one
    public and one internal record is refused.
    """
    check_port(port)
    if not host:
        raise OutboundAddressError("The address names no host.")
    if private_outbound_allowed():
        return []
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnresolvedHostError(f"The host {host!r} does not resolve ({exc}).") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise UnresolvedHostError(f"The host {host!r} does not resolve.")
    for address in addresses:
        if not _is_public(address):
            raise OutboundAddressError(
                f"The host {host!r} resolves to {address}, which is not a public internet address."
            )
    return addresses


def url_host_port(url: str) -> tuple[str, int]:
    """The host and port an http(s) URL connects to (the port defaults by scheme).

    Raises :class:`OutboundAddressError` for another scheme, no host or a bad port.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise OutboundAddressError(f"{url!r} is not an http(s) URL.")
    try:
        port = parts.port
    except ValueError:
        raise OutboundAddressError(f"{url!r} has a port outside 1-65535.") from None
    if not parts.hostname:
        raise OutboundAddressError(f"{url!r} names no host.")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def check_url(url: str) -> None:
    """Raise :class:`OutboundAddressError` unless the policy lets the platform call ``url``."""
    host, port = url_host_port(url)
    check_host(host, port)


@dataclass(frozen=True, slots=True)
class HttpTarget:
    """One way to send a request for a participant's URL.

    ``url`` is what the HTTP client requests. For a pinned target its host is an IP address
    the policy checked, and ``host_header`` is the original ``host[:port]``: the Host header,
    and for https the name :class:`PinnedAddressAdapter` does TLS for. ``host_header`` is
    ``None`` when nothing is pinned (the client resolves the name itself).
    """

    url: str
    host_header: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The headers this target adds to a request: ``Host`` when pinned, else none."""
        return {"Host": self.host_header} if self.host_header else {}


def http_targets(url: str) -> list[HttpTarget]:
    """The targets to try, in order, to request ``url`` under the policy.

    With private addresses allowed, ``url`` itself, unpinned. Otherwise the host is
    resolved and checked here, and each address it resolves to gives one target pinned to
    it (:func:`pin_url`), so the connection goes to exactly an address that was checked.
    Send them through :func:`http_session`.

    Raises :class:`OutboundAddressError` as :func:`check_url` does.
    """
    host, port = url_host_port(url)
    addresses = check_host(host, port)
    if not addresses:
        return [HttpTarget(url.strip())]
    return [pin_url(url, address) for address in addresses]


def pin_url(url: str, address: str) -> HttpTarget:
    """``url`` sent to the IP ``address``, keeping its own host for the Host header and TLS.

    The path, query and any ``user:password@`` stay as they are; the fragment, which is
    never sent, is dropped. Checks nothing: :func:`http_targets` does.
    """
    parts = urlsplit(url.strip())
    host, port = url_host_port(url)
    default_port = 443 if parts.scheme.lower() == "https" else 80
    # The ASCII form the resolver looked up, as the Host header must be.
    host_header = _netloc(host.encode("idna").decode("ascii"), port, default_port)
    userinfo, at, _ = parts.netloc.rpartition("@")
    netloc = f"{userinfo}{at}{_netloc(address, port, None)}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return HttpTarget(pinned, host_header)


def _netloc(host: str, port: int, default_port: int | None) -> str:
    host = f"[{host}]" if ":" in host else host
    return host if port == default_port else f"{host}:{port}"


class PinnedAddressAdapter(HTTPAdapter):
    """A requests transport adapter that keeps pinned :class:`HttpTarget` requests pinned.

    A request carrying a ``Host`` header is taken as pinned: it connects to the address in
    its URL (no lookup), and for https does TLS -- SNI and the certificate check, with the
    verification settings requests would use anyway -- for the name in the Host header.
    That is urllib3's documented way of connecting by IP to a named server
    (``server_hostname``), set through the hook requests provides for it from 2.32.3 (an
    older requests never calls the hook, and pinned https then fails the certificate
    check: closed, not open). A pinned request never goes through a proxy from the
    environment (``HTTPS_PROXY``...), which would look the name up again. Requests without
    a Host header go exactly as through a plain :class:`~requests.adapters.HTTPAdapter`.
    """

    def build_connection_pool_key_attributes(
        self,
        request: requests.PreparedRequest,
        verify: bool | str,
        cert: str | tuple[str, str] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """requests' pool parameters, plus the TLS server name of a pinned https request."""
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        host_header = request.headers.get("Host")
        if host_header and host_params["scheme"] == "https":
            # Also part of urllib3's pool key: each name gets its own connections.
            pool_kwargs["server_hostname"] = urlsplit(f"//{host_header}").hostname
        return host_params, pool_kwargs

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send ``request`` as :class:`~requests.adapters.HTTPAdapter` does, but a pinned
        one never through a proxy."""
        if "Host" in request.headers:
            proxies = None
        return super().send(
            request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
        )


def http_session() -> requests.Session:
    """A requests session for :class:`HttpTarget` requests (:class:`PinnedAddressAdapter`).

    It keeps no cookies: one session sends to every participant's receiver, and pinned
    URLs name addresses, so a cookie one receiver set would go to another on the same
    address.
    """
    session = requests.Session()
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    adapter = PinnedAddressAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def parse_host_port(value: str, *, default_port: int) -> tuple[str, int]:
    """Split ``"host:port"`` or ``"[v6]:port"`` (port optional).

    Raises :class:`OutboundAddressError` for an empty host, a port that is not a number or
    a port outside 1-65535.
    """
    value = value.strip()
    host, port = value, str(default_port)
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest.startswith(":"):
            port = rest[1:]
    elif value.count(":") == 1:
        host, port = value.split(":")
    if not host:
        raise OutboundAddressError(f"{value!r} names no host.")
    if not port.isdigit():
        raise OutboundAddressError(f"{value!r} has a port that is not a number.")
    number = int(port)
    check_port(number)
    return host, number


def _canonical_url(url: str) -> str:
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = (parts.hostname or "").lower()
    if port and port != default:
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")


def trusted_wctp_gateways() -> list[str]:
    """The WCTP gateway URLs the operator configured (``WCTP_TRUSTED_GATEWAYS``), in order."""
    return [url for url in getattr(settings, "WCTP_TRUSTED_GATEWAYS", []) if url]


def is_trusted_gateway(url: str, trusted: Iterable[str]) -> bool:
    """Whether ``url`` is one of ``trusted`` (scheme and host case, default ports ignored)."""
    wanted = _canonical_url(url)
    return any(_canonical_url(candidate) == wanted for candidate in trusted if candidate)
