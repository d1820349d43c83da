"""`python -m benchmarks.many --instances 100000`: lateness with many linked sandbox instances on
one worker (figure 5 of `make bench`, at any count), and what each instance costs: Redis memory
and the worker's RSS per idle instance, and how long opening them all took (create + link through
the API, 50 at a time). Steady phase only: `--rate` messages a second to random instances for
`--seconds`, gaps compressed to tens of milliseconds; the goal at 100,000 is p99 <= 250 ms.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from benchmarks.__main__ import paced_run, percentile, run_as_deployed
from benchmarks.roundtrips import RoundTrips
from config import load_settings
from core.logs import configure_logging


def main(argv: Any = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.many", description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=100, help="messages a second in the steady phase")
    parser.add_argument("--seconds", type=float, default=10, help="length of the steady phase")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    args = parser.parse_args(argv)
    configure_logging(load_settings({}, log_level="error"))
    run = run_as_deployed(paced_run(args.instances, args.rate, args.seconds, 0, RoundTrips()))
    steady = run["steady"]
    figures = {
        "instances": args.instances,
        "load_average": os.getloadavg(),
        "lateness_ms": {"p50": percentile(steady, 0.5), "p99": percentile(steady, 0.99), "max": max(steady)},
        "redis_per_instance": run["redis_per_instance"],
        "worker_rss_per_instance": run["rss_per_instance"],
        "open_seconds": run["open_seconds"],
    }
    print(
        f"lateness on {args.instances:,} instances, {args.rate:g} messages/s for {args.seconds:g} s: "
        f"p50 {figures['lateness_ms']['p50']:.1f} ms   p99 {figures['lateness_ms']['p99']:.1f} ms   "
        f"max {figures['lateness_ms']['max']:.1f} ms   (goal p99 <= 250 ms at 100,000)"
    )
    print(
        f"   per idle instance: Redis {run['redis_per_instance'] / 1024:.2f} KiB   worker RSS "
        f"{run['rss_per_instance'] / 1024:.1f} KiB   opened in {run['open_seconds']:.0f} s   "
        f"(load average {figures['load_average'][0]:.1f})"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
