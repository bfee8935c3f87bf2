"""Egress policy: every address form, and enforcement on the address each upstream connection really goes to.

No test here sends a packet to a non-loopback address: names resolve through an injected resolver, refusals happen
before any connect, and connects that would leave the machine go to a spy backend instead of a socket."""
from __future__ import annotations

import ipaddress

import httpcore
import httpx
import pytest

from shared.egress import CachingResolver, EgressDenied, EgressPolicy
from shared.errors import ValidationFailed
from shared.upstreams.egress_transport import EgressRefused, PolicyNetworkBackend, guarded_client
from tests.support.fake_openai import FakeOpenAI

STRICT = EgressPolicy()
REFUSED = [
    # IPv4: metadata, loopback, private, CGNAT, link-local, reserved, documentation, multicast, broadcast
    "169.254.169.254", "168.63.129.16", "100.100.100.200", "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1",
    "100.64.0.1", "100.127.255.254", "169.254.1.1", "0.0.0.0", "240.0.0.1", "255.255.255.255", "192.0.2.1",
    "198.18.0.1", "224.0.0.1",
    # IPv6 native: loopback, unspecified, ULA, AWS metadata, link-local, site-local, multicast, documentation
    "::1", "::", "fc00::1", "fd12:3456::1", "fd00:ec2::254", "fe80::1", "fe80::1%1", "fec0::1", "ff02::1",
    "2001:db8::1",
    # IPv4-mapped
    "::ffff:169.254.169.254", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "::ffff:100.64.0.1",
    # 6to4 (2002:AABB:CCDD::) carrying metadata / private
    "2002:a9fe:a9fe::1", "2002:0a00:0001::", "2002:c0a8:0101::1",
    # NAT64 well-known prefix carrying metadata / private / CGNAT; NAT64 local-use prefix
    "64:ff9b::a9fe:a9fe", "64:ff9b::10.0.0.1", "64:ff9b::100.64.0.1", "64:ff9b:1::808:808",
    # Teredo (2001::/32), whatever it carries
    "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::a9fe:a9fe",
    # deprecated IPv4-compatible
    "::a9fe:a9fe", "::10.0.0.1", "::8.8.8.8",
]
ALLOWED = ["8.8.8.8", "1.1.1.1", "20.42.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:0808:0808::1",
           "64:ff9b::8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED)
def test_strict_policy_refuses(address: str):
    assert STRICT.refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ALLOWED)
def test_strict_policy_allows_global_unicast(address: str):
    assert STRICT.refusal(ipaddress.ip_address(address)) is None


def test_switches_open_only_their_own_class():
    loop, private = EgressPolicy(allow_loopback=True), EgressPolicy(allow_private=True)
    for a in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert loop.refusal(ipaddress.ip_address(a)) is None
        assert private.refusal(ipaddress.ip_address(a)).endswith("loopback address")
    for a in ("10.0.0.1", "100.64.0.1", "fd12::1", "64:ff9b::10.0.0.1", "2002:0a00:0001::"):
        assert private.refusal(ipaddress.ip_address(a)) is None
        assert loop.refusal(ipaddress.ip_address(a)) is not None
    both = EgressPolicy(allow_loopback=True, allow_private=True)
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "::ffff:169.254.169.254",
              "2002:a9fe:a9fe::", "64:ff9b::a9fe:a9fe", "169.254.1.1"):
        assert both.refusal(ipaddress.ip_address(a)) is not None, a


class FakeDns:
    """A resolver whose answers a test changes at will; counts the queries."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers, self.queries = answers, 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.queries += 1
        if host not in self.answers:
            raise OSError(f"NXDOMAIN {host}")
        return self.answers[host]


class SpyBackend(httpcore.AsyncNetworkBackend):
    """Records where a connection would go and never opens a socket."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.connects.append((host, port))
        raise httpcore.ConnectError("spy: not connecting")


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def test_allowed_hosts_skip_the_address_checks_but_never_metadata():
    dns = FakeDns({"internal.corp": ["10.0.0.9"], "bad.corp": ["169.254.169.254"]})
    policy = EgressPolicy(allowed_hosts=frozenset({"Internal.Corp", "bad.corp"}), resolver=dns)
    assert await policy.resolve("internal.corp.", 443) == ["10.0.0.9"]
    with pytest.raises(EgressDenied, match="metadata"):
        await policy.resolve("bad.corp", 443)


async def test_registration_check_uses_the_same_rules():
    dns = FakeDns({"api.example.test": ["8.8.8.8"], "mixed.example.test": ["8.8.8.8", "10.0.0.1"],
                   "v6meta.example.test": ["::ffff:169.254.169.254"]})
    policy = EgressPolicy(resolver=dns)
    await policy.check("https://api.example.test/v1", "endpoint")
    await policy.check("https://nxdomain.example.test/v1", "endpoint")  # checked on every connection instead
    for url in ("https://mixed.example.test/v1", "https://v6meta.example.test/v1", "http://[::ffff:a9fe:a9fe]/",
                "http://100.64.0.1/v1", "http://[2002:a9fe:a9fe::1]/", "http://[64:ff9b::a9fe:a9fe]/"):
        with pytest.raises(ValidationFailed) as err:
            await policy.check(url, "backends.0.endpoint")
        assert err.value.code == "egress_denied" and err.value.details[0]["field"] == "backends.0.endpoint"


@pytest.mark.parametrize("rebound", ["169.254.169.254", "10.0.0.7", "::ffff:169.254.169.254", "100.64.1.1"])
async def test_dns_rebinding_is_refused_at_call_time_before_connecting(rebound: str):
    clock = Clock()
    dns = FakeDns({"rebind.example.test": ["93.184.216.34"]})
    policy = EgressPolicy(resolver=CachingResolver(dns, ttl=30, clock=clock))
    await policy.check("https://rebind.example.test/v1", "endpoint")  # registration: a public address, fine
    spy = SpyBackend()
    async with guarded_client(policy, inner=spy) as client:
        # within the TTL a connection goes to the address that was checked — no second resolution
        with pytest.raises(httpx.ConnectError):
            await client.post("https://rebind.example.test/v1/chat/completions", json={})
        assert spy.connects == [("93.184.216.34", 443)] and dns.queries == 1
        dns.answers["rebind.example.test"] = [rebound]
        clock.t += 31
        with pytest.raises(EgressRefused):
            await client.post("https://rebind.example.test/v1/chat/completions", json={})
    assert spy.connects == [("93.184.216.34", 443)]  # the refused address was never connected to
    assert dns.queries == 2


async def test_unresolvable_then_private_and_literal_urls_are_refused_at_call_time():
    dns = FakeDns({})
    policy = EgressPolicy(resolver=dns)
    await policy.check("https://later.example.test/v1", "endpoint")  # does not resolve at registration
    dns.answers["later.example.test"] = ["192.168.0.10"]
    spy = SpyBackend()
    async with guarded_client(policy, inner=spy) as client:
        for url in ("https://later.example.test/v1/embeddings", "http://169.254.169.254/metadata",
                    "http://[::ffff:a9fe:a9fe]/", "http://[64:ff9b::a9fe:a9fe]/"):
            with pytest.raises(EgressRefused):
                await client.get(url)
    assert spy.connects == []


async def test_caching_resolver_ttl_and_failures_not_cached():
    clock, dns = Clock(), FakeDns({"a.test": ["8.8.8.8"]})
    cached = CachingResolver(dns, ttl=30, clock=clock, max_entries=2)
    assert await cached("a.test", 443) == ["8.8.8.8"] and await cached("a.test", 443) == ["8.8.8.8"]
    assert dns.queries == 1
    clock.t += 30
    await cached("a.test", 443)
    assert dns.queries == 2
    for _ in range(2):
        with pytest.raises(OSError):
            await cached("b.test", 443)
    assert dns.queries == 4
    dns.answers.update({"b.test": ["1.1.1.1"], "c.test": ["9.9.9.9"]})
    await cached("b.test", 443)
    await cached("c.test", 443)  # bounded: the oldest entry (a.test) makes room
    await cached("a.test", 443)
    assert dns.queries == 7


async def test_loopback_allowance_works_through_the_transport():
    dns = FakeDns({"fake-upstream.test": ["127.0.0.1"]})
    with FakeOpenAI("loop") as fake:
        url = f"http://fake-upstream.test:{fake.port}/v1/chat/completions"
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        async with guarded_client(EgressPolicy(allow_loopback=True, resolver=dns)) as client:
            r = await client.post(url, json=body)
            assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
            r = await client.post(f"http://127.0.0.1:{fake.port}/v1/chat/completions", json=body)
            assert r.status_code == 200
        async with guarded_client(EgressPolicy(resolver=dns)) as client:
            with pytest.raises(EgressRefused):
                await client.post(url, json=body)
        assert len(fake.requests) == 2  # the refused call never reached it


async def test_network_backend_refuses_unix_sockets():
    with pytest.raises(EgressRefused):
        await PolicyNetworkBackend(EgressPolicy(allow_loopback=True)).connect_unix_socket("/tmp/x.sock")


def _self_signed(tmp_path, name: str) -> tuple[str, str]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


async def test_tls_keeps_sni_and_certificate_checks_on_the_url_host(tmp_path):
    import asyncio
    import ssl

    cert, key = _self_signed(tmp_path, "upstream.test")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    seen_sni: list[str | None] = []
    server_ctx.sni_callback = lambda sock, name, ctx: seen_sni.append(name)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    dns = FakeDns({"upstream.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    try:
        client_ctx = ssl.create_default_context(cafile=cert)
        async with guarded_client(EgressPolicy(allow_loopback=True, resolver=dns), verify=client_ctx) as client:
            r = await client.get(f"https://upstream.test:{port}/")
            assert r.status_code == 200 and r.text == "ok"
            assert seen_sni == ["upstream.test"]  # SNI is the URL's name, not the address connected to
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED|certificate"):
                await client.get(f"https://other.test:{port}/")  # verified against the URL's name
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("url", ["http://2130706433/v1", "http://0x7f.1/v1", "http://0177.0.0.1/v1",
                                 "http://localhost./v1", "http://[::ffff:7f00:1]/v1"])
async def test_odd_spellings_of_loopback_are_checked_after_resolution(url: str):
    # Numeric forms the system resolver parses locally (no DNS query): whatever the spelling, the address is checked.
    with pytest.raises(ValidationFailed):
        await STRICT.check(url, "endpoint")
    await EgressPolicy(allow_loopback=True).check(url, "endpoint")
