"""The web console at `/dashboard`: plain HTML, CSS and JavaScript modules served by the gateway
itself (no build step, nothing fetched from elsewhere). The page talks to the same API as any
client, with the API key the operator signs in with, kept in the tab's sessionStorage."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

HERE = Path(__file__).parent
STATIC_PATH = "/dashboard/static"
# The page may load and run only our own files (images also from data: URIs, the QR code), and
# never be framed: the API key lives in this page, so no script from anywhere else may run beside it.
# Scripts come only from the console's own static path, not from the whole origin: media a contact
# sent is served on this origin too, and must never run as a script here whatever its type. A CSP
# path needs a host, so it is the one the browser asked for; `http:` also matches https there.
# connect-src 'self' admits the API and, on the same host, the live /events WebSocket (ws: or wss:).
POLICY = (
    "default-src 'none'; script-src http://{host}" + STATIC_PATH + "/; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]+)?|\[[0-9A-Fa-f:.]+\](:[0-9]+)?")


async def dashboard(request: web.Request) -> web.StreamResponse:
    # A Host that is not a plain name or address must not write its own policy.
    host = request.host if _HOST.fullmatch(request.host) else "invalid"
    policy = POLICY.format(host=host)
    return web.FileResponse(HERE / "index.html", headers={**HEADERS, "Content-Security-Policy": policy})


def add_static(app: web.Application) -> None:
    app.router.add_static(STATIC_PATH, HERE / "static")
