"""The OpenAPI document is the contract: it is a valid OpenAPI 3.1 document, and schemathesis,
generating requests from it (every phase, every check, a bounded number of examples per
operation), finds nothing the served gateway does differently, with the admin key and with a
tenant key, and nothing it sends makes the server log an error."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp
import pytest
from openapi_spec_validator import validate

from tests.conftest import ADMIN, make_settings
from tests.http_live import captured_logs, live_gateway

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_PER_OPERATION = 5
# Two schemathesis runs over every operation take about three minutes on a busy 2-core machine:
# more than the suite's default per-test limit, which is meant for hangs.
pytestmark = pytest.mark.timeout(600)


# GET /events is a WebSocket, which plain HTTP calls cannot open (they get 426): tests/test_events.py
# drives it with a real WebSocket client instead.
async def schemathesis_run(base: str, apikey: str, workdir: Path, *extra: str) -> tuple[int, str]:
    """One `schemathesis run`, from `workdir` (where it keeps its cache), with our hooks."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "run", f"{base}/openapi.json",
        "--checks", "all", "--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", "12",
        "--workers", "1", "--generation-database", "none", "--no-color", "--suppress-health-check", "all",
        "-H", f"apikey: {apikey}", "--exclude-path", "/events", *extra,
        cwd=workdir, env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode(errors="replace")


@pytest.mark.timeout(600)
async def test_schemathesis_finds_no_difference_between_the_document_and_the_gateway(
    redis_url: str, tmp_path: Path
) -> None:
    settings = make_settings(redis_url, tmp_path / "data", rate_limit=1_000_000)
    with captured_logs() as logs:
        async with live_gateway(settings) as live, aiohttp.ClientSession(live.base) as http:
            async with http.get("/openapi.json") as response:
                validate(await response.json())
            async with http.post("/admin/tenants", json={"tenantId": "acme"}, headers=ADMIN) as response:
                tenant_key = (await response.json())["apiKey"]
            as_admin = await schemathesis_run(live.base, ADMIN["apikey"], tmp_path)
            as_tenant = await schemathesis_run(live.base, tenant_key, tmp_path, "--exclude-path-regex", "^/admin")
    for code, output in (as_admin, as_tenant):
        assert code == 0, output
    assert logs.errors() == []
