"""A worker fenced off an instance (another worker owns it now) closes its session at the next
heartbeat (scheduler/takeover.py drop_lost), reading its sessions' owners a chunk at a time."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from core import keys
from scheduler import takeover
from scheduler.worker import GatewayWorker
from tests.conftest import eventually, open_instance


async def test_sessions_another_worker_owns_now_are_closed_and_the_rest_kept(
    client: TestClient, tenant_key: str, worker: GatewayWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(takeover, "LOOK_CHUNK", 2)
    names = [f"acme__shop1__n{i}" for i in range(5)]
    for name in names:
        await open_instance(client, {"apikey": tenant_key}, name)
    await eventually(lambda: set(names) <= set(worker.host.sessions))
    chunks: list[int] = []
    store = worker.host.takeover.redis
    pipeline = store.pipeline

    def counted(transaction: bool = True) -> Any:
        pipe = pipeline(transaction=transaction)
        execute = pipe.execute

        async def execute_counted(raise_on_error: bool = True) -> Any:
            if all(args[0] == "HGET" and args[2] == "owner" for args, _ in pipe.command_stack):
                chunks.append(len(pipe.command_stack))
            return await execute(raise_on_error)

        pipe.execute = execute_counted  # type: ignore[method-assign]
        return pipe

    monkeypatch.setattr(store, "pipeline", counted)
    for name in names[1::2]:  # fenced off: their new owner took them with a new epoch
        await store.hset(keys.instance(name), "owner", "worker-elsewhere")  # type: ignore[misc]
    assert sorted(await worker.host.takeover.drop_lost()) == sorted(names[1::2])
    assert sorted(worker.host.sessions) == sorted(names[::2])
    assert sorted(chunks) == [1, 2, 2]  # five sessions, two a pipeline
