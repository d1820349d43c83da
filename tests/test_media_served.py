"""Media a contact sent is served so that a browser shows it at most and never runs it: a file
planted by a contact must not act on the origin where the console keeps its key (issue 23)."""

from __future__ import annotations

import base64
import contextlib

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser
from playwright.async_api import Error as PlaywrightError

from tests.receiver import Receiver
from tests.test_console import browser  # noqa: F401
from tests.test_inbound import CONTACT, PNG, inbound, local, next_event, settings  # noqa: F401

HTML = b"<!DOCTYPE html><html><body><script>document.title = sessionStorage.getItem('apikey')</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.domain)</script></svg>'
SCRIPT = b"#!/usr/bin/env node\nfetch('/admin/keys', {headers: {apikey: sessionStorage.apikey}})\n"
SANDBOX = "default-src 'none'; sandbox"


@pytest.mark.parametrize(
    ("data", "kind", "disposition"),
    [
        (HTML, "text/html", "attachment"),
        (SVG, "image/svg+xml", "attachment"),
        (SCRIPT, "application/javascript", "attachment"),
        (PNG, "image/png", "inline"),
    ],
)
async def test_media_is_never_run_by_a_browser(
    gateway: TestClient,
    acme: dict[str, str],
    receiver: Receiver,
    hooked: str,
    data: bytes,
    kind: str,
    disposition: str,
) -> None:
    body = {"from": CONTACT, "mediaBase64": base64.b64encode(data).decode(), "mimetype": kind}
    await inbound(gateway, acme, body)
    media = (await next_event(receiver, "message.received"))["media"]
    for response in (await gateway.get(local(media["url"])), await gateway.get(f"/media/{media['id']}", headers=acme)):
        assert response.status == 200
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Security-Policy"] == SANDBOX
        assert response.headers["Content-Disposition"].split(";")[0] == disposition, media["mimetype"]
        assert await response.read() == data


async def test_console_runs_scripts_from_its_static_path_only(gateway: TestClient) -> None:
    response = await gateway.get("/dashboard")
    policy = dict(part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";"))
    host = response.url.host
    assert policy["script-src"] == f"http://{host}:{response.url.port}/dashboard/static/"
    forged = await gateway.get("/dashboard", headers={"Host": "evil; script-src *"})
    assert "script-src http://invalid/dashboard/static/;" in forged.headers["Content-Security-Policy"]


async def test_in_a_real_browser_a_planted_page_is_downloaded_and_never_runs(
    gateway: TestClient,
    acme: dict[str, str],
    receiver: Receiver,
    hooked: str,
    browser: Browser,  # noqa: F811  # the fixture of tests/test_console.py
) -> None:
    beacon = receiver.url("/ran")  # the planted script would call here
    page_html = f"<!DOCTYPE html><html><body><script>fetch('{beacon}')</script></body></html>".encode()
    body = {"from": CONTACT, "mediaBase64": base64.b64encode(page_html).decode(), "mimetype": "text/html"}
    await inbound(gateway, acme, body)
    media = (await next_event(receiver, "message.received"))["media"]
    page = await browser.new_page()
    async with page.expect_download() as download:
        with contextlib.suppress(PlaywrightError):  # Chromium reports the navigation as a download
            await page.goto(str(gateway.make_url(local(media["url"]))))
    assert (await download.value).suggested_filename
    assert not [r for r in receiver.requests if r.path == "/ran"]
