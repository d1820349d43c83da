"""`python -m benchmarks.trials`: does each optional accelerator pay? (issue 27: uvloop, orjson,
hiredis, each kept only where `make bench` shows it pays.)

For each variant of GATEWAY_SPEEDUPS (none, each one alone, uvloop and orjson each on top of
hiredis, all three) a fresh process measures
accepted sends a second (`serve --no-worker`, one API process, as figure 1 of `make bench`) and
sends a second of one worker in a burst on sandbox instances (as figure 2), with the variant on
in the gateway it starts and in its own event loop. Variants run one after the other: on a loaded
machine the figures say nothing; run it on a quiet one.

Options: `python -m benchmarks.trials --accept-seconds 5 --instances 200 --burst 3 --rounds 1`
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from benchmarks.__main__ import accepting_gateway, in_turn, paced_run
from benchmarks.roundtrips import RoundTrips
from config import load_settings
from core import speedups
from core.logs import configure_logging

# Each alone against none, then each on top of hiredis (on by default): does it pay beside it?
VARIANTS = ("none", "uvloop", "orjson", "hiredis", "uvloop,hiredis", "orjson,hiredis", "uvloop,orjson,hiredis")


async def measure(variant: str, seconds: float, instances: int, burst: int) -> dict[str, float]:
    async with accepting_gateway(1, speedups=variant) as gateway:
        [[accepted]] = await in_turn([gateway.target], seconds, 50, rounds=1)
    run = await paced_run(instances, 50, 2, burst, RoundTrips())
    return {"accepted_per_second": accepted, "burst_sends_per_second": run["burst_rate"]}


def one(variant: str, args: argparse.Namespace) -> dict[str, float]:
    """The figures of `variant`, measured in a process of its own."""
    command = [sys.executable, "-m", "benchmarks.trials", "--only", variant,
               "--accept-seconds", str(args.accept_seconds), "--instances", str(args.instances),
               "--burst", str(args.burst)]  # fmt: skip
    answer = subprocess.run(command, check=True, capture_output=True, text=True)
    found: dict[str, float] = json.loads(answer.stdout.strip().splitlines()[-1])
    return found


def main(argv: Any = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trials", description=__doc__.split("\n")[0])
    parser.add_argument("--accept-seconds", type=float, default=5, help="of load (wrk) behind the accept figure")
    parser.add_argument("--instances", type=int, default=200, help="sandbox instances of the burst")
    parser.add_argument("--burst", type=int, default=3, help="messages per instance in the burst")
    parser.add_argument("--rounds", type=int, default=1, help="times each variant is measured (best kept)")
    parser.add_argument("--only", help=argparse.SUPPRESS)  # a variant, measured in this process
    args = parser.parse_args(argv)
    if args.only is not None:
        configure_logging(load_settings({}, log_level="error"))
        chosen = [] if args.only == "none" else args.only.split(",")
        speedups.configure(chosen)
        print(json.dumps(speedups.run(measure(args.only, args.accept_seconds, args.instances, args.burst))))
        return
    print("speedups (GATEWAY_SPEEDUPS)   accepted sends/s   vs none   burst sends/s (1 worker)   vs none")
    base: dict[str, float] = {}
    for variant in VARIANTS:
        rounds = [one(variant, args) for _ in range(args.rounds)]
        best = {key: max(r[key] for r in rounds) for key in rounds[0]}
        base = base or best
        accepted, sends = best["accepted_per_second"], best["burst_sends_per_second"]
        print(
            f"{variant:<30}{accepted:>16.0f}{accepted / base['accepted_per_second']:>10.2f}"
            f"{sends:>27.0f}{sends / base['burst_sends_per_second']:>10.2f}"
        )


if __name__ == "__main__":
    main()
