"""The frames a session host and its parent exchange over their socket pair.

A frame is a 4-byte big-endian length and a pickle. Both ends are this program (the parent forks
its own children), so pickle carries the driver's dataclasses and exceptions as they are.

Parent to child: `Call(call_id, method, args)`. Child to parent: `Reply(call_id, value, error)`,
`Event(event)` (a `DriverEvent`, in the order the session produced them) and `Ended(reconnect)`
when the session is over and the child only waits to be ended (`reconnect`: the session did not
end for good: a broken run, worth connecting again from its store).
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from dataclasses import dataclass
from typing import Any

from scheduler.drivers.base import DriverEvent

_HEADER = struct.Struct("!I")


@dataclass(frozen=True)
class Call:
    call_id: int
    method: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Reply:
    call_id: int
    value: Any = None
    error: BaseException | None = None


@dataclass(frozen=True)
class Event:
    event: DriverEvent


@dataclass(frozen=True)
class Ended:
    reconnect: bool


Frame = Call | Reply | Event | Ended


def encode(frame: Frame) -> bytes:
    body = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


async def read(reader: asyncio.StreamReader) -> Frame | None:
    """The next frame, or None once the other end has gone."""
    try:
        header = await reader.readexactly(_HEADER.size)
        (size,) = _HEADER.unpack(header)
        frame: Frame = pickle.loads(await reader.readexactly(size))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return frame
