"""The web console at `/dashboard`: plain HTML, CSS and JavaScript modules served by the gateway
itself (no build step, nothing fetched from elsewhere). The page talks to the same API as any
client, with the API key the operator signs in with, kept in the tab's sessionStorage."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

HERE = Path(__file__).parent
STATIC_PATH = "/dashboard/static"
# The page may load and run only our own files (images also from data: URIs, the QR code), and
# never be framed: the API key lives in this page, so no script from anywhere else may run beside it.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def dashboard(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(HERE / "index.html", headers=HEADERS)


def add_static(app: web.Application) -> None:
    app.router.add_static(STATIC_PATH, HERE / "static")
