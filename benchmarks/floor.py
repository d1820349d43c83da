"""The least an accepted send can cost an API process built from the gateway's own parts: an
aiohttp handler for POST /message/text that does only what no accept can leave out, and nothing
else the contract asks for. `benchmarks.instructions` counts it beside the gateway and the bare
handler, so the accept ratio's target (0.5) can be read against what this stack allows.

What it does, with the gateway's own code: the body read and validated by the route's own model
(pydantic, in one step from the bytes), the message built (`Message.new`), recorded and queued in one
Redis step (`Lanes.accept`, the script batches of core/scripts.py), the answer (`Queued`) serialised.
What it leaves out: the API key and its rate limit, the tenant check, the request id, the access
log and metrics, idempotency, the body's deadline, the JSON error shape.

    python -m benchmarks.floor <redis_url> <port>

Run as a gateway process runs (GATEWAY_SPEEDUPS' defaults and the collector's tuning).
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

from config import load_settings
from core import speedups
from core.redis_client import connect
from gateway.routes.messages import queued_answer
from gateway.routes.send_kinds import SEND_KINDS
from scheduler.lanes import Accepting, Lanes
from scheduler.messages import Message, new_message_id

TEXT = next(kind for kind in SEND_KINDS if kind.name == "text").on_instance()


def floor_app(lanes: Lanes) -> web.Application:
    async def send_text(request: web.Request) -> web.Response:
        body = vars(TEXT.model_validate_json(await request.read()))  # the route's fields by name
        name = body["instance_name"]
        item = Accepting(Message.new(new_message_id(), name, body["lane"], body["to"], "text", text=body["text"]))
        await lanes.accept(name, [item])
        answer = queued_answer(item).model_dump_json(by_alias=True)
        return web.Response(text=answer, status=202, content_type="application/json")

    app = web.Application()
    app.router.add_post("/message/text", send_text)
    return app


def main() -> None:
    redis_url, port = sys.argv[1], int(sys.argv[2])
    settings = load_settings({"GATEWAY_REDIS_URL": redis_url})
    speedups.configure(settings.speedups)

    async def serve() -> None:
        lanes = Lanes.from_settings(connect(redis_url), settings)
        runner = web.AppRunner(floor_app(lanes), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        speedups.tune_collector(settings.gc_threshold)
        await asyncio.Event().wait()  # until terminated

    speedups.run(serve())


if __name__ == "__main__":
    main()
