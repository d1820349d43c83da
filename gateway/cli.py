"""The `wa-gateway` command: serve, worker, and operator commands for tenants and keys."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import click
import structlog
from aiohttp import web

from config import Settings, SettingsError, load_settings
from core import audit, speedups
from core.errors import GatewayError
from core.keyfiles import with_generated_secrets
from core.logs import configure_logging
from core.redis_client import Redis, connect
from core.redis_server import EmbeddedRedis, EmbeddedRedisError
from core.tenants import IssuedKey, Tenant, Tenants

T = TypeVar("T")
log = structlog.get_logger("gateway")


def without_password(url: str) -> str:
    """A Redis URL fit for a log line: its password, if any, masked."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


def _settings() -> Settings:
    """The settings from GATEWAY_* variables, the group's `--data-dir` over GATEWAY_DATA_DIR."""
    data_dir = click.get_current_context().find_root().params.get("data_dir")
    try:
        settings = load_settings() if data_dir is None else load_settings(data_dir=data_dir)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    configure_logging(settings)
    speedups.configure(settings.speedups)
    speedups.tune_collector(settings.gc_threshold)
    private_files(settings.data_dir)
    return settings


def _writable_data_dir(settings: Settings) -> None:
    """Fail with what to do, not a traceback, when the data directory cannot be written (a volume
    owned by root while the container runs as its own user, say)."""
    directory = settings.data_dir.resolve()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".writable-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise click.ClickException(
            f"the data directory {directory} is not writable by uid {os.getuid()} ({exc.strerror}): "
            f"make it writable (in a container: chown {os.getuid()} the volume) or choose another "
            "with --data-dir or GATEWAY_DATA_DIR"
        ) from None


def private_files(data_dir: Path) -> None:
    """Whatever this process and its children (the embedded Redis) write is theirs alone: session
    stores, media, keys, Redis's files. Files 0600 and folders 0700 from here on, the data
    folder itself 0700 even if it existed before (one this user cannot change is reported by the
    writability check of `serve` and `worker`, with what to do)."""
    os.umask(0o077)
    with contextlib.suppress(OSError):
        if data_dir.is_dir():
            data_dir.chmod(0o700)


@asynccontextmanager
async def redis_url(settings: Settings, existing_only: bool = False) -> AsyncIterator[str]:
    """The configured Redis, or the embedded one (started here unless already running).

    `existing_only`: refuse to start an embedded Redis on a data directory no gateway has used, so
    an admin command run from the wrong folder says so instead of finding nothing."""
    if settings.redis_url is not None:
        yield settings.redis_url
        return
    embedded = EmbeddedRedis(settings.data_dir / "redis")
    if await embedded.answers():
        yield embedded.url  # a running `serve` owns it
        return
    if existing_only and not embedded.has_data():
        raise click.ClickException(
            f"no gateway data in {settings.data_dir.resolve()} (no embedded Redis has run there): pass the "
            "directory `wa-gateway serve` uses with --data-dir or GATEWAY_DATA_DIR, or set GATEWAY_REDIS_URL"
        )
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


async def _serve(settings: Settings, with_worker: bool, reuse_port: bool) -> None:
    from gateway.app import create_app
    from gateway.processes import Children
    from gateway.server import GatewayRunner
    from gateway.state import SERVICES
    from scheduler.worker import resolve_worker_id, worker_context

    async with redis_url(settings) as url:
        settings = settings.model_copy(update={"redis_url": url})
        app = create_app(settings)
        # With deliverer processes (started below) the workers leave webhooks to them.
        delivers = settings.worker_delivers_webhooks and not settings.deliverer_processes
        if with_worker:
            worker_settings = settings.model_copy(update={"worker_delivers_webhooks": delivers})
            app.cleanup_ctx.append(worker_context(worker_settings, lambda app: app[SERVICES]))
        runner = GatewayRunner(app, settings, access_log=None)
        await runner.setup()
        apis = settings.api_process_count()
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port or apis > 1)
        await site.start()
        children = Children({**os.environ, "GATEWAY_DATA_DIR": str(settings.data_dir)})
        for _ in range(apis - 1):
            children.add("api", GATEWAY_REDIS_URL=url)
        if with_worker:
            first = resolve_worker_id(settings)
            for n in range(1, settings.worker_processes):
                worker = {"GATEWAY_WORKER_ID": f"{first}-{n}", "GATEWAY_WORKER_DELIVERS_WEBHOOKS": str(int(delivers))}
                children.add("worker", GATEWAY_REDIS_URL=url, **worker)
            for _ in range(settings.deliverer_processes):
                children.add("deliverer", GATEWAY_REDIS_URL=url)
        watching = asyncio.create_task(children.watch())
        log.info(
            "gateway.listening",
            url=f"http://{settings.host}:{settings.port}",
            redis=without_password(url),
            version=version("wa-gateway"),
            worker=with_worker,
            api_processes=apis,
        )
        try:
            await _until_signalled()
        finally:
            watching.cancel()
            await asyncio.to_thread(children.stop)
            await runner.cleanup()


async def _deliverer(settings: Settings) -> None:
    from scheduler.services import Services
    from webhooks.delivery import Deliverer, delivering

    async with redis_url(settings) as url:
        services = Services.open(settings.model_copy(update={"redis_url": url}))
        deliverer = Deliverer(services.settings, services.redis, services.outbox, services.instances)
        await deliverer.sweep()  # deliveries left pending by a previous run resume now
        tasks = delivering(deliverer)
        log.info("deliverer.started")
        try:
            await _until_signalled()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await deliverer.close()
            await services.close()
            log.info("deliverer.stopped")


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
    async with redis_url(settings, existing_only=True) as url:
        redis: Redis = connect(url)
        try:
            return await action(Tenants(redis))
        finally:
            await redis.aclose()


def _run(coro: Awaitable[T]) -> T:
    try:
        return speedups.run(coro)  # type: ignore[arg-type]
    except EmbeddedRedisError as exc:
        raise click.ClickException(str(exc)) from None
    except GatewayError as exc:
        raise click.ClickException(exc.message) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version("wa-gateway"), "--version", "-V", prog_name="wa-gateway")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="where keys, sessions and the embedded Redis live (overrides GATEWAY_DATA_DIR; default ./data)",
)
def main(data_dir: Path | None) -> None:
    """wa-gateway: a self-hosted, multi-tenant WhatsApp gateway. Configured by GATEWAY_* variables."""


@main.command()
@click.option("--no-worker", is_flag=True, help="API only; run `wa-gateway worker` processes separately.")
@click.option(
    "--api-processes",
    type=click.IntRange(1, 64),
    help="HTTP API processes sharing the port (default: GATEWAY_API_PROCESSES, else one per core).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="worker processes, the first inside the API's own (default: GATEWAY_WORKER_PROCESSES, else 1).",
)
@click.option("--reuse-port", is_flag=True, hidden=True)  # a child API process of another `serve`
def serve(no_worker: bool, api_processes: int | None, workers: int | None, reuse_port: bool) -> None:
    """Run the HTTP API (and, by default, one worker in the same process)."""
    settings = _settings()
    _writable_data_dir(settings)
    settings, notes = with_generated_secrets(settings)
    for note in notes:
        log.info("gateway.secrets", note=note)
    chosen = {"api_processes": api_processes, "worker_processes": workers}
    settings = settings.model_copy(update={k: v for k, v in chosen.items() if v is not None})
    _run(_serve(settings, with_worker=not no_worker, reuse_port=reuse_port))


@main.command()
def worker() -> None:
    """Run a worker alone: it hosts WhatsApp sessions and drains their lanes."""
    settings = _settings()
    _writable_data_dir(settings)
    settings, _ = with_generated_secrets(settings)
    _run(_worker(settings))


@main.command()
@click.option("--timeout", default=3.0, show_default=True, help="seconds to wait for the answer")
def health(timeout: float) -> None:
    """Exit 0 when the gateway on this machine's configured port answers /health with 200 (the
    container's healthcheck)."""
    settings = _settings()
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host, settings.host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{settings.port}/health"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            click.echo(f"{url}: {response.status}")
    except urllib.error.HTTPError as exc:
        raise click.ClickException(f"{url}: {exc.code}") from None
    except OSError as exc:
        raise click.ClickException(f"{url}: {getattr(exc, 'reason', exc)}") from None


@main.command()
def deliverer() -> None:
    """Deliver webhooks alone; workers started with GATEWAY_WORKER_DELIVERS_WEBHOOKS=0 leave them to it."""
    settings = _settings()
    _writable_data_dir(settings)
    settings, _ = with_generated_secrets(settings)
    _run(_deliverer(settings))


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

    async def create(tenants: Tenants) -> tuple[Tenant, IssuedKey]:
        created, issued = await tenants.create(body.tenant_id, body.name)
        await audit.record(tenants.redis, "key_issued", "cli", tenant_id=created.tenant_id, key_id=issued.key_id)
        return created, issued

    created, issued = _run(_with_tenants(_settings(), create))
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

    async def issue(tenants: Tenants) -> IssuedKey:
        issued = await tenants.issue_key(tenant_id)
        await audit.record(tenants.redis, "key_issued", "cli", tenant_id=tenant_id, key_id=issued.key_id)
        return issued

    issued = _run(_with_tenants(_settings(), issue))
    click.echo(f"key id: {issued.key_id}\napi key: {issued.api_key}")


@key.command("revoke")
@click.argument("key_id")
def key_revoke(key_id: str) -> None:
    """Revoke KEY_ID; it stops working at once."""

    async def revoke(tenants: Tenants) -> None:
        await tenants.revoke_key(key_id)
        await audit.record(tenants.redis, "key_revoked", "cli", key_id=key_id)

    _run(_with_tenants(_settings(), revoke))
    click.echo(f"revoked {key_id}")


@main.command()
@click.option("--url", envvar="WA_GATEWAY_URL", required=True, help="the gateway's address [env: WA_GATEWAY_URL]")
@click.option(
    "--api-key", envvar="WA_GATEWAY_API_KEY", required=True, help="a tenant's API key [env: WA_GATEWAY_API_KEY]"
)
def mcp(url: str, api_key: str) -> None:
    """Serve a tenant's routes as MCP tools over stdio, for AI agents. It talks to the gateway at
    URL over HTTP and reads no GATEWAY_* setting."""
    try:
        from gateway.mcp_server import build_server
    except ImportError as exc:
        raise click.ClickException(
            f"{exc.name} is not installed: from the repository, pip install '.[mcp]' ./clients/python"
        ) from None
    build_server(url, api_key).run("stdio")
