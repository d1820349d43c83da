"""JSON answers from the API's models: serialised by pydantic's own serialiser (compiled), in one
step from the model to the text, with no dict of the answer built in between."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web
from pydantic import BaseModel


def json_response(body: BaseModel | Sequence[BaseModel], status: int = 200) -> web.Response:
    if isinstance(body, Sequence):
        text = "[" + ",".join(item.model_dump_json(by_alias=True) for item in body) + "]"
    else:
        text = body.model_dump_json(by_alias=True)
    return web.Response(text=text, status=status, content_type="application/json")
