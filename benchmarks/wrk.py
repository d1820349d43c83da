"""HTTP load for the accept figures, from wrk (Debian's `wrk`, a load generator in C that `make
bench` installs). On two cores the load generator shares the CPU with what it measures: the one in
Python it replaces (aiohttp's client) spent 120-190 µs of CPU a request against the gateway, about
half of what the gateway's API process spends, all of it taken from the cores that a second API
process would use. wrk spends a few µs a request."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

THREADS = 1  # one core's worth of load generator at most: the servers get the rest


def _script(body: Any, headers: dict[str, str]) -> str:
    """wrk's Lua: every request a POST of `body` (JSON) with `headers`."""
    lines = ['wrk.method = "POST"', f"wrk.body = [==[{json.dumps(body)}]==]"]
    for name, value in {"Content-Type": "application/json", **headers}.items():
        lines.append(f'wrk.headers["{name}"] = [==[{value}]==]')
    return "\n".join(lines) + "\n"


async def wrk_rate(url: str, body: Any, headers: dict[str, str], seconds: float, connections: int) -> float:
    """Requests a second that `connections` connections get answered in `seconds`, each POSTing
    `body` with `headers`; every answer must be a 2xx and no connection may fail."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk not found: `make bench` installs it (Debian's package wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(_script(body, headers))
        command = [wrk, f"-t{THREADS}", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script), url]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out = (await process.communicate())[0].decode()
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {out}")
    if "Non-2xx or 3xx responses" in out:
        raise RuntimeError(f"answers other than 2xx:\n{out}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if errors and any(int(n) for n in errors.groups()):
        raise RuntimeError(f"connections failed:\n{out}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rate is None:
        raise RuntimeError(f"no rate in wrk's report:\n{out}")
    return float(rate.group(1))
