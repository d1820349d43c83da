"""The private-address guard for every URL the gateway fetches (media) or posts to (webhooks).

Names are checked after DNS resolution, inside the connector's resolver, so the address checked
is the address connected to; literal IP hosts are checked before each request; redirects are
followed by hand so that every hop goes through both checks.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

MAX_REDIRECTS = 5
NO_PUBLIC_ADDRESS = "{host} does not resolve to a public address"


class BlockedUrl(ValueError):
    """The URL is not allowed: a private, loopback or link-local address, or a bad scheme."""


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are an IPv4 address
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215, local-use translators
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 IPv4-translated ::ffff:0:a.b.c.d
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d; never a public destination


def _carried(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries, by every form that carries one: mapped,
    translated, 6to4, Teredo (its client) and NAT64 (a local-use /48 prefix may put the IPv4
    address after the prefix, RFC 6052's /48 layout, or in the last 32 bits: both are judged)."""
    last32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    found = [address for address in (ip.ipv4_mapped, ip.sixtofour) if address is not None]
    if ip.teredo is not None:
        found.append(ip.teredo[1])
    if ip in _NAT64 or ip in _TRANSLATED:
        found.append(last32)
    if ip in _NAT64_LOCAL:
        value = int(ip)
        layouts = [last32, ipaddress.IPv4Address(((value >> 64) & 0xFFFF) << 16 | (value >> 40) & 0xFFFF)]
        found += [v4 for v4 in layouts if int(v4)] or layouts  # the layout in use is the one not all zero
    return found


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local or ip in _IPV4_COMPATIBLE:
            return False
        carried = _carried(ip)  # judged by the IPv4 address(es) it carries, all of which must be public
        if carried:
            return all(v4.is_global and not v4.is_multicast for v4 in carried)
    return ip.is_global and not ip.is_multicast


class PublicOnlyResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then drops every non-public address."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        # One answer whether the name does not resolve or resolves only to private addresses: the
        # difference would tell a tenant which internal host names exist.
        try:
            results = await self._inner.resolve(host, port, family)
        except OSError:
            raise BlockedUrl(NO_PUBLIC_ADDRESS.format(host=host)) from None
        public = [result for result in results if is_public(result["host"])]
        if not public:
            raise BlockedUrl(NO_PUBLIC_ADDRESS.format(host=host))
        return public

    async def close(self) -> None:
        await self._inner.close()


def check_url(url: str, allow_private: bool) -> None:
    """Refuse bad schemes, and literal IP hosts that are not public (names are checked on resolve).

    The URL is parsed with yarl, as aiohttp parses it: urllib and yarl disagree on some hosts
    (yarl IDNA-maps `127。0。0。1` or `①②⑦.0.0.1` to the literal 127.0.0.1, which aiohttp then
    connects to without asking the resolver)."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        raise BlockedUrl(f"not a valid URL: {url!r}") from None
    host = parsed.raw_host
    if parsed.scheme not in ("http", "https") or not host:
        raise BlockedUrl(f"only http(s) URLs with a host are allowed: {url!r}")
    if allow_private:
        return
    name = host.rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        raise BlockedUrl(f"{host} is a loopback name")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        # What aiohttp would take for an IP literal (and so not resolve) must parse as one.
        if ":" in host or host.replace(".", "").isdigit():
            raise BlockedUrl(f"{host} is not a valid IP address") from None
        return
    if not is_public(str(literal)):
        raise BlockedUrl(f"{host} is a private or reserved address")


def guarded_session(allow_private: bool, timeout: aiohttp.ClientTimeout, **kwargs: Any) -> aiohttp.ClientSession:
    """A client session whose connections reach only public addresses (unless allowed)."""
    connector = aiohttp.TCPConnector(resolver=None if allow_private else PublicOnlyResolver())
    return aiohttp.ClientSession(connector=connector, timeout=timeout, **kwargs)


async def guarded_request(
    session: aiohttp.ClientSession, method: str, url: str, allow_private: bool, **kwargs: Any
) -> aiohttp.ClientResponse:
    """`session.request` with redirects followed by hand, every hop checked. The caller releases
    the returned response."""
    for _ in range(MAX_REDIRECTS + 1):
        check_url(url, allow_private)
        # A name resolving only to private addresses raises BlockedUrl from the resolver, unwrapped.
        response = await session.request(method, url, allow_redirects=False, **kwargs)
        if response.status not in (301, 302, 303, 307, 308) or "Location" not in response.headers:
            return response
        url = urljoin(url, response.headers["Location"])
        response.release()
        if response.status == 303 or (response.status in (301, 302) and method == "POST"):
            method = "GET"  # as browsers and aiohttp do; the body is not sent again
            kwargs = {key: value for key, value in kwargs.items() if key not in ("data", "json")}
    raise BlockedUrl(f"more than {MAX_REDIRECTS} redirects")
