"""The frames a session host and the worker exchange over their socket pair.

A frame is a 4-byte big-endian length and a msgpack array. The host parses untrusted WhatsApp data,
so what it sends is data, never code: decoding builds only the driver interface's own types (the
dataclasses, value models and `DriverError`s of `scheduler.drivers.base`) and the call records of
`calls`, looked up by name; it checks each frame's shape, and refuses any frame longer than the
limit the reader was given. Whatever does not decode raises `FrameError`: the reader then treats
the other side as broken.

Worker to host: `Call(call_id, call)`, `call` one of the records of `calls` (a type, no method
name). Host to worker: `Reply(call_id, value, error)`, `Event(event)` (a `DriverEvent`, in the
order the session produced them), `Ended(reconnect)` when the session is over and the host only
waits to be ended (`reconnect`: the session did not end for good, worth connecting again from its
store), and `Log(level, logger, message)`: a line of the host's log (whatsmeow's among them) for
the worker's structured log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import struct
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

import msgpack
from pydantic import BaseModel, ValidationError

from scheduler.drivers import base
from scheduler.drivers.base import DriverError, DriverEvent
from scheduler.drivers.neonize.calls import SessionCall

_HEADER = struct.Struct("!I")
# Frames carry media (an inbound download, an outgoing file): the limit is the media's plus this.
FRAME_OVERHEAD = 1024 * 1024
# The limit with the default media limit (100 MiB); the driver computes its own from its settings.
DEFAULT_FRAME_LIMIT = 100 * 1024 * 1024 + FRAME_OVERHEAD

# Tags of the values msgpack has no type for; a map holding one of these keys is that value.
_DATACLASS, _MODEL, _ERROR, _TUPLE, _TIME, _CALL = "\x00dc", "\x00m", "\x00e", "\x00t", "\x00d", "\x00c"
_DATACLASSES: dict[str, type[Any]] = {
    name: kind for name, kind in vars(base).items() if isinstance(kind, type) and dataclasses.is_dataclass(kind)
}
_MODELS: dict[str, type[BaseModel]] = {
    name: kind
    for name, kind in vars(base).items()
    if isinstance(kind, type) and issubclass(kind, BaseModel) and kind.__module__ == base.__name__
}
_ERRORS: dict[str, type[DriverError]] = {
    name: kind for name, kind in vars(base).items() if isinstance(kind, type) and issubclass(kind, DriverError)
}
_EVENTS = get_args(DriverEvent)
_CALL_TYPES: tuple[type[Any], ...] = get_args(SessionCall)
_CALLS: dict[str, type[Any]] = {kind.__name__: kind for kind in _CALL_TYPES}


class FrameError(Exception):
    """A frame that is too long, not msgpack, or not one of ours."""


@dataclass(frozen=True)
class Call:
    call_id: int
    call: SessionCall


@dataclass(frozen=True)
class Reply:
    call_id: int
    value: Any = None
    error: DriverError | None = None


@dataclass(frozen=True)
class Event:
    event: DriverEvent


@dataclass(frozen=True)
class Ended:
    reconnect: bool


@dataclass(frozen=True)
class Log:
    level: int
    logger: str
    message: str


Frame = Call | Reply | Event | Ended | Log


def _default(value: Any) -> Any:
    if isinstance(value, tuple):
        return {_TUPLE: list(value)}
    if isinstance(value, datetime):
        return {_TIME: value.isoformat()}
    if isinstance(value, DriverError):
        return {_ERROR: type(value).__name__, "message": str(value)}
    if isinstance(value, _CALL_TYPES):
        return {_CALL: type(value).__name__, "fields": _fields(value)}
    if isinstance(value, BaseModel):
        return {_MODEL: type(value).__name__, "fields": value.model_dump()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {_DATACLASS: type(value).__name__, "fields": _fields(value)}
    raise TypeError(f"{type(value).__name__} cannot cross to a session host")


def _fields(value: Any) -> dict[str, Any]:
    return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}


def _named(table: dict[str, Any], name: Any) -> Any:
    kind = table.get(name) if isinstance(name, str) else None
    if kind is None:
        raise FrameError(f"unknown type {name!r} in a frame")
    return kind


def _object(value: dict[str, Any]) -> Any:
    if len(value) > 2 or not any(key.startswith("\x00") for key in value):
        return value
    try:
        if _TUPLE in value:
            return tuple(value[_TUPLE])
        if _TIME in value:
            return datetime.fromisoformat(value[_TIME])
        if _ERROR in value:
            return _named(_ERRORS, value[_ERROR])(str(value["message"]))
        if _MODEL in value:
            return _named(_MODELS, value[_MODEL]).model_validate(value["fields"])
        if _CALL in value:
            return _named(_CALLS, value[_CALL])(**value["fields"])
        if _DATACLASS in value:
            return _named(_DATACLASSES, value[_DATACLASS])(**value["fields"])
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise FrameError(f"malformed value in a frame: {exc}") from exc
    return value


def encode(frame: Frame) -> bytes:
    match frame:
        case Call(call_id=call_id, call=call):
            body: list[Any] = ["call", call_id, call]
        case Reply(call_id=call_id, value=value, error=error):
            body = ["reply", call_id, value, error]
        case Event(event=event):
            body = ["event", event]
        case Ended(reconnect=reconnect):
            body = ["ended", reconnect]
        case Log(level=level, logger=logger, message=message):
            body = ["log", level, logger, message]
    packed: bytes = msgpack.packb(body, default=_default, strict_types=True, use_bin_type=True)
    return _HEADER.pack(len(packed)) + packed


def decode(packed: bytes) -> Frame:
    try:
        body = msgpack.unpackb(packed, object_hook=_object, raw=False, use_list=True, strict_map_key=True)
    except FrameError:
        raise
    except Exception as exc:  # msgpack's own errors (ExtraData, FormatError, ValueError...)
        raise FrameError(f"not a msgpack frame: {type(exc).__name__}: {exc}") from exc
    match body:
        case ["call", int(call_id), call] if isinstance(call, _CALL_TYPES):
            return Call(call_id, call)
        case ["reply", int(call_id), value, None | DriverError() as error]:
            return Reply(call_id, value, error)
        case ["event", event] if isinstance(event, _EVENTS):
            return Event(event)
        case ["ended", bool(reconnect)]:
            return Ended(reconnect)
        case ["log", int(level), str(logger), str(message)]:
            return Log(level, logger, message)
    raise FrameError(f"not a frame: {str(body)[:80]!r}")


async def read(reader: asyncio.StreamReader, limit: int = DEFAULT_FRAME_LIMIT) -> Frame | None:
    """The next frame, or None once the other end has gone; FrameError for one that is not ours."""
    try:
        header = await reader.readexactly(_HEADER.size)
        (size,) = _HEADER.unpack(header)
        if size > limit:
            raise FrameError(f"a frame of {size} bytes is over the {limit}-byte limit")
        return decode(await reader.readexactly(size))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
