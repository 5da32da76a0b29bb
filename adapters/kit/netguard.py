"""SSRF guard for URLs that users type in (ICS feeds, CalDAV servers).

A feed URL is user input: without a guard, "https://10.0.0.5/admin" would make the bot fetch from
the clinic's own network. `GuardTransport` resolves each request's host, refuses private,
loopback, link-local, multicast, reserved and unspecified addresses (IPv4 and IPv6, IPv4-mapped
included), and then connects to the address it checked, so a DNS answer that changes between the
check and the connection (DNS rebinding) cannot slip through. TLS still verifies the certificate
against the host name (httpx's `sni_hostname` extension).

Operators who do mean to reach an internal server set CLINICBOT_ALLOW_PRIVATE_URLS=true.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

import httpx

from sync.contract import Refused

__all__ = ["GuardTransport", "Resolver", "check_address", "public_addresses", "system_resolver"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_REFUSAL = (
    "clinicbot will not fetch {host}: it resolves to a {kind} address ({address}). "
    "Use a public URL, or, if this server really is meant to be reached, set "
    "CLINICBOT_ALLOW_PRIVATE_URLS=true where clinicbot runs (the server's environment or .env)."
)


def _kind(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return _kind(mapped)
        if address.teredo is not None:
            return "tunnelled (Teredo)"
    checks = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
        ("non-global", not address.is_global),
    )
    for kind, hit in checks:
        if hit:
            return kind
    return None


def check_address(host: str, address: str) -> IPAddress:
    """Raise Refused unless `address` is a public unicast address."""
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        raise Refused(f"clinicbot will not fetch {host}: unreadable address") from None
    kind = _kind(parsed)
    if kind is not None:
        raise Refused(_REFUSAL.format(host=host, kind=kind, address=parsed))
    return parsed


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the operating system's resolver gives for `host`."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"clinicbot cannot resolve {host}: {exc}") from None
    return [str(info[4][0]) for info in infos]


async def public_addresses(host: str, port: int, resolver: Resolver = system_resolver) -> list[IPAddress]:
    """Resolve `host` and return its addresses, refusing when ANY of them is not public."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        return [check_address(host, str(literal))]
    addresses = [check_address(host, address) for address in await resolver(host, port)]
    if not addresses:
        raise Refused(f"clinicbot cannot resolve {host}")
    return addresses


class GuardTransport(httpx.AsyncBaseTransport):
    """Checks every request's destination (redirect targets included) before connecting."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None, resolver: Resolver = system_resolver) -> None:
        self._inner = inner or httpx.AsyncHTTPTransport()
        self._resolver = resolver

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise Refused(f"clinicbot only fetches http(s) URLs, not {url.scheme}:")
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        addresses = await public_addresses(host, port, self._resolver)
        pinned = addresses[0]
        if str(pinned) != host.strip("[]"):
            request.extensions = {**request.extensions, "sni_hostname": host}
            request.headers.setdefault("Host", url.netloc.decode("ascii"))
            literal = f"[{pinned}]" if isinstance(pinned, ipaddress.IPv6Address) else str(pinned)
            request.url = url.copy_with(host=literal)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
