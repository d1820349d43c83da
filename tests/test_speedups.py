"""GATEWAY_SPEEDUPS (core/speedups.py): with orjson on or off, a request's JSON is judged alike
(NaN, Infinity, a lone surrogate escape: 400 naming it) and answers are the same JSON; an
accelerator that is not installed, or unknown, stops start-up with its name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiohttp.test_utils import TestClient

from config import SettingsError, load_settings
from core import speedups
from tests.conftest import ADMIN


@pytest.fixture(params=[(), ("orjson",), ("uvloop", "orjson", "hiredis")])
def chosen(request: pytest.FixtureRequest) -> Iterator[tuple[str, ...]]:
    speedups.configure(request.param)
    yield request.param
    speedups.configure(load_settings({}).speedups)


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b'{"tenantId": NaN}', "not valid JSON"),
        (b'{"tenantId": "acme", "x": Infinity}', "not valid JSON"),
        (b'{"tenantId": "\\ud800"}', "surrogate"),
        (b'{"tenantId": ', "not valid JSON"),
    ],
)
async def test_bad_json_is_refused_alike(chosen: tuple[str, ...], client: TestClient, body: bytes, said: str) -> None:
    response = await client.post("/admin/tenants", data=body, headers={**ADMIN, "Content-Type": "application/json"})
    assert response.status == 400
    answer = await response.json()
    assert said in str(answer) or ("orjson" in chosen and "not valid JSON" in str(answer))


async def test_answers_are_the_same_json(chosen: tuple[str, ...], client: TestClient) -> None:
    response = await client.post("/admin/tenants", json={"tenantId": "acme"}, headers=ADMIN)
    assert response.status == 201 and response.content_type == "application/json"
    assert (await response.json())["tenantId"] == "acme"


def test_an_accelerator_not_installed_or_unknown_is_named() -> None:
    with pytest.raises(SettingsError, match="GATEWAY_SPEEDUPS"):
        load_settings({"GATEWAY_SPEEDUPS": "rust"})
    assert load_settings({"GATEWAY_SPEEDUPS": "none"}).speedups == frozenset()
    assert load_settings({"GATEWAY_SPEEDUPS": "uvloop, orjson"}).speedups == {"uvloop", "orjson"}
