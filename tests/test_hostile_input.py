"""Hostile input against the served gateway: protocol errors, odd bytes in headers and bodies,
slow clients and too many connections all get a documented answer (or a cut connection), never
a 500, a hang or an error in the log."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ADMIN, make_settings
from tests.http_live import Captured, Live, captured_logs, live_gateway, raw_request

NAME = "acme__shop1__sales"


@pytest.fixture
def logs() -> Iterator[Captured]:
    with captured_logs() as captured:
        yield captured
    assert captured.errors() == []


@pytest.fixture
async def live(redis_url: str, tmp_path: Path, logs: Captured) -> AsyncIterator[Live]:
    settings = make_settings(redis_url, tmp_path / "data", http_header_timeout=1.0, http_body_timeout=1.0)
    async with live_gateway(settings) as served:
        yield served


@pytest.fixture
async def http(live: Live) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(live.base) as session:
        yield session


@pytest.fixture
async def acme(http: aiohttp.ClientSession) -> dict[str, str]:
    async with http.post("/admin/tenants", json={"tenantId": "acme"}, headers=ADMIN) as response:
        assert response.status == 201
        return {"apikey": (await response.json())["apiKey"]}


def assert_error_shape(status: int, headers: dict[str, str], body: dict, code: str) -> None:
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    assert re.fullmatch(r"req_[0-9a-f]{24}", body["requestId"])
    assert headers["x-request-id"] == body["requestId"]
    if status == 400:
        assert body["error"]["issues"]


HEAD = b"Host: 127.0.0.1\r\n"
PROTOCOL_ERRORS = {
    "nul in a header": b"GET /health HTTP/1.1\r\n" + HEAD + b"X-Thing: a\x00b\r\n\r\n",
    "bare cr in a header": b"GET /health HTTP/1.1\r\n" + HEAD + b"X-Thing: a\rb\r\n\r\n",
    "bare lf inside a header line": b"GET /health HTTP/1.1\r\n" + HEAD + b"X-Thing: a\nb: c\n\r\n\r\n",
    "obsolete line folding": b"GET /health HTTP/1.1\r\n" + HEAD + b"X-Thing: a\r\n  folded\r\n\r\n",
    "100 KB header": b"GET /health HTTP/1.1\r\n" + HEAD + b"X-Thing: " + b"a" * 100_000 + b"\r\n\r\n",
    "bad content-length": b"POST /admin/tenants HTTP/1.1\r\n" + HEAD + b"Content-Length: 12abc\r\n\r\n{}",
    "content-length and transfer-encoding": b"POST /admin/tenants HTTP/1.1\r\n"
    + HEAD
    + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "unknown method": b"BR(EW /health HTTP/1.1\r\n" + HEAD + b"\r\n",
    "20k url": b"GET /health?" + b"a" * 20_000 + b" HTTP/1.1\r\n" + HEAD + b"\r\n",
}


@pytest.mark.parametrize("data", PROTOCOL_ERRORS.values(), ids=PROTOCOL_ERRORS.keys())
async def test_protocol_errors_answer_400_in_the_error_shape_with_a_request_id(live: Live, data: bytes) -> None:
    response = await raw_request(live.port, data)
    assert response.status == 400
    assert response.headers["content-type"].startswith("application/json")
    assert_error_shape(400, response.headers, response.json(), "validation_error")


async def test_a_non_ascii_apikey_is_an_unknown_key(live: Live) -> None:
    response = await raw_request(live.port, b"GET /admin/stats HTTP/1.1\r\n" + HEAD + b"apikey: \xe9\r\n\r\n")
    assert response.status == 401
    assert_error_shape(401, response.headers, response.json(), "invalid_api_key")


async def test_an_integer_of_5000_digits_is_a_400(http: aiohttp.ClientSession, acme: dict[str, str]) -> None:
    body = json.dumps({"instanceName": NAME, "to": "5491112345678"})[:-1] + ', "text": ' + "1" * 5000 + "}"
    async with http.post("/message/text", data=body, headers=acme) as response:
        assert response.status == 400
        found = await response.json()
    assert "not valid JSON" in found["error"]["issues"][0]["message"]


async def test_nan_is_not_json(http: aiohttp.ClientSession) -> None:
    async with http.post("/admin/tenants", data='{"tenantId": NaN}', headers=ADMIN) as response:
        assert response.status == 400


TRAILING_NEWLINES = [
    ("/admin/tenants", {"tenantId": "evil\n"}, ["tenantId"]),
    ("/instance/create", {"instanceName": f"{NAME}\n", "webhookUrl": "http://127.0.0.1:9/h", "webhookSecret": "s" * 16},
     ["instanceName"]),
    ("/message/text", {"instanceName": NAME, "to": "5491112345678\n", "text": "hi"}, ["to"]),
    ("/message/route", {"tenantId": "acme", "clientId": "shop1\n", "type": "text", "to": "5491112345678", "text": "hi"},
     ["clientId"]),
    (f"/instance/{NAME}/pairing-code/request", {"phoneNumber": "5491112345678\n"}, ["phoneNumber"]),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "where"), TRAILING_NEWLINES, ids=[p for p, _, _ in TRAILING_NEWLINES])
async def test_a_trailing_newline_is_refused(
    http: aiohttp.ClientSession, acme: dict[str, str], path: str, body: dict, where: list[str]
) -> None:
    headers = ADMIN if path.startswith("/admin") else acme
    async with http.post(path, json=body, headers=headers) as response:
        assert response.status == 400, await response.text()
        found = await response.json()
    assert [issue["path"] for issue in found["error"]["issues"]] == [where]


async def test_a_client_stalled_mid_headers_is_cut_after_the_header_timeout(live: Live) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    writer.write(b"GET /health HTTP/1.1\r\n" + HEAD + b"X-Slow: ")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), timeout=10) == b""  # closed by the server, well before 10 s
    writer.close()


async def test_a_client_stalled_mid_body_gets_408_and_its_connection_closed(live: Live) -> None:
    head = b"POST /admin/tenants HTTP/1.1\r\n" + HEAD + b"apikey: " + ADMIN["apikey"].encode()
    response = await raw_request(live.port, head + b"\r\nContent-Length: 100\r\n\r\n{", timeout=10)
    assert response.status == 408
    assert_error_shape(408, response.headers, response.json(), "request_timeout")


async def test_connections_over_the_limit_get_503_and_are_closed(redis_url: str, tmp_path: Path) -> None:
    settings = make_settings(redis_url, tmp_path / "data", http_max_connections=2)
    with captured_logs() as logs:
        async with live_gateway(settings) as served:
            held = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(2)]
            response = await raw_request(served.port, b"GET /health HTTP/1.1\r\n" + HEAD + b"\r\n")
            assert response.status == 503
            assert_error_shape(503, response.headers, response.json(), "unavailable")
            for _, writer in held:
                writer.close()
    assert logs.errors() == []


async def test_a_lone_surrogate_escape_is_a_400(http: aiohttp.ClientSession, acme: dict[str, str]) -> None:
    body = '{"instanceName": "%s", "to": "5491112345678", "text": "\\ud800"}'.replace("%s", NAME)
    async with http.post("/message/text", data=body, headers=acme) as response:
        assert response.status == 400


async def test_a_null_webhook_field_is_a_400(http: aiohttp.ClientSession, acme: dict[str, str]) -> None:
    body = {"webhookUrl": None, "webhookSecret": "s" * 16}
    async with http.patch(f"/instance/{NAME}/webhook", json=body, headers=acme) as response:
        assert response.status == 400


async def test_a_malformed_path_parameter_is_a_400_naming_it(http: aiohttp.ClientSession, acme: dict[str, str]) -> None:
    async with http.get(f"/tenant/acme/client/{'x' * 41}/instances", headers=acme) as response:
        assert response.status == 400
        found = await response.json()
    assert [issue["path"] for issue in found["error"]["issues"]] == [["path", "clientId"]]


@pytest.mark.parametrize(("path", "allowed"), [("/instance/create", "POST"), ("/message/text", "POST")])
async def test_allow_lists_only_the_methods_of_that_path(
    http: aiohttp.ClientSession, acme: dict[str, str], path: str, allowed: str
) -> None:
    async with http.options(path, headers=acme) as response:
        assert response.status == 405
        assert response.headers["Allow"] == allowed
