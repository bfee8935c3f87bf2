"""The egress policy for the Azure SDK clients guardrails use (they connect through aiohttp, not through the
gateway's httpx transport): a resolver that hands aiohttp only addresses the policy allows — so the address
actually connected to is the one checked — plus a check of IP-literal hosts, which aiohttp never resolves."""
from __future__ import annotations

import logging
import socket
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from ..egress import EgressDenied, EgressPolicy

log = logging.getLogger("gateway.guardrails")


class EgressResolver(AbstractResolver):
    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        try:
            addresses = await self._policy.resolve(host, port)
        except EgressDenied as exc:
            log.warning("egress refused: %s", exc)
            raise OSError(f"Egress policy refused {exc}.") from None
        return [{"hostname": host, "host": a, "port": port, "proto": 0, "flags": socket.AI_NUMERICHOST,
                 "family": socket.AF_INET6 if ":" in a else socket.AF_INET} for a in addresses]

    async def close(self) -> None:
        return None


def guarded_session(policy: EgressPolicy) -> aiohttp.ClientSession:
    """An aiohttp session (for azure-core's AioHttpTransport) whose every connection passes the policy."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=EgressResolver(policy)), trust_env=False)


async def check_literal(policy: EgressPolicy, url: str) -> None:
    """aiohttp connects to an IP-literal host without resolving it: check the literal (cached; no DNS)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").strip("[]")
    if host and (":" in host or host[-1:].isdigit()):
        await policy.resolve(host, parts.port or 443)
