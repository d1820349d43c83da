"""`wa-gateway serve` keeps its data to itself (issue 23): the data folder is 0700 and everything
written in it (keys, the embedded Redis's files, session stores, media) is readable by its owner
alone, even where the folder existed before with looser modes."""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve_process import ServeProcess, wait_for
from tests.test_media import PNG


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServeProcess, Path]]:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    process = ServeProcess(data, "serve", GATEWAY_ALLOW_PRIVATE_URLS="true")  # embedded Redis, generated keys
    process.start(timeout=60)
    yield process, data
    process.stop()


def test_the_data_folder_and_every_file_in_it_are_private(served: tuple[ServeProcess, Path]) -> None:
    process, data = served
    admin = (data / "admin.key").read_text().strip()
    key = process.request("POST", "/admin/tenants", {"tenantId": "acme"}, key=admin)[1]["apiKey"]
    body = {"instanceName": "acme__shop1__sales", "webhookUrl": "http://127.0.0.1:9/hook", "webhookSecret": "s" * 16}
    assert process.request("POST", "/instance/create", body, key=key)[0] == 201
    link = {"phoneNumber": "5491100000000"}
    assert process.request("POST", "/sandbox/instance/acme__shop1__sales/link", link, key=key)[0] == 200
    image = {"from": "5491155554444", "mediaBase64": base64.b64encode(PNG).decode()}
    assert process.request("POST", "/sandbox/instance/acme__shop1__sales/inbound", image, key=key)[0] == 201
    wait_for(lambda: any("med_" in name for _, _, names in os.walk(data) for name in names), 20, "the media file")

    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    loose = []
    for folder, _, names in os.walk(data):
        for name in names:
            path = Path(folder) / name
            if not path.is_socket() and stat.S_IMODE(path.stat().st_mode) & 0o077:
                loose.append(f"{path.relative_to(data)} {oct(stat.S_IMODE(path.stat().st_mode))}")
    assert loose == []
    assert any(name.endswith((".aof", ".rdb", ".manifest")) for _, _, names in os.walk(data) for name in names)
