"""The web console in a real headless browser (Debian's chromium driven by Playwright): the
whole flow on the sandbox, from signing in to a message shown `sent`, with the page never
reloaded. Run with CONSOLE_SCREENSHOTS=docs/screenshots (`make screenshots`) to refresh the
README's pictures."""

from __future__ import annotations

import io
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zxingcpp
from aiohttp.test_utils import TestClient
from PIL import Image
from playwright.async_api import Browser, Page, async_playwright, expect

from gateway.state import SERVICES
from tests.conftest import ADMIN, ADMIN_KEY, eventually, instance_body
from tests.receiver import Receiver

CHROMIUM = Path("/usr/bin/chromium")
# As the machine's own browser tests start it: no sandbox (root), and no background traffic to
# hosts this closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NAME = "acme__shop1__sales"
WAIT_MS = 15_000  # the page reads again on each event; slack for a loaded machine

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (`make test` installs it with apt-get where it can): "
    "the console's browser tests cannot run here",
)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        found = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield found
        await found.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: the README's folder when asked for, else a scratch folder."""
    return Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path)


async def screenshot(page: Page, folder: Path, name: str, full_page: bool = True) -> None:
    """A PNG of the page, reduced to a small palette so the README's pictures stay small."""
    image = Image.open(io.BytesIO(await page.screenshot(full_page=full_page)))
    image.convert("RGB").quantize(colors=64).save(folder / f"{name}.png", optimize=True)


async def sign_in(page: Page, url: str, key: str) -> None:
    await page.goto(url)
    await page.get_by_label("API key").fill(key)
    await page.keyboard.press("Enter")  # a real form: the keyboard alone signs in


def decode_qr(png: bytes) -> str:
    [found] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    return str(found.text)


async def test_sign_in_create_link_by_qr_send_and_see_it_sent_without_a_reload(
    gateway: TestClient, acme: dict[str, str], browser: Browser, receiver: Receiver, shots: Path
) -> None:
    page = await browser.new_page(viewport={"width": 1200, "height": 900})
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    problems: list[str] = []  # script errors, and anything the browser refused (the CSP, a failed call)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    await sign_in(page, str(gateway.make_url("/dashboard")), acme["apikey"])
    await expect(page.get_by_role("heading", name="Instances", level=1)).to_be_focused()
    await expect(page.get_by_text("tenant acme")).to_be_visible()

    await page.get_by_label("Instance name").fill(NAME)
    await page.get_by_label("Webhook URL").fill(receiver.url())
    await expect(page.get_by_label("Deliverability")).to_have_value("cautious")  # proposed for a new number
    await expect(page.get_by_text("warm-up")).to_be_visible()  # and explained
    await page.get_by_role("button", name="Create and link").click()
    await expect(page.get_by_role("heading", name=NAME, level=1)).to_be_visible()
    assert (await gateway.app[SERVICES].instances.settings(NAME)).deliverability == "cautious"

    # The QR shown is the code the (sandbox) WhatsApp session is offering right now.
    qr = page.get_by_role("img", name="WhatsApp QR code")
    await expect(qr).to_be_visible(timeout=WAIT_MS)
    instance = await gateway.app[SERVICES].instances.get(NAME)
    assert decode_qr(await qr.screenshot()) == instance.qr
    connection = page.locator('dl[aria-label="Connection"]')
    await expect(connection).to_contain_text("connecting")
    await screenshot(page, shots, "instance-linking")

    await page.evaluate("window.notReloaded = true")
    linked = await gateway.post(f"/sandbox/instance/{NAME}/link", json={"phoneNumber": "5491100000000"}, headers=acme)
    assert linked.status == 200, await linked.text()
    await expect(connection.locator(".badge")).to_have_text("open", timeout=WAIT_MS)
    await expect(connection).to_contain_text("5491100000000")
    await expect(page.locator('dl[aria-label="Webhook state"] .badge')).to_have_text(re.compile(r"ok|retrying"))
    await expect(qr).to_be_hidden()

    await page.get_by_label("To", exact=True).fill("5491112345678")
    await page.get_by_label("Text", exact=True).fill("Hello from the console")
    await page.get_by_role("button", name="Send", exact=True).click()
    await expect(page.get_by_role("alert").filter(has_text="Queued as msg_")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="Hello from the console")
    await expect(row.locator(".badge")).to_have_text("sent", timeout=WAIT_MS)
    assert await page.evaluate("window.notReloaded") is True

    sent = await (await gateway.get(f"/sandbox/instance/{NAME}/sent", headers=acme)).json()
    assert [(s["to"], s["text"]) for s in sent] == [("5491112345678", "Hello from the console")]

    # Webhooks: a test event, then its replay, both reach the receiver.
    await page.get_by_role("button", name="Send a test event").click()
    deliveries = page.get_by_role("region", name="Webhook deliveries, newest first")
    test_row = deliveries.get_by_role("row").filter(has_text="webhook.test")
    await expect(test_row.locator(".badge")).to_have_text("delivered", timeout=WAIT_MS)
    await test_row.get_by_role("button", name="Replay").click()
    await expect(page.get_by_role("status")).to_contain_text("queued again", timeout=WAIT_MS)
    await eventually(lambda: len(receiver.of("webhook.test")) == 2)
    await expect(test_row.locator(".badge")).to_have_text("delivered", timeout=WAIT_MS)  # the replay's outcome
    await screenshot(page, shots, "instance-open")

    # Everything the page loaded came from the gateway itself (the QR is a data: URI).
    origin = str(gateway.make_url("/"))
    assert requested and all(url.startswith((origin, "data:")) for url in requested), requested
    assert problems == []


async def test_a_waiting_message_and_the_held_lane_heads_say_why(
    gateway: TestClient, acme: dict[str, str], browser: Browser
) -> None:
    assert (await gateway.post("/instance/create", json=instance_body(NAME), headers=acme)).status == 201
    body = {"instanceName": NAME, "to": "5491112345678", "text": "Waiting for the link"}
    assert (await gateway.post("/message/text", json=body, headers=acme)).status == 202
    urgent = {**body, "text": "Urgent, waiting too", "lane": "urgent"}
    assert (await gateway.post("/message/text", json=urgent, headers=acme)).status == 202
    page = await browser.new_page(viewport={"width": 1200, "height": 900})
    await sign_in(page, str(gateway.make_url(f"/dashboard#/instance/{NAME}")), acme["apikey"])
    row = page.get_by_role("row").filter(has_text="Waiting for the link")
    await expect(row).to_contain_text("waits: the number is not connected", timeout=WAIT_MS)
    await expect(page.locator(".held")).to_have_text("Held: the number is not connected (2).", timeout=WAIT_MS)


async def test_the_settings_are_shown_and_saved_on_the_instance_view(
    gateway: TestClient, acme: dict[str, str], browser: Browser
) -> None:
    proxy = "socks5://user:s3cret-pass@proxy.example.com:1080"
    body = instance_body(NAME, settings={"proxyUrl": proxy, "autoRead": True})
    assert (await gateway.post("/instance/create", json=body, headers=acme)).status == 201
    page = await browser.new_page(viewport={"width": 1200, "height": 900})
    await sign_in(page, str(gateway.make_url(f"/dashboard#/instance/{NAME}")), acme["apikey"])
    settings = page.get_by_role("form", name="Settings")
    await expect(settings.get_by_label("Proxy")).to_have_value("socks5://user:***@proxy.example.com:1080")
    await expect(settings.get_by_label("Read on arrival")).to_be_checked()
    await expect(settings.get_by_label("Keep past chats")).to_be_checked()
    await expect(settings.get_by_label("Reject calls")).not_to_be_checked()
    await settings.get_by_label("Reject calls").check()
    await settings.get_by_label("Message for a rejected caller").fill("We do not take calls: please write")
    await settings.get_by_label("Ignore groups").check()
    await settings.get_by_label("Deliverability").select_option("cautious")
    await settings.get_by_role("button", name="Save settings").click()
    await expect(settings.get_by_role("alert")).to_have_text("Settings saved.")
    stored = await gateway.app[SERVICES].instances.settings(NAME)
    assert (stored.reject_calls, stored.ignore_groups, stored.auto_read, stored.deliverability) == (
        True,
        True,
        True,
        "cautious",
    )
    assert stored.reject_call_message == "We do not take calls: please write"
    assert stored.proxy_url == proxy  # sent back masked: the stored password is kept
    await settings.get_by_label("Proxy").fill("ftp://nope")
    await settings.get_by_role("button", name="Save settings").click()
    await expect(settings.get_by_role("alert")).to_contain_text("proxyUrl")


async def test_admin_creates_a_tenant_issues_and_revokes_keys_and_flushes_a_queue(
    gateway: TestClient, browser: Browser, shots: Path
) -> None:
    page = await browser.new_page(viewport={"width": 1200, "height": 800})
    page.on("dialog", lambda dialog: dialog.accept())  # the console confirms revokes and flushes
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    await sign_in(page, str(gateway.make_url("/dashboard")), ADMIN_KEY)
    await page.get_by_role("link", name="Tenants and keys").click()
    await expect(page.get_by_role("heading", name="Tenants and keys", level=1)).to_be_focused()

    await page.get_by_label("Tenant id").fill("globex")
    await page.get_by_label("Name (optional)").fill("Globex Corporation")
    await page.get_by_role("button", name="Create tenant").click()
    created_alert = page.get_by_role("alert").filter(has_text="Tenant globex created")
    await expect(created_alert).to_be_visible()
    first_key = await created_alert.locator("code.secret").inner_text()
    whoami = await gateway.get("/whoami", headers={"apikey": first_key})
    assert (await whoami.json())["tenantId"] == "globex"

    await page.get_by_role("button", name="Issue a key for globex").click()
    issued_alert = page.get_by_role("alert").filter(has_text="New key for globex")
    await expect(issued_alert).to_be_visible()
    second_key = await issued_alert.locator("code.secret").inner_text()
    assert second_key != first_key
    [tenant] = await (await gateway.get("/admin/tenants", headers=ADMIN)).json()
    assert len(tenant["keyIds"]) == 2
    first_id = await _key_id_of(gateway, first_key)
    assert first_id in tenant["keyIds"]
    await page.get_by_role("button", name=f"Revoke key {first_id}").click()
    await expect(page.get_by_role("button", name=f"Revoke key {first_id}")).to_have_count(0)
    assert (await gateway.get("/whoami", headers={"apikey": first_key})).status == 401
    assert (await gateway.get("/whoami", headers={"apikey": second_key})).status == 200
    await screenshot(page, shots, "tenants")

    # An instance that is not linked keeps its messages waiting: the admin flushes them.
    name = "globex__shop__main"
    created = await gateway.post("/instance/create", json=instance_body(name), headers=ADMIN)
    assert created.status == 201, await created.text()
    for text in ("first", "second"):
        body = {"instanceName": name, "to": "5491112345678", "text": text}
        assert (await gateway.post("/message/text", json=body, headers=ADMIN)).status == 202
    await page.get_by_role("link", name="Instances", exact=True).click()
    await page.get_by_role("link", name=name).click()
    # The admin's list of instances is one call however many tenants there are.
    assert any("/admin/instances?" in url for url in asked)
    assert not any("/tenant/" in url for url in asked)
    lanes = page.get_by_role("region", name="Messages waiting per lane")
    await expect(lanes.get_by_role("row").filter(has_text="normal")).to_contain_text("2", timeout=WAIT_MS)
    await page.get_by_role("button", name="Flush the queue").click()
    await expect(page.get_by_role("status")).to_have_text("2 waiting messages cancelled.", timeout=WAIT_MS)
    recent = page.get_by_role("region", name="Recent messages, newest first")
    await expect(recent.locator(".badge-cancelled")).to_have_count(2, timeout=WAIT_MS)


async def _key_id_of(gateway: TestClient, key: str) -> str:
    return str((await (await gateway.get("/whoami", headers={"apikey": key})).json())["keyId"])


async def test_on_a_phone_nothing_overflows_a_wrong_key_says_why_the_qr_renews_and_pairing_works(
    gateway: TestClient, acme: dict[str, str], browser: Browser, shots: Path
) -> None:
    created = await gateway.post("/instance/create", json=instance_body(NAME), headers=acme)
    assert created.status == 201, await created.text()
    page = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    await page.clock.install()  # the page's own clock, moved forward below to expire its QR code

    await sign_in(page, str(gateway.make_url("/dashboard")), "not-a-key")
    await expect(page.get_by_role("alert")).to_contain_text("unknown or revoked API key")
    await screenshot(page, shots, "phone-sign-in")

    await page.get_by_label("API key").fill(acme["apikey"])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("link", name=NAME)).to_be_visible(timeout=WAIT_MS)
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await screenshot(page, shots, "phone-instances")

    await page.get_by_role("link", name=NAME).click()
    await expect(page.get_by_role("img", name="WhatsApp QR code")).to_be_visible(timeout=WAIT_MS)
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await screenshot(page, shots, "phone-instance", full_page=False)

    # When the code shown expires (WhatsApp's last 20-60 s), the page fetches the current one.
    async with page.expect_request(lambda request: request.url.endswith(f"/instance/{NAME}/qr"), timeout=WAIT_MS):
        await page.clock.fast_forward("01:01")

    # Or link by pairing code: WhatsApp's 8 characters, shown large.
    await page.get_by_label("Phone number").fill("5491112345678")
    await page.get_by_role("button", name="Get a pairing code").click()
    await expect(page.locator("strong.code")).to_have_text(re.compile(r"^[A-Z0-9]{4}-?[A-Z0-9]{4}$"))
