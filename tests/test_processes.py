"""`wa-gateway serve` on every core: extra API processes on the same port and extra workers, run as
a user runs them (real processes, the embedded Redis), supervised and stopped with `serve`."""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import eventually
from tests.receiver import Receiver
from tests.serve_process import ServeProcess, wait_for


def children(pid: int) -> dict[int, str]:
    """The live child processes of `pid` that are gateway processes, with their command lines."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except FileNotFoundError:
                continue
            if " gateway " in command:
                found[int(child)] = command.strip()
    return found


def roles(pid: int) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {"api": [], "worker": [], "deliverer": []}
    for child, command in children(pid).items():
        role = "api" if "--reuse-port" in command else "deliverer" if command.endswith(" deliverer") else "worker"
        found[role].append(child)
    return found


def both_roles(pid: int) -> dict[str, list[int]] | None:
    found = roles(pid)
    return found if found["api"] and found["worker"] else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def health_answers(port: int, attempts: int) -> int:
    """How many of `attempts` fresh connections got a 200 from /health within a second."""
    answered = 0
    for _ in range(attempts):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            connection.request("GET", "/health")
            answered += connection.getresponse().status == 200
        except OSError:
            pass
        finally:
            connection.close()
    return answered


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    process = ServeProcess(
        tmp_path / "data", GATEWAY_API_PROCESSES="2", GATEWAY_WORKER_PROCESSES="2", GATEWAY_DELIVERER_PROCESSES="1"
    )
    process.start(timeout=60)
    yield process
    if process.process is not None:
        process.stop()


def test_serve_runs_two_api_processes_on_one_port_and_two_workers(serve: ServeProcess) -> None:
    started = wait_for(lambda: both_roles(serve.pid), 30, "children up")
    assert (len(started["api"]), len(started["worker"]), len(started["deliverer"])) == (1, 1, 1)

    def both_workers() -> bool:
        status, workers = serve.request("GET", "/admin/workers", key=serve.admin_key())
        return status == 200 and len(workers) == 2

    wait_for(both_workers, 30, "two workers heartbeating")

    # With serve's own process stopped, the child still answers the connections the kernel gives it.
    wait_for(lambda: health_answers(serve.port, 1), 30, "the child API answering")
    serve.signal(signal.SIGSTOP)
    try:
        assert health_answers(serve.port, 16) >= 1
    finally:
        serve.signal(signal.SIGCONT)

    assert serve.stop() == 0
    everyone = started["api"] + started["worker"] + started["deliverer"]
    wait_for(lambda: not any(alive(pid) for pid in everyone), 30, "children stopped with serve")


def test_a_child_that_dies_is_started_again(serve: ServeProcess) -> None:
    first = wait_for(lambda: roles(serve.pid)["api"], 30, "child API up")[0]
    os.kill(first, signal.SIGKILL)
    again = wait_for(lambda: [pid for pid in roles(serve.pid)["api"] if pid != first], 30, "child API restarted")
    assert again and again[0] != first
    wait_for(lambda: health_answers(serve.port, 8) == 8, 30, "every connection answered again")


def test_children_die_with_a_killed_serve(serve: ServeProcess) -> None:
    started = wait_for(lambda: both_roles(serve.pid), 30, "children up")
    # The embedded Redis outlives a killed serve on purpose (the next serve finds it answering and
    # uses it); this test stops it itself afterwards.
    redis = [int(pid) for pid in Path(f"/proc/{serve.pid}/task/{serve.pid}/children").read_text().split()
             if b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()]  # fmt: skip
    serve.stop(signal.SIGKILL)
    try:
        everyone = started["api"] + started["worker"] + started["deliverer"]
        wait_for(lambda: not any(alive(pid) for pid in everyone), 30, "no orphan left")
    finally:
        for pid in redis:
            os.kill(pid, signal.SIGTERM)


async def test_webhooks_go_out_from_the_deliverer_process_not_the_workers(tmp_path: Path, receiver: Receiver) -> None:
    serve = ServeProcess(tmp_path / "data", GATEWAY_ALLOW_PRIVATE_URLS="1", GATEWAY_DELIVERER_PROCESSES="1")
    await asyncio.to_thread(serve.start, 60)
    try:
        deliverer = (await asyncio.to_thread(wait_for, lambda: roles(serve.pid)["deliverer"], 30, "deliverer up"))[0]
        key = serve.admin_key()
        _, tenant = await asyncio.to_thread(serve.request, "POST", "/admin/tenants", {"tenantId": "acme"}, key)
        acme = tenant["apiKey"]
        name = "acme__shop1__sales"
        body = {"instanceName": name, "webhookUrl": receiver.url(), "webhookSecret": "s" * 16}
        assert (await asyncio.to_thread(serve.request, "POST", "/instance/create", body, acme))[0] == 201
        link = {"phoneNumber": "5491100000000"}
        assert (await asyncio.to_thread(serve.request, "POST", f"/sandbox/instance/{name}/link", link, acme))[0] == 200
        await receiver.wait_for(1, timeout=30)  # instance.connected

        # With the deliverer stopped, what the worker publishes waits for it.
        os.kill(deliverer, signal.SIGSTOP)
        try:
            text = {"instanceName": name, "to": "5491112345678", "text": "hi"}
            status, queued = await asyncio.to_thread(serve.request, "POST", "/message/text", text, acme)
            assert status == 202

            async def sent() -> bool:
                found = await asyncio.to_thread(serve.request, "GET", f"/message/{queued['id']}", None, acme)
                return bool(found[1]["status"] == "sent")

            await eventually(sent, timeout=30)  # the worker sent it
            await asyncio.sleep(1.5)  # a worker delivering webhooks itself would have posted by now
            assert not receiver.of("message.sent")
        finally:
            os.kill(deliverer, signal.SIGCONT)
        await eventually(lambda: receiver.of("message.sent"), timeout=30)
    finally:
        await asyncio.to_thread(serve.stop)
