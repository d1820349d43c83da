"""Where the gateway's Redis is: one URL, checked at start-up (core/redis_client.py connects).

`redis://`, `rediss://` and `unix://` name one server. `redis+sentinel://[:password@]host:26379
[,host2:26379...]/service[/db]` names the Sentinels that know which server is the master of
`service` (its password, if any, is the master's).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SENTINEL_SCHEME = "redis+sentinel"
SINGLE_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelAddress:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    password: str | None = None


def is_sentinel_url(url: str) -> bool:
    return url.startswith(f"{SENTINEL_SCHEME}://")


def check_redis_url(url: str) -> str:
    """`url` if the gateway can use it; ValueError says what is wrong otherwise."""
    if is_sentinel_url(url):
        parse_sentinel_url(url)
    elif not url.startswith(tuple(f"{scheme}://" for scheme in SINGLE_SCHEMES)):
        raise ValueError(f"must start with redis://, rediss://, unix:// or {SENTINEL_SCHEME}://")
    return url


def parse_sentinel_url(url: str) -> SentinelAddress:
    """The parts of a `redis+sentinel://` URL; ValueError says what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise ValueError(f"a Sentinel URL starts with {SENTINEL_SCHEME}://")
    sentinels = []
    for item in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = item.strip().rpartition(":") if ":" in item else (item.strip(), "", str(SENTINEL_PORT))
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"sentinel address {item!r} is not host:port")
        sentinels.append((host.strip("[]"), int(port)))
    path = [segment for segment in parts.path.split("/") if segment]
    if not path or len(path) > 2:
        raise ValueError("the path must be /<master service name> or /<master service name>/<db>")
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError(f"database {path[1]!r} is not a number")
    password = unquote(parts.password) if parts.password else None
    return SentinelAddress(tuple(sentinels), path[0], int(path[1]) if len(path) == 2 else 0, password)
