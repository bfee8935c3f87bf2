"""Egress policy for every URL an admin registers: no private, link-local, loopback or metadata addresses unless
explicitly allowed, so the gateway cannot be turned into a probe of its own network (SSRF)."""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from .errors import ValidationFailed

_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("168.63.129.16"),
             ipaddress.ip_address("fd00:ec2::254")}


class EgressPolicy:
    def __init__(self, *, allow_loopback: bool = False, allow_private: bool = False,
                 allowed_hosts: frozenset[str] = frozenset()) -> None:
        self._loopback = allow_loopback
        self._private = allow_private
        self._hosts = {h.lower() for h in allowed_hosts}

    def _refusal(self, field: str, url: str, why: str) -> ValidationFailed:
        return ValidationFailed(f"{field}: '{url}' is not an allowed destination ({why}).", code="egress_denied",
                                details=[{"field": field, "message": why, "type": "egress_denied"}])

    def _check_ip(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, field: str, url: str) -> None:
        if ip in _METADATA:
            raise self._refusal(field, url, "cloud metadata address")
        if ip.is_loopback:
            if not self._loopback:
                raise self._refusal(field, url, "loopback address")
            return
        if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
            raise self._refusal(field, url, "link-local or reserved address")
        if ip.is_private and not self._private:
            raise self._refusal(field, url, "private address")

    async def check(self, url: str, field: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self._refusal(field, url, "only http(s) URLs with a host")
        host = parts.hostname.lower()
        if host in self._hosts:
            return
        try:
            self._check_ip(ipaddress.ip_address(host), field, url)
            return
        except ValueError:
            pass  # a name: check every address it resolves to
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
        except OSError:
            return  # unresolvable now (e.g. private DNS not reachable from here); checked again on use by the OS
        for info in infos:
            self._check_ip(ipaddress.ip_address(info[4][0]), field, url)
