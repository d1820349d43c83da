"""`make bench`, part 3: how many messages a second one Redis can carry on this machine.

Every message costs a number of Redis round trips (`python -m benchmarks` measures it: accept,
pump, webhook delivery, arq), and one Redis serves a bounded number of round trips a second
whoever sends them. This measures that bound with `redis-benchmark` (Debian's redis-tools, beside
redis-server) on a private Redis started the way the gateway's embedded default starts one (AOF
on, Unix socket), then divides it by round trips per message.

Options: `python -m benchmarks.redis_capacity --round-trips 7.3 5.1 --requests 200000 --clients 50`.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from config import load_settings
from core.logs import configure_logging
from core.redis_server import EmbeddedRedis

# Commands the send path is made of, and a one-command Lua script: most of our round trips run a
# script, and a script costs more than a plain command, so its figure bounds capacity more honestly.
TESTS = "set,get,incr,lpush,hset,zadd"
SCRIPT = ["EVAL", "redis.call('HINCRBY', KEYS[1], 'n', 1) return redis.call('LLEN', KEYS[2])", "2", "h", "l"]


def redis_benchmark(socket: Path, requests: int, clients: int, *command: str) -> dict[str, float]:
    """Requests per second by command, as redis-benchmark reports them (CSV)."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        raise SystemExit("redis-benchmark not found: install Debian's redis-tools (apt-get install redis-tools)")
    args = [binary, "-s", str(socket), "-n", str(requests), "-c", str(clients), "--csv"]
    args += ["-t", TESTS] if not command else list(command)
    output = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return {row["test"]: float(row["rps"]) for row in csv.DictReader(io.StringIO(output))}


async def measure(requests: int, clients: int) -> tuple[dict[str, float], float]:
    with tempfile.TemporaryDirectory(prefix="wa-bench-") as directory:
        redis = EmbeddedRedis(Path(directory) / "redis")
        await redis.start()
        try:
            plain = await asyncio.to_thread(redis_benchmark, redis.socket, requests, clients)
            script = await asyncio.to_thread(redis_benchmark, redis.socket, requests, clients, *SCRIPT)
        finally:
            await redis.stop()
    return plain, next(iter(script.values()))


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.redis_capacity", description=__doc__.split("\n")[0])
    parser.add_argument("--round-trips", type=float, nargs="+", default=[7.3, 5.1],
                        help="round trips per message to divide by (what `python -m benchmarks` printed)")  # fmt: skip
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    configure_logging(load_settings({}, log_level="error"))

    plain, script = await measure(args.requests, args.clients)
    median = statistics.median(plain.values())
    figures = "   ".join(f"{name} {rate:,.0f}" for name, rate in plain.items())
    print(f"5. one Redis on this machine (redis-benchmark, {args.clients} clients, no pipelining, AOF on):")
    print(f"   ops/s  {figures}   median {median:,.0f}   small Lua script {script:,.0f}")
    for trips in args.round_trips:
        print(
            f"   at {trips:g} round trips per message: {median / trips:,.0f} messages/s (plain commands), "
            f"{script / trips:,.0f} messages/s (if every round trip ran a script)"
        )


if __name__ == "__main__":
    asyncio.run(main())
