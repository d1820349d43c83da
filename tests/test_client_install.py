"""The client as an integrator installs it: `pip install ./clients/python` into a fresh venv,
without the server, then the README's example against a served gateway (sandbox driver)."""

from __future__ import annotations

import json
import re
import subprocess
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import UNTYPED
from tests.serve_process import ServeProcess

ROOT = Path(__file__).resolve().parent.parent
LANES = {lane: {"gap": [0.005, 0.01], **UNTYPED} for lane in ("urgent", "normal", "bulk")}
AIOHTTP_AND_ITS_OWN = {"aiohttp", "aiohappyeyeballs", "aiosignal", "attrs", "frozenlist", "multidict", "propcache",
                       "yarl", "idna", "typing-extensions"}  # fmt: skip
SERVER_PACKAGES = ("gateway", "config", "core", "scheduler", "webhooks")


def readme_example() -> str:
    section = (ROOT / "README.md").read_text().split("\n## Python client\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "the README's Python client section has no example"
    return match.group(1)


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding wa-gateway-client alone (and aiohttp): its python."""
    home = tmp_path_factory.mktemp("client-venv")
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    install = [
        str(python),
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        str(ROOT / "clients" / "python"),
    ]
    done = subprocess.run(install, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return python


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServeProcess]:
    gateway = ServeProcess(tmp_path / "data", GATEWAY_LANES=json.dumps(LANES))
    gateway.start()
    yield gateway
    gateway.stop()


def test_the_client_installs_without_the_server(client_venv: Path) -> None:
    listed = subprocess.run([str(client_venv), "-m", "pip", "list", "--format=json"], capture_output=True, text=True)
    names = {item["name"].lower().replace("_", "-") for item in json.loads(listed.stdout)} - {"pip", "setuptools"}
    assert "wa-gateway-client" in names and "wa-gateway" not in names
    assert names - {"wa-gateway-client"} <= AIOHTTP_AND_ITS_OWN
    probe = f"import importlib.util as u; print([n for n in {SERVER_PACKAGES!r} if u.find_spec(n)])"
    found = subprocess.run([str(client_venv), "-c", probe], capture_output=True, text=True, cwd=client_venv.parent)
    assert found.stdout.strip() == "[]"  # no top-level `gateway`, `config`, `core`... came with it


def test_the_readme_example_runs_against_a_served_gateway(client_venv: Path, served: ServeProcess) -> None:
    example = readme_example().replace('"http://127.0.0.1:8080"', repr(served.base))
    done = subprocess.run(
        [str(client_venv), "-c", example], cwd=served.data_dir.parent, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "sent"
    assert (served.data_dir.parent / "qr.png").read_bytes().startswith(b"\x89PNG")
