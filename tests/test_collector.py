"""GATEWAY_GC_THRESHOLD (core/speedups.py tune_collector): every gateway process the CLI starts
collects its youngest generation every 10,000 allocations, not CPython's 700, with what start-up
built frozen out of every collection; 0 leaves CPython's collector as it is. Each case runs in a
process of its own: freezing the test runner's objects would outlive the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import SettingsError, load_settings
from tests.serve_process import free_port

# A CLI command that reads the settings and ends at once (nobody answers /health on that port),
# then the collector as that process left it.
PROBE = """
import gc, json
from gateway.cli import main
try:
    main.main(["health", "--timeout", "0.2"], prog_name="wa-gateway")
except SystemExit:
    pass
print(json.dumps({"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


def collector(tmp_path: Path, **env: str) -> dict[str, object]:
    variables = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    variables |= {"GATEWAY_DATA_DIR": str(tmp_path), "GATEWAY_PORT": str(free_port()), **env}
    done = subprocess.run([sys.executable, "-c", PROBE], env=variables, capture_output=True, text=True, timeout=60)
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_a_gateway_process_collects_young_objects_every_10_000_allocations_with_start_up_frozen(
    tmp_path: Path,
) -> None:
    found = collector(tmp_path)
    assert found["threshold"] == [10_000, 10, 10]
    assert isinstance(found["frozen"], int) and found["frozen"] > 10_000  # modules, schemas, settings


def test_0_leaves_cpythons_collector_as_it_is(tmp_path: Path) -> None:
    assert collector(tmp_path, GATEWAY_GC_THRESHOLD="0") == {"threshold": [700, 10, 10], "frozen": 0}
    assert collector(tmp_path, GATEWAY_GC_THRESHOLD="50000")["threshold"] == [50_000, 10, 10]


def test_a_negative_threshold_is_refused_with_its_name() -> None:
    with pytest.raises(SettingsError, match="GATEWAY_GC_THRESHOLD"):
        load_settings({"GATEWAY_GC_THRESHOLD": "-1"})
