"""Session hosts, round 2 (issue 20): no session takes another down, nothing wedges.

Against the real neonize library, offline and on loopback: a refused proxy, or a local proxy that
accepts and never answers (`Blackhole`), SIGSTOP/SIGKILL of hosts and of the zygote, corrupt frames.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import stat
import time
import weakref
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from config import Settings
from scheduler.drivers import neonize as nd
from scheduler.drivers.base import (
    Disconnected,
    InboundMedia,
    MessageReceived,
    TransientDriverError,
)
from scheduler.drivers.neonize import driver as driver_module
from scheduler.drivers.neonize import wire
from scheduler.drivers.neonize import zygote as zygote_module
from scheduler.drivers.neonize.logpipe import LogPipe
from scheduler.services import Services
from scheduler.worker import GatewayWorker
from tests.conftest import eventually
from tests.test_session_hosts import Events, alive
from tests.whatsapp_offline import REFUSED, Blackhole, linked_instances, linked_store


@pytest.fixture
async def blackhole() -> AsyncIterator[str]:
    async with Blackhole() as proxy:
        yield proxy.url


def gone(pid: int) -> bool:
    """Exited and reaped: not even a zombie left."""
    return not os.path.exists(f"/proc/{pid}")


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


async def hosts_up(driver: nd.NeonizeDriver, names: list[str]) -> dict[str, int]:
    await eventually(lambda: set(driver.host_pids()) == set(names), 30)
    return driver.host_pids()


async def hosting(
    tmp_path: Path, proxy: str, *, linked: bool = False, **options: Any
) -> tuple[nd.NeonizeDriver, nd.HostedSession, Events, nd.SessionProcess]:
    """A driver with one session "shop" connected (from a linked store if `linked`), and its host."""
    if linked:
        await linked_store(tmp_path, "shop")
    driver = nd.NeonizeDriver(tmp_path, 2, proxy=proxy, **options)
    events = Events()
    session = driver.session("shop", events)
    await session.connect()
    host = session._host
    assert host is not None
    return driver, session, events, host


# -- 1. the zygote is no single point of failure ----------------------------------------------------


async def test_hosts_outlive_a_killed_zygote_stay_watched_and_the_zygote_is_replaced(
    tmp_path: Path, blackhole: str
) -> None:
    for name in ("a", "b"):
        await linked_store(tmp_path, name)
    driver = nd.NeonizeDriver(tmp_path, 4, proxy=blackhole)
    events = {name: Events() for name in "abc"}
    sessions = {name: driver.session(name, events[name]) for name in "ab"}
    await asyncio.gather(*(session.connect() for session in sessions.values()))
    before = driver.host_pids()
    old_zygote = driver.zygote.pid
    assert old_zygote is not None
    os.kill(old_zygote, signal.SIGKILL)
    await eventually(lambda: gone(old_zygote), 10)  # reaped at once: no zombie zygote
    assert all(alive(pid) for pid in before.values())  # the sessions never noticed
    assert all(events[name].of(Disconnected) == [] for name in "ab")
    # A new session gets a new zygote.
    sessions["c"] = driver.session("c", events["c"])
    await sessions["c"].connect()
    assert driver.zygote.pid not in (None, old_zygote)
    # The orphaned hosts are still watched: a crash is reported, reaped and restarted.
    os.kill(before["a"], signal.SIGKILL)
    await eventually(lambda: bool(events["a"].of(Disconnected)), 10)
    await eventually(lambda: driver.host_pids().get("a") not in (None, before["a"]), 15)
    await eventually(lambda: gone(before["a"]), 10)  # we are its subreaper: reaped, not a zombie
    assert driver.host_pids()["b"] == before["b"] and alive(before["b"])
    await asyncio.gather(*(session.close() for session in sessions.values()))
    assert not any(alive(pid) for pid in before.values())
    driver.close()


async def test_a_stalled_zygote_is_replaced_without_killing_any_session(
    tmp_path: Path, blackhole: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zygote_module, "SPAWN_TIMEOUT", 1.0)
    driver = nd.NeonizeDriver(tmp_path, 4, proxy=blackhole)
    sessions = {name: driver.session(name, Events()) for name in "ab"}
    await asyncio.gather(*(session.connect() for session in sessions.values()))
    before = driver.host_pids()
    stalled = driver.zygote.pid
    assert stalled is not None
    os.kill(stalled, signal.SIGSTOP)
    sessions["c"] = driver.session("c", Events())
    await sessions["c"].connect()  # through a new zygote
    assert driver.zygote.pid not in (None, stalled)
    assert alive(driver.host_pids()["c"])
    assert all(alive(pid) for pid in before.values())
    assert {name: driver.host_pids()[name] for name in "ab"} == before
    await eventually(lambda: gone(stalled), 10)
    await asyncio.gather(*(session.close() for session in sessions.values()))
    driver.close()


async def test_orphans_inherited_as_a_subreaper_are_reaped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A host killed while its own child runs (neonize's `uname`, an ffmpeg) leaves that child to us.
    monkeypatch.setattr(driver_module, "ORPHAN_SWEEP", 0.1)
    driver = nd.NeonizeDriver(tmp_path, 2, proxy=REFUSED)
    await driver.open()  # the worker is a subreaper from here on
    shell = await asyncio.create_subprocess_exec(
        "sh", "-c", "sleep 0.3 >/dev/null & echo $!", stdout=asyncio.subprocess.PIPE, start_new_session=True
    )
    orphan = int((await shell.communicate())[0])
    await eventually(lambda: gone(orphan), 10)
    driver.close()


# -- 2. the log pipeline ------------------------------------------------------------------------------


class Lines:
    def __init__(self) -> None:
        self.seen: list[tuple[int, str, dict[str, Any]]] = []

    def log(self, level: int, message: str, **fields: Any) -> None:
        self.seen.append((level, message, fields))


async def test_a_hosts_log_reaches_the_worker_log_with_the_instance_name_at_the_configured_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = Lines()
    monkeypatch.setattr(driver_module, "host_log", lines)
    for level in (logging.DEBUG, logging.WARNING):
        lines.seen.clear()
        driver = nd.NeonizeDriver(tmp_path, 2, proxy=REFUSED, whatsmeow_log_level=level)
        await driver.open()
        assert driver.zygote.pid is not None
        assert threads(driver.zygote.pid) == 1  # neonize's log thread is not left in the zygote
        events = Events()
        session = driver.session("shop", events)
        await session.connect()
        await eventually(lambda e=events: bool(e.of(Disconnected)), 30)
        # The host's own warning about the refused dial, then (at DEBUG) whatsmeow's dialing line.
        await eventually(lambda: any(lvl == logging.WARNING for lvl, _, _ in lines.seen), 10)
        whatsmeow = [(lvl, message) for lvl, message, fields in lines.seen if fields["logger"].startswith("whatsmeow.")]
        assert all(fields["instance"] == "shop" for _, _, fields in lines.seen)
        if level == logging.DEBUG:
            assert any("Dialing" in message for _, message in whatsmeow), lines.seen
        else:
            assert all(lvl >= logging.WARNING for lvl, _ in whatsmeow)  # filtered at the source
        await session.close()
        driver.close()


async def test_a_log_flood_is_bounded_and_counted() -> None:
    sent: list[wire.Log] = []

    def send(line: wire.Log) -> bool:
        sent.append(line)
        return True

    pipe = LogPipe(asyncio.get_running_loop(), send, limit=10)
    logger = logging.getLogger("whatsmeow.flood")
    logger.addHandler(pipe)
    try:
        for i in range(100):  # all before the loop runs: nothing is forwarded yet
            logger.warning("line %d", i)
        await eventually(lambda: len(sent) == 11, 5)
    finally:
        logger.removeHandler(pipe)
    assert [line.message for line in sent[:10]] == [f"line {i}" for i in range(10)]
    assert sent[10].level == logging.WARNING and sent[10].message.startswith("90 log line(s)")


# -- 3. start failures and exception types --------------------------------------------------------------


async def test_a_connect_that_times_out_raises_a_driver_error_and_is_retried(
    tmp_path: Path, blackhole: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await linked_store(tmp_path, "shop")
    monkeypatch.setattr(driver_module, "CONNECT_TIMEOUT", 0.001)
    driver = nd.NeonizeDriver(tmp_path, 2, proxy=blackhole)
    session = driver.session("shop", Events())
    with pytest.raises(TransientDriverError):  # a DriverError: take_over and adopt() go on
        await session.connect()
    monkeypatch.setattr(driver_module, "CONNECT_TIMEOUT", 60.0)
    await eventually(lambda: "shop" in driver.host_pids(), 20)  # retried with backoff, by itself
    await session.close()
    driver.close()


async def test_a_restarted_worker_adopts_its_instances_even_when_their_connects_time_out(
    settings: Settings, blackhole: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings.model_copy(update={"driver": "neonize", "whatsapp_proxy": blackhole})
    names = [f"acme__c__n{i}" for i in range(3)]
    services = Services.open(settings)
    await linked_instances(services, settings.data_dir / "sessions", names, settings.worker_id or "")
    await services.close()
    monkeypatch.setattr(driver_module, "CONNECT_TIMEOUT", 0.001)
    worker = GatewayWorker(settings)
    await worker.start()  # the built-in TimeoutError used to abort adopt() here
    try:
        assert sorted(worker.host.sessions) == names
        monkeypatch.setattr(driver_module, "CONNECT_TIMEOUT", 60.0)
        driver = worker.driver
        assert isinstance(driver, nd.NeonizeDriver)
        await eventually(lambda: sorted(driver.host_pids()) == names, 30)  # each retried by itself
    finally:
        await worker.stop()


# -- 4. heartbeats --------------------------------------------------------------------------------------


async def test_an_idle_host_that_stops_answering_is_killed_and_restarted(tmp_path: Path, blackhole: str) -> None:
    driver, session, events, host = await hosting(tmp_path, blackhole, linked=True, host_timeout=1.0)
    stuck = host.pid
    os.kill(stuck, signal.SIGSTOP)  # no call is made: only the heartbeat can notice
    await eventually(lambda: bool(events.of(Disconnected)), 10)
    assert "heartbeat" in events.of(Disconnected)[0].reason
    await eventually(lambda: gone(stuck), 10)
    await eventually(lambda: driver.host_pids().get("shop") not in (None, stuck), 15)
    await session.close()
    driver.close()


async def test_an_unlinked_instance_whose_host_hangs_gets_a_fresh_host_for_its_next_qr(
    tmp_path: Path, blackhole: str
) -> None:
    # A linking attempt, waiting for its first QR.
    driver, session, events, host = await hosting(tmp_path, blackhole, host_timeout=1.0)
    stuck = host.pid
    os.kill(stuck, signal.SIGSTOP)
    await eventually(lambda: bool(events.of(Disconnected)), 10)  # the instance shows "close"
    await eventually(lambda: "shop" not in driver.host_pids(), 10)
    await session.connect()  # what the next GET /qr does: a new host, not the hung one
    assert driver.host_pids()["shop"] != stuck and alive(driver.host_pids()["shop"])
    await session.close()
    driver.close()


# -- 5. frames ------------------------------------------------------------------------------------------


async def test_a_corrupt_frame_from_a_host_reaps_and_restarts_it_and_close_does_not_hang(
    tmp_path: Path, blackhole: str
) -> None:
    driver, session, events, host = await hosting(tmp_path, blackhole, linked=True)
    first = host.pid
    host._reader.feed_data(b"\x00\x00\x00\x05JUNK!")  # as if the host had written it
    await eventually(lambda: bool(events.of(Disconnected)), 10)
    assert "does not decode" in events.of(Disconnected)[0].reason
    await eventually(lambda: gone(first), 10)
    await eventually(lambda: driver.host_pids().get("shop") not in (None, first), 15)
    await asyncio.wait_for(session.close(), 10)
    driver.close()


async def test_an_oversized_frame_is_refused_before_it_is_read(tmp_path: Path, blackhole: str) -> None:
    driver, session, events, host = await hosting(tmp_path, blackhole)
    host._reader.feed_data((driver.frame_limit + 1).to_bytes(4, "big"))
    await eventually(lambda: bool(events.of(Disconnected)), 10)
    assert "does not decode" in events.of(Disconnected)[0].reason
    await session.close()
    driver.close()


async def test_a_corrupt_frame_to_a_host_ends_it_and_it_is_restarted(tmp_path: Path, blackhole: str) -> None:
    driver, session, _, host = await hosting(tmp_path, blackhole, linked=True)
    first = host.pid
    host._writer.write(b"\x00\x00\x00\x05JUNK!")
    await eventually(lambda: gone(first), 10)
    await eventually(lambda: driver.host_pids().get("shop") not in (None, first), 15)
    await session.close()
    driver.close()


def test_frames_build_only_the_driver_types() -> None:
    import msgpack

    evil = msgpack.packb(["event", {"\x00dc": "Popen", "fields": {"args": ["true"]}}])
    with pytest.raises(wire.FrameError):
        wire.decode(evil)
    with pytest.raises(wire.FrameError):
        wire.decode(b"\x80\x04\x95" + b"cos\nsystem\n")  # a pickle is not a frame


# -- 6/7. permissions, nothing kept after use -----------------------------------------------------------


async def test_session_stores_are_private(tmp_path: Path) -> None:
    sessions_dir = tmp_path / "sessions"
    sessions_dir.mkdir(mode=0o755)
    await linked_store(sessions_dir, "old")
    store = sessions_dir / "old.sqlite3"
    store.chmod(0o644)  # as round 2 left them
    driver = nd.NeonizeDriver(sessions_dir, 2, proxy=REFUSED)
    new, old = Events(), Events()
    sessions = [driver.session("new", new), driver.session("old", old)]
    await asyncio.gather(*(session.connect() for session in sessions))
    await eventually(lambda: bool(new.of(Disconnected)) and bool(old.of(Disconnected)), 30)
    assert stat.S_IMODE(sessions_dir.stat().st_mode) == 0o700
    for path in sessions_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    await asyncio.gather(*(session.close() for session in sessions))
    driver.close()


async def test_a_big_inbound_event_is_not_kept_after_it_was_handled(tmp_path: Path, blackhole: str) -> None:
    driver = nd.NeonizeDriver(tmp_path, 2, proxy=blackhole)
    handled: list[weakref.ref[MessageReceived]] = []

    async def sink(event: Any) -> None:
        if isinstance(event, MessageReceived):
            handled.append(weakref.ref(event))

    session = driver.session("shop", sink)
    await session.connect()
    host = session._host
    assert host is not None
    media = InboundMedia(mimetype="application/pdf", file_name="x.pdf", data=os.urandom(8 * 1024 * 1024))
    event = MessageReceived(
        message_id="M1",
        sender="5491112345678",
        sender_lid=None,
        chat_id=None,
        push_name=None,
        timestamp=datetime.now(UTC),
        from_me=False,
        message_type="documentMessage",
        text=None,
        media=media,
    )
    host._reader.feed_data(wire.encode(wire.Event(event)))  # as the host sends a downloaded document
    del event, media
    await eventually(lambda: bool(handled), 10)
    await asyncio.sleep(0)  # the delivery loop goes back to waiting for the next event
    gc.collect()
    assert handled[0]() is None  # nothing holds the 8 MB any more
    assert alive(driver.host_pids()["shop"])
    await session.close()
    driver.close()


# -- 8/9. process groups, bounded delete ----------------------------------------------------------------


async def test_hosts_and_zygote_are_out_of_the_workers_process_group(tmp_path: Path, blackhole: str) -> None:
    driver = nd.NeonizeDriver(tmp_path, 2, proxy=blackhole)
    session = driver.session("shop", Events())
    await session.connect()
    ours = os.getpgid(0)
    host = driver.host_pids()["shop"]
    assert driver.zygote.pid is not None
    assert os.getpgid(host) not in (ours, os.getpgid(driver.zygote.pid))  # a Ctrl-C reaches neither
    assert os.getpgid(driver.zygote.pid) != ours
    await session.close()
    assert gone(host) or not alive(host)
    driver.close()


async def test_deleting_a_dialing_session_answers_within_2_seconds(tmp_path: Path, blackhole: str) -> None:
    await linked_store(tmp_path, "shop")
    driver = nd.NeonizeDriver(tmp_path, 2, proxy=blackhole)
    for name, linked in (("fresh", False), ("shop", True)):
        session = driver.session(name, Events())
        await session.connect()
        await asyncio.sleep(0.5)  # dialing: client.stop() would block for many seconds
        pid = driver.host_pids()[name]
        started = time.monotonic()
        await session.logout()
        assert time.monotonic() - started <= 2.0, (name, linked)
        assert not alive(pid)
    driver.close()
