"""Session hosts: the real neonize library in child processes of the test process (the "worker"),
offline and on loopback only (a refused proxy, or a local proxy that accepts and never answers).

The probes at the end are the issue's load probes, bounded to stay within a test run's minutes:
the worker survives, every session ends in the state it should, and the worker's threads and file
handles return to where they started.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from scheduler.drivers import neonize as nd
from scheduler.drivers.base import (
    Disconnected,
    DriverEvent,
    OutgoingMessage,
    QrCode,
    QrExpired,
    TransientDriverError,
)
from scheduler.drivers.neonize import driver as driver_module
from tests.whatsapp_offline import REFUSED, Blackhole, linked_store

PHONE = "5491112345678"


class Events:
    def __init__(self) -> None:
        self.seen: list[DriverEvent] = []
        self.changed = asyncio.Event()

    async def __call__(self, event: DriverEvent) -> None:
        self.seen.append(event)
        self.changed.set()

    def of(self, kind: type) -> list[Any]:
        return [event for event in self.seen if isinstance(event, kind)]


async def eventually(condition: Callable[..., bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def usage(pid: int | str = "self") -> tuple[int, int]:
    """A process's (threads, open file handles): by default the test process's (the worker's)."""
    return len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd"))


async def warm(driver: nd.NeonizeDriver) -> tuple[int, int]:
    """Start the zygote and fill the default executor, then take the baseline."""
    await driver.open()
    await asyncio.gather(*(asyncio.to_thread(time.sleep, 0.05) for _ in range(32)))
    return usage()


@pytest.fixture
async def blackhole() -> AsyncIterator[str]:
    async with Blackhole() as proxy:
        yield proxy.url


# -- crash containment -----------------------------------------------------------------------------


async def test_a_crashed_session_host_is_noticed_and_the_linked_session_comes_back_without_a_qr(
    tmp_path: Path, blackhole: str
) -> None:
    await linked_store(tmp_path, "shop")
    driver = nd.NeonizeDriver(tmp_path, 4, proxy=blackhole)
    events = Events()
    session = driver.session("shop", events)
    bystander = driver.session("other", Events())
    await session.connect()
    await bystander.connect()
    first, other = driver.host_pids()["shop"], driver.host_pids()["other"]
    os.kill(first, signal.SIGKILL)  # what a Go abort does to the process
    await eventually(lambda: bool(events.of(Disconnected)), 5, "the crash is reported")
    assert "session host died" in events.of(Disconnected)[0].reason
    await eventually(lambda: driver.host_pids().get("shop") not in (None, first), 10, "a new host")
    assert alive(driver.host_pids()["shop"])
    assert driver.host_pids()["other"] == other and alive(other)  # the other tenant never noticed
    assert events.of(QrCode) == []  # reconnecting from the store: no new QR
    await session.close()
    await bystander.close()
    assert driver.host_pids() == {}
    driver.close()


async def test_a_call_in_flight_when_the_host_dies_fails_at_once_instead_of_hanging(
    tmp_path: Path, blackhole: str
) -> None:
    driver = nd.NeonizeDriver(tmp_path, 2, proxy=blackhole)
    session = driver.session("shop", Events())
    await session.connect()
    pending = asyncio.create_task(session.pair_phone(PHONE))  # waits in the child for a first QR
    await asyncio.sleep(0.2)
    os.kill(driver.host_pids()["shop"], signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(TransientDriverError):
        await asyncio.wait_for(pending, 10)
    assert time.monotonic() - started < 5
    await session.close()
    driver.close()


async def test_a_stuck_session_host_is_ended_and_replaced(
    tmp_path: Path, blackhole: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Go deadlock looks like a child that never answers: the call's deadline ends the child.
    monkeypatch.setattr(driver_module, "LOOKUP_TIMEOUT", 0.5)
    monkeypatch.setattr(driver_module, "CALL_MARGIN", 0.5)
    await linked_store(tmp_path, "shop")
    driver = nd.NeonizeDriver(tmp_path, 2, proxy=blackhole)
    events = Events()
    session = driver.session("shop", events)
    await session.connect()
    stuck = driver.host_pids()["shop"]
    os.kill(stuck, signal.SIGSTOP)
    with pytest.raises(TransientDriverError):
        await session.check_numbers([PHONE])
    await eventually(lambda: not alive(stuck), 5, "the stuck host is gone")
    await eventually(lambda: driver.host_pids().get("shop") not in (None, stuck), 10, "a new host")
    await session.close()
    driver.close()


async def test_each_connect_cycle_runs_in_a_fresh_host_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # neonize leaks a file handle and some memory per connect cycle (and a QR retry is one): in a
    # host per cycle, the leak goes with the process.
    pids: list[int] = []
    start = driver_module.SessionProcess.start

    async def recorded(*args: Any) -> Any:
        host = await start(*args)
        pids.append(host.pid)
        return host

    monkeypatch.setattr(driver_module.SessionProcess, "start", staticmethod(recorded))
    driver = nd.NeonizeDriver(tmp_path, 2, proxy=REFUSED)
    baseline = await warm(driver)
    events = Events()
    session = driver.session("shop", events)
    for round_ in range(1, 6):
        await session.connect()
        await eventually(lambda r=round_: len(events.of(Disconnected)) == r, 30, "the refused dial is reported")
        await eventually(lambda: driver.host_pids() == {}, 10, "the host is ended")
    assert len(set(pids)) == 5 and not any(map(alive, pids))
    await session.close()
    await eventually(lambda: usage() == baseline, 10, f"threads and handles back to {baseline} (now {usage()})")
    driver.close()


async def test_a_linked_session_whose_run_breaks_is_connected_again_from_its_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run that ends by itself (the shim's event loop giving up on an event it cannot encode, or a
    # dial that fails) used to leave the session down until a restart: now a new host reconnects.
    await linked_store(tmp_path, "shop")
    started: list[int] = []
    start = driver_module.SessionProcess.start

    async def recorded(*args: Any) -> Any:
        host = await start(*args)
        started.append(host.pid)
        return host

    monkeypatch.setattr(driver_module.SessionProcess, "start", staticmethod(recorded))
    driver = nd.NeonizeDriver(tmp_path, 2, proxy=REFUSED)
    events = Events()
    session = driver.session("shop", events)
    await session.connect()
    await eventually(lambda: len(started) >= 2, 15, "a second host, started by the driver itself")
    assert len(events.of(Disconnected)) >= 1 and events.of(QrCode) == []
    await session.close()
    await eventually(lambda: driver.host_pids() == {} and not any(map(alive, started)), 10, "all hosts ended")
    driver.close()


# -- probes (the load probes, bounded) -----------------------------------------------------


@pytest.mark.probe
@pytest.mark.timeout(600)
async def test_probe_100_sessions_connecting_at_once_through_a_refused_proxy_3_rounds(tmp_path: Path) -> None:
    driver = nd.NeonizeDriver(tmp_path, 100, proxy=REFUSED)
    baseline = await warm(driver)
    assert driver.zygote.pid is not None
    zygote = usage(driver.zygote.pid)
    for _ in range(3):
        sinks = [Events() for _ in range(100)]
        sessions = [driver.session(f"i{i}", sink) for i, sink in enumerate(sinks)]
        await asyncio.gather(*(session.connect() for session in sessions))
        await eventually(lambda s=sinks: all(sink.of(Disconnected) for sink in s), 120, "every dial refused")
        assert all("connection refused" in sink.of(Disconnected)[0].reason for sink in sinks)
        await asyncio.gather(*(session.close() for session in sessions))
        assert driver.host_pids() == {}
    await eventually(lambda: usage() == baseline, 10, f"threads and handles back to {baseline} (now {usage()})")
    assert usage(driver.zygote.pid) == zygote  # the rest of the gateway's process tree: the zygote
    driver.close()


@pytest.mark.probe
@pytest.mark.timeout(600)
async def test_probe_20_sessions_sending_while_others_connect_and_close(tmp_path: Path, blackhole: str) -> None:
    senders_driver = nd.NeonizeDriver(tmp_path / "senders", 20, proxy=blackhole)
    cyclers_driver = nd.NeonizeDriver(tmp_path / "cyclers", 4, proxy=REFUSED)
    baseline = await warm(senders_driver)
    await cyclers_driver.open()
    senders = [senders_driver.session(f"s{i}", Events()) for i in range(20)]
    await asyncio.gather(*(session.connect() for session in senders))
    pids = senders_driver.host_pids()
    assert len(pids) == 20
    stop = time.monotonic() + 10
    counts = {"sends": 0, "cycles": 0}

    async def send(session: nd.HostedSession) -> None:
        while time.monotonic() < stop:
            with pytest.raises(TransientDriverError):  # linking, not connected: refused, never lost
                await session.send(OutgoingMessage(to=PHONE, type="text", text="hi"))
            counts["sends"] += 1
            await asyncio.sleep(0.01)

    async def cycle(k: int) -> None:
        while time.monotonic() < stop:
            events = Events()
            session = cyclers_driver.session(f"c{k}", events)
            await session.connect()
            await eventually(lambda e=events: bool(e.of(Disconnected)), 60, "the refused dial is reported")
            await session.close()
            counts["cycles"] += 1

    await asyncio.gather(*(send(session) for session in senders), *(cycle(k) for k in range(4)))
    assert counts["sends"] > 20 and counts["cycles"] >= 4, counts
    # Each sender's linking attempt is still waiting on the proxy, or gave up on the TLS handshake.
    for session in senders:
        pid = pids[session.instance_name]
        sink = session._sink
        assert isinstance(sink, Events)
        assert alive(pid) or [type(event) for event in sink.seen] == [Disconnected]
    await asyncio.gather(*(session.close() for session in senders))
    assert cyclers_driver.host_pids() == {} and senders_driver.host_pids() == {}
    cyclers_driver.close()
    await eventually(lambda: usage() == baseline, 10, f"threads and handles back to {baseline} (now {usage()})")
    senders_driver.close()


@pytest.mark.probe
@pytest.mark.timeout(600)
async def test_probe_50_linking_attempts_left_to_time_out(tmp_path: Path, blackhole: str) -> None:
    # No QR ever comes through a proxy that never answers: each attempt ends by its deadline as
    # qr_expired, and its host (with the Go call that would never return) goes.
    driver = nd.NeonizeDriver(tmp_path, 50, proxy=blackhole, qr_first_ttl=2.0, qr_grace=0.0)
    baseline = await warm(driver)
    sinks = [Events() for _ in range(50)]
    sessions = [driver.session(f"q{i}", sink) for i, sink in enumerate(sinks)]
    await asyncio.gather(*(session.connect() for session in sessions))
    pids = list(driver.host_pids().values())
    assert len(pids) == 50
    await eventually(lambda: all(sink.of(QrExpired) for sink in sinks), 60, "every attempt expired")
    await eventually(lambda: driver.host_pids() == {} and not any(map(alive, pids)), 30, "every host ended")
    assert all(sink.of(Disconnected) == [] for sink in sinks)
    await asyncio.gather(*(session.close() for session in sessions))
    await eventually(lambda: usage() == baseline, 10, f"threads and handles back to {baseline} (now {usage()})")
    driver.close()
