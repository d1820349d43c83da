"""Inbound media kept by the worker: `GET /media/{id}` with a tenant key, or with the signed
expiring `?exp=&sig=` link a webhook carries (no key needed)."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web
from pydantic import Field

from core.errors import ForbiddenTenant, NotFound
from core.records import ApiModel
from gateway.state import principal, services
from gateway.validation import validate


class MediaLink(ApiModel):
    """The query of a signed link (documentation: the handler checks the signature itself)."""

    exp: int = Field(default=0, ge=0, le=2**40, description="the link's expiry, Unix seconds")
    sig: str = Field(default="", max_length=128, description="the link's signature; with it, no API key is needed")


async def get_media(request: web.Request) -> web.Response:
    media_id = request.match_info["id"]
    library = services(request).media
    if "sig" in request.query:
        # A number of 4,400 digits is a 400, not a 500.
        link = validate(MediaLink, {k: v for k, v in request.query.items() if k in ("exp", "sig")})
        problem = library.links.check(media_id, str(link.exp), link.sig)
        if problem is not None:
            raise ForbiddenTenant(f"media link refused: {problem}")
    record = await library.find(media_id)
    if record is None:
        raise NotFound(f"no media {media_id!r}: unknown, or past its retention")
    if "sig" not in request.query:
        principal(request).require(record.tenant_id, f"media {media_id!r}")
    data = await library.read(record)
    if data is None:
        raise NotFound(f"media {media_id!r} is no longer stored")
    return web.Response(body=data, headers=served_headers(record.mimetype, record.file_name))


# Types a browser only ever shows (never runs); anything else a contact sent (HTML, SVG, a script)
# is handed over as a download, so it cannot act on this origin where the console keeps its key.
_SHOWN_IMAGES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})


def served_headers(mimetype: str, file_name: str | None) -> dict[str, str]:
    """Headers that make a browser show media at most, never run it: no sniffing, no script, no
    plug-in, and `attachment` for any type outside plain images, audio and video."""
    kind = mimetype.split(";", 1)[0].strip().lower()
    shown = kind in _SHOWN_IMAGES or kind.startswith(("audio/", "video/"))
    disposition = "inline" if shown else "attachment"
    if file_name:
        disposition += f"; filename*=UTF-8''{quote(file_name)}"
    return {
        "Content-Type": mimetype,
        "Cache-Control": "private, max-age=3600",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Content-Disposition": disposition,
    }
