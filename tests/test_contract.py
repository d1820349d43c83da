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
from openapi_spec_validator import validate

from tests.conftest import ADMIN, make_settings
from tests.http_live import captured_logs, live_gateway

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_PER_OPERATION = 20


async def schemathesis_run(base: str, apikey: str, *extra: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "run", f"{base}/openapi.json",
        "--checks", "all", "--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", "12",
        "--workers", "1", "--generation-database", "none", "--no-color", "--suppress-health-check", "all",
        "-H", f"apikey: {apikey}", *extra,
        cwd=ROOT, env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode(errors="replace")


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
            code, output = await schemathesis_run(live.base, ADMIN["apikey"])
            assert code == 0, output
            code, output = await schemathesis_run(live.base, tenant_key, "--exclude-path-regex", "^/admin")
            assert code == 0, output
    assert logs.errors() == []
