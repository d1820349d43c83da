"""core.netguard: literal addresses, names after resolution, and redirects. Nothing here connects
anywhere but 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from core import netguard
from core.netguard import BlockedUrl, PublicOnlyResolver, check_url, guarded_request, guarded_session, is_public

TIMEOUT = aiohttp.ClientTimeout(total=10)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5/",
        "http://172.16.0.1/",
        "http://192.168.1.1:8080/x",
        "http://127.0.0.1/",
        "http://127.255.255.254/",
        "http://0.0.0.0/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
        "http://[::1]/",
        "http://[::]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[fd12:3456::1]/",
        "http://[fec0::1]/",
        "http://[ff02::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:10.0.0.5]/",
        "http://[::127.0.0.1]/",
        "http://[64:ff9b::a00:5]/",  # NAT64 of 10.0.0.5
        "http://[2002:7f00:1::1]/",  # 6to4 of 127.0.0.1
        "https://[fe80::1%25eth0]/",
        # urllib and yarl (aiohttp) disagree on these; aiohttp connects to 127.0.0.1 unresolved.
        "http://127\u30020\u30020\u30021/",
        "http://\u2460\u2461\u2466.0.0.1/",
    ],
)
def test_private_literal_addresses_are_refused(url: str) -> None:
    with pytest.raises(BlockedUrl, match="is a private or reserved address"):
        check_url(url, allow_private=False)


@pytest.mark.parametrize(
    "url", ["http://localhost/", "http://LOCALHOST:8080/x", "http://localhost./", "http://a.localhost/"]
)
def test_localhost_names_are_refused_without_resolving(url: str) -> None:
    with pytest.raises(BlockedUrl, match="is a loopback name"):
        check_url(url, allow_private=False)


@pytest.mark.parametrize("url", ["http://2130706433/", "http://0177.0.0.1/", "http://127.1/", "http://[1:2]/"])
def test_non_canonical_ip_literals_are_refused(url: str) -> None:
    with pytest.raises(BlockedUrl):
        check_url(url, allow_private=False)


@pytest.mark.parametrize(
    "url",
    ["http://8.8.8.8/", "https://1.1.1.1:443/x?y=1", "https://[2001:4860:4860::8888]/", "https://example.com/a.png"],
)
def test_public_addresses_and_names_pass_the_literal_check(url: str) -> None:
    check_url(url, allow_private=False)  # names are checked later, at resolution; nothing connects here


@pytest.mark.parametrize("url", ["http://10.0.0.5/", "http://127.0.0.1:8080/", "http://localhost/", "http://[::1]/"])
def test_private_addresses_pass_when_allowed(url: str) -> None:
    check_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.png",
        "file:///etc/passwd",
        "gopher://example.com/",
        "javascript:alert(1)",
        "data:image/png;base64,iVBORw0KGgo=",
        "http:///no-host",
        "//example.com/relative",
        "/just/a/path",
        "",
    ],
)
@pytest.mark.parametrize("allow_private", [False, True])
def test_bad_schemes_and_hostless_urls_are_refused(url: str, allow_private: bool) -> None:
    with pytest.raises(BlockedUrl, match="only http"):
        check_url(url, allow_private=allow_private)


def test_backslash_in_the_authority_is_refused() -> None:
    # urllib reads the host as example.com, yarl refuses the URL: no disagreement left to exploit.
    with pytest.raises(BlockedUrl):
        check_url("http://127.0.0.1\\@example.com/", allow_private=False)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True),
        ("10.1.2.3", False),
        ("127.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("2001:db8::1", False),
        ("239.255.255.250", False),
        # IPv6 forms carrying an IPv4 address are judged by it (issue 23).
        ("64:ff9b:1::7f00:1", False),  # local-use NAT64, the IPv4 in the last 32 bits
        ("64:ff9b:1:7f00:0:1::", False),  # local-use NAT64, RFC 6052's /48 layout: 127.0.0.1
        ("64:ff9b:1::808:808", True),
        ("::ffff:0:7f00:1", False),  # IPv4-translated 127.0.0.1
        ("::ffff:0:808:808", True),
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
        ("2002:a00:1::1", False),  # 6to4 of 10.0.0.1
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),  # Teredo, client 10.0.0.1
    ],
)
def test_is_public(address: str, public: bool) -> None:
    assert is_public(address) is public


async def test_an_unresolvable_name_and_a_private_one_get_the_same_answer(fake_dns: dict[str, list[str]]) -> None:
    fake_dns["internal.example.test"] = ["10.0.0.5"]
    resolver = PublicOnlyResolver()
    try:
        answers = []
        for host in ("internal.example.test", "nowhere.invalid"):
            with pytest.raises(BlockedUrl) as refused:
                await resolver.resolve(host, 80, socket.AF_UNSPEC)
            answers.append(str(refused.value).replace(host, "<host>"))
    finally:
        await resolver.close()
    assert answers == ["<host> does not resolve to a public address"] * 2


# --- names: checked after resolution ------------------------------------------------------------


class FakeResolver(AbstractResolver):
    """Stands in for aiohttp's DefaultResolver inside PublicOnlyResolver: a fixed name table."""

    table: dict[str, list[str]] = {}

    def __init__(self) -> None:
        pass

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.table:
            raise OSError(f"{host} not found")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.table[host]
        ]

    async def close(self) -> None:
        pass


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    # netguard imported the name, so patching aiohttp.resolver.DefaultResolver would not reach it.
    table: dict[str, list[str]] = {}
    monkeypatch.setattr(FakeResolver, "table", table)
    monkeypatch.setattr(netguard, "DefaultResolver", FakeResolver)
    return table


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, list[tuple[str, int]]]]:
    """A loopback server that records (method, body length) of every request it gets."""
    seen: list[tuple[str, int]] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append((request.method, len(await request.read())))
        return web.Response(text="ok")

    async def see_other(request: web.Request) -> web.Response:
        seen.append((request.method, len(await request.read())))
        raise web.HTTPSeeOther("/echo")

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_post("/see-other", see_other)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][1], seen
    await runner.cleanup()


async def test_localhost_is_refused_by_the_resolver_too() -> None:
    """The real resolver, asked directly (past check_url's name shortcut), maps localhost to loopback."""
    resolver = PublicOnlyResolver()
    try:
        with pytest.raises(BlockedUrl, match=r"^localhost does not resolve to a public address$"):
            await resolver.resolve("localhost", 80, socket.AF_UNSPEC)
    finally:
        await resolver.close()


async def test_resolver_drops_private_addresses_and_keeps_public_ones(fake_dns: dict[str, list[str]]) -> None:
    fake_dns["mixed.test"] = ["10.0.0.5", "93.184.215.14", "::1", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]
    resolver = PublicOnlyResolver()
    results = await resolver.resolve("mixed.test", 443, socket.AF_UNSPEC)
    assert [result["host"] for result in results] == ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]


async def test_name_resolving_to_loopback_is_refused_after_resolution(
    fake_dns: dict[str, list[str]], server: tuple[int, list[tuple[str, int]]]
) -> None:
    port, seen = server
    fake_dns["media.example.test"] = ["127.0.0.1"]
    check_url(f"http://media.example.test:{port}/echo", allow_private=False)  # the name itself looks fine
    async with guarded_session(False, TIMEOUT) as session:
        with pytest.raises(BlockedUrl, match=r"^media\.example\.test does not resolve to a public address$"):
            await guarded_request(session, "GET", f"http://media.example.test:{port}/echo", False)
    assert seen == []  # never connected


async def test_loopback_is_reached_when_allowed(server: tuple[int, list[tuple[str, int]]]) -> None:
    port, seen = server
    async with guarded_session(True, TIMEOUT) as session:
        response = await guarded_request(session, "GET", f"http://127.0.0.1:{port}/echo", True)
        try:
            assert response.status == 200
        finally:
            response.release()
    assert seen == [("GET", 0)]


async def test_see_other_after_post_is_followed_with_a_bodyless_get(server: tuple[int, list[tuple[str, int]]]) -> None:
    port, seen = server
    async with guarded_session(True, TIMEOUT) as session:
        response = await guarded_request(session, "POST", f"http://127.0.0.1:{port}/see-other", True, data=b"x" * 100)
        try:
            assert (response.status, await response.text()) == (200, "ok")
        finally:
            response.release()
    assert seen == [("POST", 100), ("GET", 0)]
