"""`python -m benchmarks.counted FILE deliverer`: a `wa-gateway` command (here the deliverer) whose
Redis round trips are counted as the benchmark counts its own (benchmarks/roundtrips.py). On
SIGUSR1 it writes what it counted so far to FILE as JSON (`count`, and `by_command` with scripts
by name), so the benchmark can count another process's round trips over its steady phase."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from benchmarks.roundtrips import RoundTrips, script_names
from gateway.cli import main as gateway


def counts(trips: RoundTrips) -> dict[str, object]:
    names = script_names()
    by_command: dict[str, int] = {}
    for command, n in trips.by_command.items():
        verb, _, sha = command.partition(" ")
        label = f"{verb} {names.get(sha, sha[:8])}" if sha else verb
        by_command[label] = by_command.get(label, 0) + n
    return {"count": trips.count, "by_command": by_command}


def run(path: Path, args: list[str]) -> None:
    trips = RoundTrips()

    def write(signum: int, frame: FrameType | None) -> None:
        written = path.with_suffix(".part")
        written.write_text(json.dumps(counts(trips)))
        os.replace(written, path)  # whole or not there: the benchmark reads it as soon as it is

    signal.signal(signal.SIGUSR1, write)
    with trips.counting():
        gateway.main(args, prog_name="wa-gateway")


if __name__ == "__main__":
    run(Path(sys.argv[1]), sys.argv[2:])
