"""Egress policy for every URL an admin registers and every connection the gateway opens to one: no private,
link-local, loopback, metadata or non-global addresses unless explicitly allowed, so the gateway cannot be turned
into a probe of its own network (SSRF).

The policy is an allow-list: an address passes only if it is a global unicast address (or loopback / private with
the matching switch). IPv6 forms that carry an IPv4 address (IPv4-mapped, 6to4, NAT64) are judged by the IPv4
address they carry; tunnelling and deprecated forms (Teredo, IPv4-compatible, NAT64 local-use) are refused.

Registration (`check`) is advisory — a name may resolve elsewhere later (DNS rebinding) or not at all yet. The
binding check is `resolve`, used by `shared.upstreams.egress_transport` on every new connection: it returns the
checked addresses, and the connection goes to one of those, never to a second resolution of the name.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from .errors import ValidationFailed

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) → the addresses the name resolves to, as strings (what getaddrinfo returns).
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Cloud metadata / platform endpoints: refused whatever the switches say (allow_private and allowed_hosts too).
_METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # Azure IMDS, AWS, GCP, OCI
    "168.63.129.16",  # Azure WireServer / platform DNS (a public-range address)
    "100.100.100.200",  # Alibaba Cloud
    "fd00:ec2::254",  # AWS IMDS over IPv6
))
# Private networks: refused unless EGRESS_ALLOW_PRIVATE. 100.64.0.0/10 (carrier-grade NAT, "shared address
# space") is not global and is used inside some clouds' own networks, so it counts as private.
_PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                                    "100.64.0.0/10", "fc00::/7"))
_METADATA_REASON = "cloud metadata address"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix: the IPv4 address is the last 32 bits
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215 local-use: layout is operator-specific
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d (also holds :: and ::1)
_DNS_TTL_SECONDS = 30.0  # how long a checked resolution is reused; connections always go to a checked address
_DNS_CACHE_MAX = 1024  # names are admin-registered, so few; bounded anyway
_VERDICT_CACHE_MAX = 4096


class EgressDenied(Exception):
    """A destination the policy refuses; `reason` is safe to show to admins."""

    def __init__(self, host: str, address: str | None, reason: str) -> None:
        super().__init__(f"{host}{f' ({address})' if address and address != host else ''}: {reason}")
        self.host, self.address, self.reason = host, address, reason


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))  # de-duplicated, resolver order kept


class CachingResolver:
    """Caches successful resolutions for a short TTL so a new connection costs a dict lookup, not a DNS query.
    Failures are not cached (the next connection asks again)."""

    def __init__(self, inner: Resolver = system_resolver, *, ttl: float = _DNS_TTL_SECONDS,
                 clock: Callable[[], float] = time.monotonic, max_entries: int = _DNS_CACHE_MAX) -> None:
        self._inner, self._ttl, self._clock, self._max = inner, ttl, clock, max_entries
        self._cache: dict[tuple[str, int], tuple[float, list[str]]] = {}

    async def __call__(self, host: str, port: int) -> list[str]:
        key = (host, port)
        hit = self._cache.get(key)
        now = self._clock()
        if hit is not None and hit[0] > now:
            return hit[1]
        addresses = await self._inner(host, port)
        if len(self._cache) >= self._max:
            self._cache.pop(next(iter(self._cache)))  # oldest insertion first
        self._cache[key] = (now + self._ttl, addresses)
        return addresses


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


class EgressPolicy:
    def __init__(self, *, allow_loopback: bool = False, allow_private: bool = False,
                 allowed_hosts: frozenset[str] = frozenset(), resolver: Resolver | None = None) -> None:
        self._loopback = allow_loopback
        self._private = allow_private
        self._hosts = frozenset(h.lower().rstrip(".") for h in allowed_hosts)
        self._resolve = resolver or CachingResolver()
        self._verdicts: dict[tuple[str, bool], str | None] = {}

    def refusal(self, ip: IPAddress, *, trusted: bool = False) -> str | None:
        """Why the gateway may not connect to `ip`, or None when it may. `trusted`: the name is on
        EGRESS_ALLOWED_HOSTS, so only metadata addresses are refused."""
        if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])  # fe80::1%eth0 → fe80::1
        if ip in _METADATA:
            return _METADATA_REASON
        if isinstance(ip, ipaddress.IPv6Address):
            embedded = _embedded_ipv4(ip)
            if embedded is not None:
                why = self.refusal(embedded, trusted=trusted)
                return f"IPv6 form of a refused IPv4 address: {why}" if why else None
            if trusted:
                return None
            if ip.teredo is not None or ip in _NAT64_LOCAL:
                return "IPv6 tunnelling / translation address"
            if ip in _IPV4_COMPATIBLE and not (ip.is_loopback or ip.is_unspecified):
                return "deprecated IPv4-compatible IPv6 address"
        if trusted:
            return None
        if ip.is_loopback:
            return None if self._loopback else "loopback address"
        if any(ip in net for net in _PRIVATE):
            return None if self._private else "private address"
        if ip.is_multicast or ip.is_link_local or ip.is_unspecified or ip.is_reserved or not ip.is_global \
                or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local):
            return "link-local, reserved or non-global address"
        return None

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses a connection to `host` may use — every one checked — or EgressDenied. Raises OSError
        when the name does not resolve. A name resolving to any refused address is refused as a whole (a mixed
        answer is a classic rebinding trick)."""
        name = host.lower().rstrip(".").strip("[]")
        literal: IPAddress | None = None
        if ":" in name or name[-1:].isdigit():  # only these can be IP literals; skips a costly parse per name
            try:
                literal = ipaddress.ip_address(name)
            except ValueError:
                pass
        addresses = [str(literal)] if literal is not None else await self._resolve(name, port)
        if not addresses:
            raise OSError(f"{host} resolved to no address")
        trusted = name in self._hosts
        for address in addresses:
            why = self._verdict(address, trusted)
            if why:
                raise EgressDenied(host, address, why)
        return addresses

    def _verdict(self, address: str, trusted: bool) -> str | None:
        # `refusal` is pure for a given policy but costs 10–60 µs (ipaddress); a connection to a known address
        # costs a dict lookup instead. Bounded: cleared when full (it only ever holds recomputable answers).
        key = (address, trusted)
        if key in self._verdicts:
            return self._verdicts[key]
        try:
            why = self.refusal(ipaddress.ip_address(address), trusted=trusted)
        except ValueError:
            why = "not an IP address"
        if len(self._verdicts) >= _VERDICT_CACHE_MAX:
            self._verdicts.clear()
        self._verdicts[key] = why
        return why

    def _refused(self, field: str, url: str, why: str) -> ValidationFailed:
        return ValidationFailed(f"{field}: '{url}' is not an allowed destination ({why}).", code="egress_denied",
                                details=[{"field": field, "message": why, "type": "egress_denied"}])

    async def check(self, url: str, field: str) -> None:
        """Registration-time check: a structured 422 for a URL the gateway would refuse to connect to."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self._refused(field, url, "only http(s) URLs with a host")
        try:
            await self.resolve(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        except EgressDenied as exc:
            raise self._refused(field, url, exc.reason) from None
        except OSError:
            # Unresolvable now (e.g. private DNS not reachable from here): every connection is checked anyway.
            log.info("egress: %s does not resolve at registration; it is checked on every connection", url)
