"""Instructions an API process runs per accepted send, against a bare aiohttp handler's per
request, counted by valgrind's callgrind: a figure that holds whatever else the machine does, where
requests a second drift by ±15 % from one minute to the next on two shared cores. Beside them, the
floor: the least a send path built from the gateway's own parts costs (benchmarks/floor.py: the
body validated, the message built, accepted in one Redis step and answered, nothing else).

    python -m benchmarks.instructions [--sends 800] [--concurrency 16]

`serve --no-worker` (one API process), the floor and the bare handler of `python -m benchmarks` each run
under callgrind with counting off; after a warm-up, counting is on for exactly `--sends` POSTs
from `--concurrency` clients (aiohttp, in this process: outside the count), then off. The kernel's
part (the socket calls) is not counted, the same for both. Needs valgrind (Debian's package).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import aiohttp

from benchmarks.__main__ import ACCEPT_BODY, BARE, accept_serve, bench_instance, handler_server

WARM_UP = 200  # requests before counting: every lazy first cost paid


def callgrind(out: Path) -> tuple[str, ...]:
    return ("valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}")


def counted(out: Path) -> int:
    """The instructions callgrind counted in the dump `out` (0 while it is being written)."""
    found = re.findall(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
    return max((int(count) for count in found), default=0)


async def post_many(url: str, headers: dict[str, str], sends: int, concurrency: int) -> None:
    async with aiohttp.ClientSession() as session:

        async def some(count: int) -> None:
            for _ in range(count):
                async with session.post(url, json=ACCEPT_BODY, headers=headers) as response:
                    if response.status != 202:
                        raise RuntimeError(f"{response.status}: {await response.text()}")

        await asyncio.gather(*(some(sends // concurrency) for _ in range(concurrency)))


def count_on(pid: int) -> None:
    """Callgrind's counting on in the process `pid` (started with `callgrind`)."""
    subprocess.run(["callgrind_control", "-i", "on", str(pid)], check=True, capture_output=True)


async def count_off(pid: int, out: Path) -> int:
    """Counting off in the process `pid`, and the instructions it counted since `count_on`, read
    from the dump it writes to `out`."""
    subprocess.run(["callgrind_control", "-i", "off", str(pid)], check=True, capture_output=True)
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    for _ in range(100):  # the dump is written as the process next runs
        await asyncio.sleep(0.2)
        found = max((counted(dump) for dump in out.parent.glob(out.name + "*")), default=0)
        if found:  # counting was on only since count_on: the one dump that counted
            return found
    raise RuntimeError("callgrind wrote no dump with a count")


async def per_request(pid: int, out: Path, url: str, headers: dict[str, str], sends: int, concurrency: int) -> float:
    """Instructions per request of the process `pid` (under callgrind, writing `out`)."""
    await post_many(url, headers, WARM_UP, concurrency)
    count_on(pid)
    await post_many(url, headers, sends, concurrency)
    return await count_off(pid, out) / (sends // concurrency * concurrency)


async def gateway(tmp: Path, sends: int, concurrency: int) -> float:
    serve = accept_serve(tmp / "data")
    serve.command_prefix = callgrind(tmp / "gateway.out")
    serve.start(extra_args=("--no-worker",), timeout=300)
    try:
        key, _ = bench_instance(serve)
        headers = {"apikey": key}
        return await per_request(
            serve.pid, tmp / "gateway.out", f"{serve.base}/message/text", headers, sends, concurrency
        )
    finally:
        serve.stop()


async def floor(tmp: Path, sends: int, concurrency: int) -> float:
    """benchmarks/floor.py under callgrind, on the embedded Redis of a gateway (not counted) that
    holds the bench instance."""
    serve = accept_serve(tmp / "floor-data")
    serve.start(extra_args=("--no-worker",), timeout=60)
    out = tmp / "floor.out"
    try:
        bench_instance(serve)
        floor_args = ("-m", "benchmarks.floor", f"unix://{tmp / 'floor-data' / 'redis' / 'redis.sock'}")
        async with handler_server(floor_args, callgrind(out), seconds=300) as (url, pid):  # imports under valgrind
            return await per_request(pid, out, url, {}, sends, concurrency)
    finally:
        serve.stop()


async def bare(tmp: Path, sends: int, concurrency: int) -> float:
    out = tmp / "bare.out"
    async with handler_server(BARE, callgrind(out)) as (url, pid):
        return await per_request(pid, out, url, {}, sends, concurrency)


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__.split("\n")[0])
    parser.add_argument("--sends", type=int, default=800)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind not found (Debian's package valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        ours = await gateway(Path(tmp), args.sends, args.concurrency)
        least = await floor(Path(tmp), args.sends, args.concurrency)
        theirs = await bare(Path(tmp), args.sends, args.concurrency)
    print(
        f"instructions per accepted send, 1 API process: {ours / 1000:.0f}k   bare aiohttp: {theirs / 1000:.0f}k   "
        f"ratio {theirs / ours:.2f}   ({args.sends} sends, {args.concurrency} at once; callgrind, the kernel apart)"
    )
    print(
        f"   the floor (benchmarks/floor.py: validated, built, accepted, answered; no key, limit, log or id): "
        f"{least / 1000:.0f}k, ratio {theirs / least:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
