"""The `wa-gateway` command: serve, worker, and operator commands for tenants and keys."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import click
from aiohttp import web

from config import Settings, SettingsError, load_settings
from core.errors import GatewayError
from core.keyfiles import with_generated_secrets
from core.logs import configure_logging
from core.redis_client import Redis, connect
from core.redis_server import EmbeddedRedis, EmbeddedRedisError
from core.tenants import Tenants

T = TypeVar("T")


def _settings() -> Settings:
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    configure_logging(settings)
    private_files(settings.data_dir)
    return settings


def private_files(data_dir: Path) -> None:
    """Whatever this process and its children (the embedded Redis) write is theirs alone: session
    stores, media, keys, Redis's files. Files 0600 and folders 0700 from here on, the data
    folder itself 0700 even if it existed before."""
    os.umask(0o077)
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)


@asynccontextmanager
async def redis_url(settings: Settings) -> AsyncIterator[str]:
    """The configured Redis, or the embedded one (started here unless already running)."""
    if settings.redis_url is not None:
        yield settings.redis_url
        return
    embedded = EmbeddedRedis(settings.data_dir / "redis")
    if await embedded.answers():
        yield embedded.url  # a running `serve` owns it
        return
    await embedded.start()
    try:
        yield embedded.url
    finally:
        await embedded.stop()


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _serve(settings: Settings, with_worker: bool) -> None:
    from gateway.app import create_app
    from gateway.server import GatewayRunner
    from gateway.state import SERVICES
    from scheduler.worker import worker_context

    async with redis_url(settings) as url:
        settings = settings.model_copy(update={"redis_url": url})
        app = create_app(settings)
        if with_worker:
            app.cleanup_ctx.append(worker_context(settings, lambda app: app[SERVICES]))
        runner = GatewayRunner(app, settings, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        click.echo(f"wa-gateway listening on http://{settings.host}:{settings.port} (Redis: {url})", err=True)
        try:
            await _until_signalled()
        finally:
            await runner.cleanup()


async def _worker(settings: Settings) -> None:
    from scheduler.worker import GatewayWorker

    async with redis_url(settings) as url:
        worker = GatewayWorker(settings.model_copy(update={"redis_url": url}))
        await worker.start()
        try:
            await _until_signalled()
        finally:
            await worker.stop()


async def _with_tenants(settings: Settings, action: Callable[[Tenants], Awaitable[T]]) -> T:
    async with redis_url(settings) as url:
        redis: Redis = connect(url)
        try:
            return await action(Tenants(redis))
        finally:
            await redis.aclose()


def _run(coro: Awaitable[T]) -> T:
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except EmbeddedRedisError as exc:
        raise click.ClickException(str(exc)) from None
    except GatewayError as exc:
        raise click.ClickException(exc.message) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """wa-gateway: a self-hosted, multi-tenant WhatsApp gateway. Configured by GATEWAY_* variables."""


@main.command()
@click.option("--no-worker", is_flag=True, help="API only; run `wa-gateway worker` processes separately.")
def serve(no_worker: bool) -> None:
    """Run the HTTP API (and, by default, one worker in the same process)."""
    settings, notes = with_generated_secrets(_settings())
    for note in notes:
        click.echo(note, err=True)
    _run(_serve(settings, with_worker=not no_worker))


@main.command()
def worker() -> None:
    """Run a worker alone: it hosts WhatsApp sessions and drains their lanes."""
    settings, _ = with_generated_secrets(_settings())
    _run(_worker(settings))


@main.group()
def tenant() -> None:
    """Manage tenants."""


@tenant.command("create")
@click.argument("tenant_id")
@click.option("--name", help="display name (default: the tenant id)")
def tenant_create(tenant_id: str, name: str | None) -> None:
    """Create a tenant and print its first API key (shown only this once)."""
    from gateway.routes.admin import CreateTenant
    from gateway.validation import validate

    try:
        body = validate(CreateTenant, {"tenantId": tenant_id, "name": name})
    except GatewayError as exc:
        raise click.ClickException(exc.message) from None
    created, issued = _run(_with_tenants(_settings(), lambda t: t.create(body.tenant_id, body.name)))
    click.echo(f"tenant: {created.tenant_id}\nkey id: {issued.key_id}\napi key: {issued.api_key}")


@tenant.command("list")
def tenant_list() -> None:
    """List tenants and their key ids."""
    for item in _run(_with_tenants(_settings(), lambda t: t.list())):
        click.echo(f"{item.tenant_id}\t{item.name}\tkeys: {', '.join(item.key_ids) or '-'}")


@main.group()
def key() -> None:
    """Issue and revoke API keys."""


@key.command("issue")
@click.argument("tenant_id")
def key_issue(tenant_id: str) -> None:
    """Issue an extra key for TENANT_ID (for rotation)."""
    issued = _run(_with_tenants(_settings(), lambda t: t.issue_key(tenant_id)))
    click.echo(f"key id: {issued.key_id}\napi key: {issued.api_key}")


@key.command("revoke")
@click.argument("key_id")
def key_revoke(key_id: str) -> None:
    """Revoke KEY_ID; it stops working at once."""
    _run(_with_tenants(_settings(), lambda t: t.revoke_key(key_id)))
    click.echo(f"revoked {key_id}")
