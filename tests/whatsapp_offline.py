"""Offline stand-ins for WhatsApp's network, for the real neonize driver (tests and benchmarks).

`REFUSED` is a SOCKS5 proxy address nothing listens on: every dial fails at once. `Blackhole` is a
SOCKS5 proxy that accepts, agrees to connect anywhere, then never answers: a dial that hangs until
whatsmeow gives up on the TLS handshake (10 s). `linked_store` writes a session store holding a
made-up linked device, in the schema whatsmeow itself created; `linked_instances` sets up what a
restarted worker finds: instances it owned, each with such a store. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from pathlib import Path

from core.instances import InstanceName
from scheduler.drivers.base import Disconnected, DriverEvent
from scheduler.drivers.neonize import NeonizeDriver
from scheduler.services import Services

REFUSED = "socks5://127.0.0.1:9"


class Blackhole:
    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._held: set[asyncio.StreamWriter] = set()
        self.url = ""
        self.accepted = 0  # connections taken so far

    async def __aenter__(self) -> Blackhole:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
        self.url = f"socks5://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._held):
            writer.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._held.add(writer)
        self.accepted += 1
        try:
            _, methods = await reader.readexactly(2)
            await reader.readexactly(methods)
            writer.write(b"\x05\x00")
            header = await reader.readexactly(4)
            skip = {1: 6, 4: 18}.get(header[3])
            await reader.readexactly(skip if skip is not None else (await reader.readexactly(1))[0] + 2)
            writer.write(b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00")
            while await reader.read(65536):
                pass  # swallow the TLS ClientHello and everything after: never answer
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:  # the proxy's own sockets must not count as the worker's
            self._held.discard(writer)
            writer.close()


async def linked_store(sessions_dir: Path, name: str, phone: str = "5491112345678") -> Path:
    """A session store holding a (made-up) linked device, its schema created by whatsmeow itself."""
    maker = NeonizeDriver(sessions_dir, 1, proxy=REFUSED)
    refused = asyncio.Event()

    async def sink(event: DriverEvent) -> None:
        if isinstance(event, Disconnected):
            refused.set()

    session = maker.session(name, sink)
    await session.connect()
    await asyncio.wait_for(refused.wait(), 60)
    await session.close()
    maker.close()
    path = maker.store_path(name)
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO whatsmeow_device (jid, registration_id, noise_key, identity_key, signed_pre_key,"
            " signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details, adv_account_sig, adv_account_sig_key,"
            " adv_device_sig) VALUES (?, 1, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)",
            (f"{phone}:4@s.whatsapp.net", *(os.urandom(n) for n in (32, 32, 32, 64, 32, 16, 64, 32, 64))),
        )
    db.close()
    return path


async def linked_instances(services: Services, sessions_dir: Path, names: list[str], owner: str) -> None:
    """Instances `names`, owned by worker `owner` (a previous run of it), each with a linked store."""
    template = await linked_store(sessions_dir / "template", "template")
    for name in names:
        shutil.copy(template, sessions_dir / f"{name}.sqlite3")
        await services.instances.create(InstanceName.parse(name), "http://127.0.0.1:9/hook", "s" * 16, "open")
        await services.ownership.claim(name, owner, None)
