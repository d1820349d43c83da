"""The console for a day's work (issue 26), in the real headless browser of tests/test_console.py:
inbound messages shown live over the /events socket (and the page saying so when it must poll),
the webhook's state, settings and bulk replay, the opt-out list, the admin's overview, copy
buttons, and a phone's width with every status and Replay on screen."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, Locator, Page, WebSocketRoute, expect

from config.settings import Settings
from tests import test_console
from tests.conftest import ADMIN, ADMIN_KEY, eventually, instance_body, make_settings
from tests.receiver import Receiver
from tests.test_console import NAME, WAIT_MS, screenshot, sign_in

# The browser and the screenshots' folder, as tests/test_console.py provides them.
browser = test_console.browser
shots = test_console.shots
Gateway = TestClient[web.Request, web.Application]

pytestmark = pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed")

CONTACT = "5491155554444"
# Retries and probes short enough for a webhook to go down within a second.
FAST_WEBHOOKS = {"webhook_retry_delays": (0.05, 0.1, 0.2), "webhook_probe_delays": (0.3, 0.5), "webhook_timeout": 2.0}


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return make_settings(redis_url, tmp_path / "data", **FAST_WEBHOOKS)


async def linked(gateway: Gateway, headers: dict[str, str], webhook_url: str) -> None:
    created = await gateway.post("/instance/create", json=instance_body(NAME, webhookUrl=webhook_url), headers=headers)
    assert created.status == 201, await created.text()
    done = await gateway.post(f"/sandbox/instance/{NAME}/link", json={"phoneNumber": "5491100000000"}, headers=headers)
    assert done.status == 200, await done.text()


async def write_in(gateway: Gateway, headers: dict[str, str], text: str) -> None:
    answer = await gateway.post(
        f"/sandbox/instance/{NAME}/inbound", json={"from": CONTACT, "text": text, "pushName": "Ana"}, headers=headers
    )
    assert answer.status == 201, await answer.text()


def deliveries(page: Page) -> Locator:
    return page.get_by_role("region", name="Webhook deliveries, newest first")


async def quiet(asked: list[str], seconds: float = 1.0) -> None:
    """Wait until the page has asked for nothing new for `seconds` of real time."""
    while True:
        before = len(asked)
        await asyncio.sleep(seconds)
        if len(asked) == before:
            return


async def settled(page: Page) -> None:
    """Every delivery shown has settled: nothing on its way for the page to look at again."""
    await expect(deliveries(page).locator(".badge-delivered").first).to_be_visible(timeout=WAIT_MS)
    await expect(deliveries(page).locator(".badge-pending, .badge-retrying")).to_have_count(0, timeout=WAIT_MS)


async def test_an_inbound_message_shows_in_its_conversation_live_with_no_reload_and_no_polling(
    gateway: Gateway, acme: dict[str, str], browser: Browser, receiver: Receiver, shots: Path
) -> None:
    await linked(gateway, acme, receiver.url())
    page = await browser.new_page(viewport={"width": 1200, "height": 900})
    await page.clock.install()  # real time flows; fast_forward below runs whatever timers the page set
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    await sign_in(page, str(gateway.make_url(f"/dashboard#/instance/{NAME}")), acme["apikey"])
    await expect(page.locator(".top .live")).to_have_text("Live", timeout=WAIT_MS)
    await settled(page)
    await page.evaluate("window.notReloaded = true")

    await write_in(gateway, acme, "Hola, ¿tienen stock del modelo azul?")
    chat = page.get_by_role("list", name="Chats, most recent first").get_by_role("button").filter(has_text=CONTACT)
    await expect(chat).to_contain_text("tienen stock", timeout=WAIT_MS)
    await expect(chat).to_contain_text("Ana")  # the contact's name, beside the number
    await expect(chat.locator(".badge-unread")).to_have_text("1")
    thread = page.get_by_role("list", name=f"Messages with {CONTACT}, newest first")
    await expect(thread.get_by_role("listitem").first).to_contain_text("Hola, ¿tienen stock del modelo azul?")
    feed = page.get_by_role("list", name="Live events, newest first")
    await expect(feed).to_contain_text(f"message.received {CONTACT}: Hola")

    # The answer goes from the chat itself, and shows there once sent.
    reply = page.get_by_role("form", name=f"Reply to {CONTACT}")
    await reply.get_by_label("Reply").fill("Sí, nos quedan tres.")
    await reply.get_by_role("button", name="Send reply").click()
    await expect(reply.get_by_role("alert")).to_contain_text("Queued as msg_")
    await expect(thread.get_by_role("listitem").first).to_contain_text("Sí, nos quedan tres.", timeout=WAIT_MS)
    await expect(thread.get_by_role("listitem").first).to_contain_text("Sent")
    sent = await (await gateway.get(f"/sandbox/instance/{NAME}/sent", headers=acme)).json()
    assert [(s["to"], s["text"]) for s in sent] == [(CONTACT, "Sí, nos quedan tres.")]
    assert await page.evaluate("window.notReloaded") is True
    await settled(page)
    await screenshot(page, shots, "conversations")

    # Nothing is on its way: a minute of the page's clock reads nothing (a polling page would
    # have asked a dozen times); the next event alone makes it read again. The reply's own
    # events (message.sent) make it read once more first: wait until they have, and it is quiet.
    await eventually(lambda: receiver.of("message.sent"))
    await quiet(asked)
    asked.clear()
    await page.clock.fast_forward("01:00")
    assert [url for url in asked if "/instance/" in url] == []
    await write_in(gateway, acme, "¿Siguen ahí?")
    await expect(thread.get_by_role("listitem").first).to_contain_text("¿Siguen ahí?", timeout=WAIT_MS)


async def test_when_the_socket_fails_the_page_says_so_and_reads_again_every_few_seconds(
    gateway: Gateway, acme: dict[str, str], browser: Browser, receiver: Receiver
) -> None:
    await linked(gateway, acme, receiver.url())
    page = await browser.new_page(viewport={"width": 1200, "height": 900})

    async def refuse(socket: WebSocketRoute) -> None:
        await socket.close(code=1011, reason="refused by the test")

    await page.route_web_socket(re.compile(r"/events"), refuse)
    await sign_in(page, str(gateway.make_url(f"/dashboard#/instance/{NAME}")), acme["apikey"])
    live = page.locator(".top .live")
    await expect(live).to_have_text(re.compile(r"^Live updates unavailable \(refused by the test\)"), timeout=WAIT_MS)
    await write_in(gateway, acme, "Por polling")
    thread = page.get_by_role("list", name=f"Messages with {CONTACT}, newest first")
    await expect(thread).to_contain_text("Por polling", timeout=WAIT_MS)


async def test_the_webhook_goes_down_is_disabled_enabled_and_a_bulk_replay_refreshes_its_tries(
    gateway: Gateway, acme: dict[str, str], browser: Browser, receiver: Receiver, shots: Path
) -> None:
    receiver.go_down()
    await linked(gateway, acme, receiver.url())  # instance.connected: its delivery fails
    page = await browser.new_page(viewport={"width": 1200, "height": 900})
    await sign_in(page, str(gateway.make_url(f"/dashboard#/instance/{NAME}")), acme["apikey"])
    state = page.locator('dl[aria-label="Webhook state"]')
    await expect(state.locator(".badge")).to_have_text("down", timeout=WAIT_MS)
    await expect(state).to_contain_text(re.compile(r"Pending\s*1"))
    row = deliveries(page).get_by_role("row").filter(has_text="instance.connected")
    tries = row.get_by_role("cell").nth(3)
    await expect(tries).to_have_text(re.compile(r"^([4-9]|\d\d)$"), timeout=WAIT_MS)  # 1 + 3 retries, then probes

    # Disabled: what was held is dead-lettered.
    await page.get_by_text("Webhook settings", exact=True).click()
    hook = page.get_by_role("form", name="Webhook settings")
    await hook.get_by_label("Enabled", exact=True).uncheck()
    await hook.get_by_role("button", name="Save webhook").click()
    await expect(hook.get_by_role("alert")).to_have_text("Webhook saved.")
    await expect(state.locator(".badge")).to_have_text("disabled", timeout=WAIT_MS)
    await expect(row.locator(".badge")).to_have_text("dead", timeout=WAIT_MS)
    dead_tries = int(await tries.inner_text())
    assert dead_tries >= 4

    # Back, and only the events the receiver wants.
    receiver.come_back()
    await hook.get_by_label("Enabled", exact=True).check()
    await hook.get_by_label("All events").uncheck()
    await hook.get_by_label("message.received", exact=True).check()
    await hook.get_by_label("instance.connected", exact=True).check()
    await hook.get_by_role("button", name="Save webhook").click()
    await expect(hook.get_by_role("alert")).to_have_text("Webhook saved.")
    await expect(state.locator(".badge")).to_have_text("ok", timeout=WAIT_MS)
    await expect(state).to_contain_text("instance.connected, message.received")
    stored = await (await gateway.get(f"/instance/{NAME}/webhook", headers=acme)).json()
    assert sorted(stored["events"]) == ["instance.connected", "message.received"]

    await page.get_by_role("button", name="Replay every dead letter").click()
    await expect(page.get_by_role("status")).to_have_text("1 dead-lettered deliveries queued again.")
    await expect(row.locator(".badge")).to_have_text("delivered", timeout=WAIT_MS)
    await expect(tries).to_have_text("1")  # the replay's own try, read again without a reload
    assert len(receiver.accepted) == 1 and receiver.accepted[0].json()["event"] == "instance.connected"
    await screenshot(page, shots, "webhook")


async def test_numbers_are_added_to_and_removed_from_the_opt_out_list(
    gateway: Gateway, acme: dict[str, str], browser: Browser
) -> None:
    page = await browser.new_page(viewport={"width": 1200, "height": 900})
    await sign_in(page, str(gateway.make_url("/dashboard")), acme["apikey"])
    await page.get_by_role("link", name="Opt-outs").click()
    await expect(page.get_by_role("heading", name="Opt-outs", level=1)).to_be_focused()
    adding = page.get_by_role("form", name="Add to the opt-out list")
    await adding.get_by_label("Numbers").fill("5491111111111\n5491122222222, 5491111111111")
    await adding.get_by_label("Reason (optional)").fill("asked by phone")
    await adding.get_by_role("button", name="Add").click()
    await expect(adding.get_by_role("alert")).to_have_text("Added: 5491111111111, 5491122222222.")
    listed = page.get_by_role("region", name="Numbers that get no message")
    await expect(listed.get_by_role("row").filter(has_text="5491122222222")).to_contain_text("asked by phone")

    await listed.get_by_role("button", name="Remove 5491111111111").click()
    await expect(listed.get_by_role("row").filter(has_text="5491111111111")).to_have_count(0, timeout=WAIT_MS)
    stored = await (await gateway.get("/tenant/acme/suppressions", headers=acme)).json()
    assert [s["number"] for s in stored["suppressions"]] == ["5491122222222"]


async def test_the_admin_overview_shows_the_gateways_figures_and_workers(
    gateway: Gateway, acme: dict[str, str], browser: Browser, receiver: Receiver, shots: Path
) -> None:
    await linked(gateway, acme, receiver.url())
    body = {"instanceName": NAME, "to": "5491112345678", "text": "counted"}
    assert (await gateway.post("/message/text", json=body, headers=acme)).status == 202
    page = await browser.new_page(viewport={"width": 1200, "height": 900})
    await sign_in(page, str(gateway.make_url("/dashboard")), ADMIN_KEY)
    await page.get_by_role("link", name="Overview").click()
    await expect(page.get_by_role("heading", name="Gateway overview", level=1)).to_be_focused()
    instances = page.get_by_role("region", name="Instances by state")
    await expect(instances).to_contain_text(re.compile(r"open\s*1"))
    messages = page.get_by_role("region", name="Messages", exact=True)
    await expect(messages).to_contain_text(re.compile(r"sent\s*1"), timeout=WAIT_MS)  # live: the send's event
    stats = await (await gateway.get("/admin/stats", headers=ADMIN)).json()
    await expect(messages).to_contain_text(re.compile(rf"accepted\s*{stats['messages']['accepted']}"))
    workers = page.get_by_role("region", name="Workers and their instances")
    worker = workers.get_by_role("row").filter(has_text="test-worker")
    await expect(worker.locator(".badge")).to_have_text("alive")
    await expect(worker).to_contain_text("1 /")  # the one instance it hosts
    await screenshot(page, shots, "overview")


async def test_copy_buttons_put_the_api_key_the_instance_name_and_a_message_id_on_the_clipboard(
    gateway: Gateway, acme: dict[str, str], browser: Browser, receiver: Receiver
) -> None:
    await linked(gateway, acme, receiver.url())
    queued = await gateway.post(
        "/message/text", json={"instanceName": NAME, "to": "5491112345678", "text": "copy me"}, headers=acme
    )
    message_id = (await queued.json())["id"]
    context = await browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = await context.new_page()
    clipboard = "navigator.clipboard.readText()"

    await sign_in(page, str(gateway.make_url("/dashboard#/tenants")), ADMIN_KEY)
    await page.get_by_role("button", name="Issue a key for acme").click()
    issued = page.get_by_role("alert").filter(has_text="New key for acme")
    key = await issued.locator("code.secret").inner_text()
    await issued.get_by_role("button", name="Copy API key").click()
    assert await page.evaluate(clipboard) == key
    assert (await gateway.get("/whoami", headers={"apikey": key})).status == 200

    await page.get_by_role("link", name="Instances", exact=True).click()
    await page.get_by_role("button", name=f"Copy instance name {NAME}").click()
    assert await page.evaluate(clipboard) == NAME
    await page.get_by_role("link", name=NAME).click()
    await (
        page.get_by_role("region", name="Recent messages, newest first")
        .get_by_role("button", name=f"Copy message id {message_id}")
        .click()
    )
    assert await page.evaluate(clipboard) == message_id
    await expect(page.get_by_role("status")).to_have_text(f"message id {message_id} copied.")


async def test_on_a_390_px_phone_every_status_and_replay_is_on_screen(
    gateway: Gateway, acme: dict[str, str], browser: Browser, receiver: Receiver, shots: Path
) -> None:
    await linked(gateway, acme, receiver.url())
    assert (await gateway.post(f"/instance/{NAME}/webhooks/test", headers=acme)).status == 202
    body = {"instanceName": NAME, "to": "5491112345678", "text": "a long enough text to need some room " * 3}
    assert (await gateway.post("/message/text", json=body, headers=acme)).status == 202
    await write_in(gateway, acme, "Hola desde el teléfono")
    page = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    await sign_in(page, str(gateway.make_url(f"/dashboard#/instance/{NAME}")), acme["apikey"])
    replay = deliveries(page).get_by_role("button", name=re.compile(r"^Replay webhook\.test"))
    await expect(replay).to_be_visible(timeout=WAIT_MS)
    recent = page.get_by_role("region", name="Recent messages, newest first")
    await expect(recent.locator(".badge")).to_have_text("sent", timeout=WAIT_MS)

    width = 390
    controls = [replay, *await deliveries(page).locator(".badge").all(), *await recent.locator(".badge").all()]
    controls.append(page.locator('dl[aria-label="Webhook state"] .badge'))
    for control in controls:
        await control.scroll_into_view_if_needed()
        box = await control.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (await control.inner_text(), box)
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await replay.scroll_into_view_if_needed()
    await screenshot(page, shots, "phone-webhook", full_page=False)


async def test_the_lanes_show_the_warm_up_and_the_bulk_pause_and_the_admin_changes_both(
    gateway: Gateway, acme: dict[str, str], browser: Browser, receiver: Receiver
) -> None:
    body = instance_body(NAME, webhookUrl=receiver.url(), settings={"deliverability": "cautious"})
    assert (await gateway.post("/instance/create", json=body, headers=acme)).status == 201
    page = await browser.new_page(viewport={"width": 1200, "height": 900})
    page.on("dialog", lambda dialog: dialog.accept())
    await sign_in(page, str(gateway.make_url(f"/dashboard#/instance/{NAME}")), ADMIN_KEY)
    warmup, bulk = page.locator("p.warmup"), page.locator("p.throttle")
    await expect(warmup).to_have_text("Warm-up: Starts when the number first links.", timeout=WAIT_MS)

    linking = await gateway.post(f"/sandbox/instance/{NAME}/link", json={"phoneNumber": "5491100000000"}, headers=acme)
    assert linking.status == 200
    queue = await (await gateway.get(f"/instance/{NAME}/queue", headers=acme)).json()
    share = round(queue["quotas"]["normal"]["warmup"] * 100)
    await expect(warmup).to_contain_text("Day 0 since", timeout=WAIT_MS)  # live: instance.connected
    await expect(warmup).to_contain_text(f"{share} % of the lane quotas today")

    # A temporary ban pauses the bulk lane (instance.throttled): the admin resumes it.
    assert (await gateway.post(f"/sandbox/instance/{NAME}/ban", json={"seconds": 60}, headers=acme)).status == 200
    await expect(bulk).to_contain_text("paused until", timeout=WAIT_MS)
    await expect(bulk).to_contain_text("WhatsApp banned the number for a while")
    await page.get_by_role("button", name="Resume the bulk lane now").click()
    await expect(page.get_by_role("status")).to_contain_text("Bulk lane resumed")
    await expect(bulk).to_have_text("Bulk lane: sending.")

    override = page.get_by_role("form", name="Warm-up override")
    await override.get_by_label("Share of the lane quotas (%)").fill("50")
    await override.get_by_role("button", name="Set the warm-up").click()
    await expect(override.get_by_role("alert")).to_have_text("Warm-up set to 50 %.")
    await expect(warmup).to_have_text("Warm-up: Overridden by the admin: 50 % of the lane quotas.")
    queue = await (await gateway.get(f"/instance/{NAME}/queue", headers=acme)).json()
    assert queue["warmup"]["override"] == 0.5
