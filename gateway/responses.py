from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web
from pydantic import BaseModel

from core import speedups


def dump(model: BaseModel) -> dict[str, object]:
    return model.model_dump(mode="json", by_alias=True)


def json_response(body: BaseModel | Sequence[BaseModel], status: int = 200) -> web.Response:
    data = [dump(item) for item in body] if isinstance(body, Sequence) else dump(body)
    return web.json_response(data, status=status, dumps=speedups.dumps)
