"""The optional accelerators GATEWAY_SPEEDUPS switches on, process-wide, once at start-up:
uvloop (the event loop), orjson (the JSON of HTTP requests; answers are pydantic's), hiredis (redis-py's reply
parser and command packer). Each is kept on only where `make bench` shows it pays: `python -m benchmarks.trials`
measures the gateway with each on and off."""

from __future__ import annotations

import asyncio
import gc
import json
import re
from collections.abc import Callable, Collection, Coroutine
from typing import Any, TypeVar

from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser

T = TypeVar("T")

_chosen: frozenset[str] = frozenset({"hiredis"})


def configure(speedups: Collection[str]) -> None:
    """Switch on `speedups` (the settings' `speedups`) for this process."""
    global _chosen
    _chosen = frozenset(speedups)


def tune_collector(threshold: int) -> None:
    """Python's garbage collector for a long-running process (the settings' `gc_threshold`; 0
    leaves CPython's defaults): a young collection every `threshold` allocations, not 700, so the
    objects of a send die by their count before a collection promotes them (promoted, they brought on
    full collections, each a walk over every object the process holds); and what start-up built
    (modules, schemas, settings), which lives as long as the process, frozen out of every
    collection. Called once, when start-up is done."""
    if threshold == 0:
        return
    gc.collect()  # no garbage of start-up is frozen with the rest
    gc.set_threshold(threshold, *gc.get_threshold()[1:])
    gc.freeze()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, on uvloop's loop when it is switched on."""
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if "uvloop" in _chosen:
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coro)


def loads(raw: bytes) -> Any:
    """JSON of an HTTP request. ValueError when it is not JSON (NaN and Infinity included);
    UnicodeEncodeError (json) or ValueError (orjson) when it escapes a lone UTF-16 surrogate."""
    if "orjson" in _chosen:
        import orjson

        return orjson.loads(raw)  # refuses NaN, Infinity and lone surrogates itself
    # json.loads(raw, parse_constant=...) itself, without the decoder it would build at every call
    data = _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    if _SURROGATE_ESCAPE.search(raw):  # "\ud800" decodes to no Unicode text at all
        json.dumps(data, ensure_ascii=False).encode()
    return data


# The only way a lone surrogate gets into JSON text: a \uD800-\uDFFF escape (raw UTF-8 cannot
# carry one). A request without such an escape needs no look for one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def parser_class() -> type[_AsyncHiredisParser] | type[_AsyncRESP2Parser]:
    """redis-py's reply parser: hiredis's (C) when switched on, else the pure-Python one."""
    return _AsyncHiredisParser if "hiredis" in _chosen else _AsyncRESP2Parser


def packs_with_hiredis() -> bool:
    """Whether commands are packed by hiredis's (C) packer (core/redis_client.py)."""
    return "hiredis" in _chosen
