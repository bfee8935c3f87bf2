"""The egress policy enforced where it counts: on the address each upstream connection actually goes to.

An httpcore network backend resolves the URL's host itself (through the policy's short-TTL cache), checks every
address, and connects to a checked address — never to a fresh resolution of the name, so a DNS answer that changes
between check and connect (rebinding) cannot slip through. TLS is unaffected: httpcore starts TLS on the stream we
return with the URL's own host name as SNI and for certificate verification. Pooled keep-alive connections were
checked when opened, so a request on one costs nothing extra. The client over these connections is `LeanHttp`
(lean_http.py), alone or under an `httpx.AsyncClient` (`guarded_client`).
"""
from __future__ import annotations

import asyncio
import logging
import ssl
import typing

import httpcore
import httpx
from httpcore import AsyncNetworkBackend, AsyncNetworkStream

from ..egress import EgressDenied, EgressPolicy
from .asyncio_stream import AsyncioBackend

log = logging.getLogger(__name__)

SocketOption = typing.Union[tuple[int, int, int], tuple[int, int, typing.Union[bytes, bytearray]],
                            tuple[int, int, None, int]]


class EgressRefused(httpx.ConnectError):
    """A connection the egress policy refused before any packet was sent. A transport error on purpose: the
    failover treats it like an unreachable backend (next backend, breaker, 502), and its class name says why."""


class PolicyNetworkBackend(AsyncNetworkBackend):
    def __init__(self, policy: EgressPolicy, inner: AsyncNetworkBackend | None = None) -> None:
        self._policy = policy
        self._inner = inner or AsyncioBackend()  # asyncio-native streams (asyncio_stream.py)

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable[SocketOption] | None = None) -> AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._policy.resolve(host, port)
        except EgressDenied as exc:
            log.warning("egress refused: %s", exc)
            raise EgressRefused(f"Egress policy refused {exc}.") from None
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"Resolving {host} timed out.") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"Cannot resolve {host}: {exc}.") from None
        options = list(socket_options) if socket_options is not None else None
        last: Exception | None = None
        for address in addresses:  # every one checked; try them in resolver order, like the OS would
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                     socket_options=options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None  # resolve() never returns an empty list
        raise last

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: typing.Iterable[SocketOption] | None = None
                                  ) -> AsyncNetworkStream:
        raise EgressRefused("Unix sockets are not an allowed upstream destination.")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_client(policy: EgressPolicy, *, limits: httpx.Limits = httpx.Limits(),
                   verify: ssl.SSLContext | bool = True, inner: AsyncNetworkBackend | None = None
                   ) -> httpx.AsyncClient:
    """An upstream `httpx.AsyncClient` over the lean wire (lean_http.py): pooled, every new connection checked
    against `policy`. Environment proxies are not used: a proxy would connect on our behalf, unchecked."""
    from .lean_http import LeanHttp  # lean_http builds on this module's PolicyNetworkBackend
    from .lean_transport import LeanTransport

    lean = LeanHttp(policy, max_connections=limits.max_connections or 10_000,
                    max_idle_per_origin=limits.max_keepalive_connections or 64,
                    idle_seconds=limits.keepalive_expiry if limits.keepalive_expiry is not None else 5.0,
                    verify=verify, inner=inner)
    return httpx.AsyncClient(transport=LeanTransport(lean), trust_env=False)
