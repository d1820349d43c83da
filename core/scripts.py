"""The Lua scripts of core/lua: every script the gateway runs, named once (`SCRIPTS`), registered
once per Redis client (`Scripts.of`), fed the key templates of core/keys.py (`lua_keys`) and
decoded by name into typed records (`record`).

A script is put together from parts: shared ones (libraries of functions) first, its own last.
Every file opens with the same header (tests/test_lua_headers.py checks it):

    -- <what it does>
    -- KEYS: 1 <name> <what>, 2 ... (or: none)
    -- ARGV: 1 <name> <what>, 2 ... (or: none)
    -- returns: <what>

and reads its KEYS and ARGV into named locals at its top, nowhere else.

Script calls made in the same turn of the event loop go to Redis together (`Script`): one
pipeline and one write for all of them, on a connection kept for them (`_Line`) where each batch
goes without waiting for the ones before to answer, and the replies come back in order. Fifty
requests accepted at once cost four writes, not fifty round trips (sixteen go at once, so Redis
runs them while the API reads the rest: `BATCH_EARLY`); a message's record and its conversation
entry, asked for together, cost one."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import re
import typing
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Sequence
from importlib import resources
from typing import Any, TypeVar

from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from core import keys
from core.redis_client import Redis

# The parts every lane script starts with: message fields (generated), metrics, the outbox, the
# lanes' shared state and rules (common.lua).
_LANE = ("message_fields", "fields", "metrics", "outbox_add", "common")

# Every script: its name -> its parts, shared ones first. "keys" (`lua_keys`) and "fields" (the
# message record's field names, `generate`) are rendered from Python; the rest are core/lua files.
SCRIPTS: dict[str, tuple[str, ...]] = {
    "check_key": ("authorize", "check_key"),
    "claim": ("claim",),
    "receipt": ("receipt",),
    "sandbox_sent": ("sandbox_sent",),
    "create_tenant": ("create_tenant",),
    "update_instance": ("fields", "update_instance"),
    "first_link": ("first_link",),
    "instances_exist": ("instances_exist",),
    "queued_totals": ("queued_totals",),
    "create_instance": ("fields", "create_instance"),
    "conversation_add": ("conversation_add",),
    "conversation_messages": ("conversation_page", "conversation_messages"),
    "conversation_chats": ("conversation_page", "conversation_chats"),
    "webhook_publish": ("outbox_add", "webhook_publish"),
    "webhook_hand_over": ("outbox_add", "webhook_hand_over"),
    "webhook_take_due": ("outbox_add", "webhook_take_due"),
    "webhook_next": ("metrics", "outbox_add", "webhook_next"),
    "webhook_replay": ("webhook_replay",),
    "accept": (*_LANE, "authorize", "accept"),
    **{
        name: (*_LANE, name)
        for name in ("withdraw", "claim_due", "finish", "flush", "kick", "sweep", "throttle", "waiting")
    },
}

# Parts rendered from Python rather than read from core/lua: name -> its renderer. The message
# record's fields ("F") belong to scheduler/messages.py, which adds its renderer when imported.
_GENERATED: dict[str, Callable[[], str]] = {}


def generate(part: str, render: Callable[[], str]) -> None:
    """Render the script part `part` with `render` (a layer above core owns what it names)."""
    _GENERATED[part] = render


def lua(*parts: str) -> str:
    """The source of each part, in order, after the key helpers (`lua_keys`)."""
    folder = resources.files("core") / "lua"
    texts = [_GENERATED[part]() if part in _GENERATED else (folder / f"{part}.lua").read_text() for part in parts]
    return "\n".join([lua_keys(set(re.findall(r"\bK\.(\w+)", "\n".join(texts)))), *texts])


# The key templates of core/keys.py the scripts build keys with, as `K.<name>(...)` in Lua.
LUA_KEYS: tuple[Callable[..., str], ...] = (
    keys.instance,
    keys.pump,
    keys.lane,
    keys.sent_times,
    keys.phone,
    keys.phone_sent,
    keys.first_contacts,
    keys.spacing,
    keys.contacts,
    keys.outcomes,
    keys.recent_messages,
    keys.message,
    keys.due,
    keys.due_bell,
    keys.suppressions,
    keys.on_whatsapp,
    keys.whatsapp_id,
    keys.conversation_chat,
    keys.conversation_records,
    keys.webhook_lock,
    keys.outbox,
    keys.webhook_endpoint,
    keys.webhook_delivery,
)
LUA_KEY_CONSTANTS = {"STATS": keys.STATS}

_MARK = "\x00"


def _lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def lua_literal(value: Any) -> str:
    """`value` (JSON's kinds: dict, list, str, int, float, bool) as a Lua table constructor or
    constant, which a script builds at a fraction of what cjson.decode of the same JSON costs."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _lua_string(value)
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(item) for item in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{_lua_string(key)}] = {lua_literal(item)}" for key, item in value.items()) + "}"
    raise TypeError(f"no Lua literal for {type(value).__name__}")


def lua_key(build: Callable[..., str]) -> str:
    """`K.<name> = function(<params>) return '<literal>' .. <param> ... end`, from the template
    core/keys.py builds: called with markers in place of its parameters."""
    params = list(inspect.signature(build).parameters)
    template = build(*(f"{_MARK}{param}{_MARK}" for param in params))
    pieces = re.split(f"{_MARK}(\\w+){_MARK}", template)  # literal, param, literal, ...
    terms = [piece if i % 2 else _lua_string(piece) for i, piece in enumerate(pieces) if piece or i % 2]
    return f"function K.{build.__name__}({', '.join(params)}) return {' .. '.join(terms)} end"


def lua_keys(used: Collection[str] | None = None) -> str:
    """The key helpers a script starts with: `K`, rendered from core/keys.py's templates; only the
    `used` ones (None: all), as a script builds its table anew at every call."""
    constants = ", ".join(f"{name} = {_lua_string(value)}" for name, value in LUA_KEY_CONSTANTS.items())
    helpers = (lua_key(build) for build in LUA_KEYS if used is None or build.__name__ in used)
    return "\n".join([f"local K = {{{constants}}}", *helpers])


class Scripts:
    """Every script of `SCRIPTS`, registered on one Redis client: `Scripts.of(redis)["accept"]`.
    A script is registered (its source put together, its SHA computed) at its first use, once."""

    _of: weakref.WeakKeyDictionary[Redis, Scripts] = weakref.WeakKeyDictionary()

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._loaded: dict[tuple[str, str], Script] = {}
        self._batch = Batch(redis)

    @classmethod
    def of(cls, redis: Redis) -> Scripts:
        """The registry of `redis`'s scripts: one per client."""
        found = cls._of.get(redis)
        if found is None:
            found = cls._of[redis] = cls(redis)
        return found

    def __getitem__(self, name: str) -> Script:
        return self.with_constants(name, "")

    def with_constants(self, name: str, constants: str) -> Script:
        """Script `name` with `constants` first: Lua defining what its parts read, as the lanes'
        RULES (scheduler/lanes.py). Each distinct `constants` is a script of its own (its own SHA)."""
        found = self._loaded.get((name, constants))
        if found is None:
            source = "\n".join(part for part in (constants, lua(*SCRIPTS[name])) if part)
            found = self._loaded[(name, constants)] = Script(self.redis.register_script(source), self._batch)
        return found


class Script:
    """One registered script. Called with no `client`, it joins the calls of this turn of the event
    loop in one pipeline; with a pipeline as `client`, it is queued there, as redis-py's own."""

    def __init__(self, registered: AsyncScript, batch: Batch) -> None:
        self.registered = registered
        self.sha: str = registered.sha
        self._batch = batch

    def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Any = None) -> Awaitable[Any]:
        """Its answer, to await: asked for now, as the call is made (no coroutine in between)."""
        if client is not None:
            return self.registered(keys=keys, args=args, client=client)
        return self._batch.run(self.registered, keys, args)

    async def after_wait(self, bell: str, wait: float, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        """Sleep up to `wait` s on the list `bell` (until something is pushed on it), then run: one
        pipeline and one round trip, as Redis runs a pipeline's commands in order. None when Redis
        had forgotten the script (it restarted): the caller runs it as without a wait, loading it."""
        # EVALSHA by hand: a script handed to a pipeline costs a SCRIPT EXISTS round trip more.
        async with self._batch.redis.pipeline(transaction=False) as pipe:
            # Redis takes a fractional timeout (6.0 on); redis-py types it as an int.
            pipe.blpop([bell], timeout=wait)  # type: ignore[arg-type]
            pipe.evalsha(self.sha, len(keys), *keys, *args)
            try:
                _, found = await pipe.execute()
            except NoScriptError:
                return None
            return found


# A batch goes before its turn is over once it holds BATCH_EARLY calls: Redis then runs the first
# requests' steps while the API still reads the next ones, where a whole turn's batch had each wait
# for the other (the API process was busy 77-84 % of the time under load, 90-94 % with this; make
# bench, 2026-12-06).
BATCH_EARLY = 16


class Batch:
    """The script calls of one turn of the event loop, sent as one pipeline once the turn is over
    (sooner, BATCH_EARLY at a time), on a connection of their own that carries every batch of the
    client in order (`_Line`). Each caller gets its own answer or its own error; a connection error
    fails the calls it cut, as it would have failed each alone. A script Redis no longer knows (it
    restarted) is loaded once and its calls sent together again."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._waiting: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._line = _Line(redis)

    def run(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> asyncio.Future[Any]:
        """The call's answer, to await: it joins this turn's batch."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._send)
        self._waiting.append((script, keys, args, answer))
        if len(self._waiting) >= BATCH_EARLY:
            self._send()
        return answer

    def _send(self) -> None:
        calls, self._waiting = self._waiting, []
        if not calls:
            return
        task = asyncio.create_task(self._execute(calls))
        self._sending.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(self._sending.discard)

    async def _execute(self, calls: list[_Call], reloaded: bool = False) -> None:
        calls = [call for call in calls if not call[3].done()]  # a caller that gave up before it went
        if not calls:
            return
        try:
            replies = await self._line.send([(script.sha, keys, args) for script, keys, args, _ in calls])
        except asyncio.CancelledError:
            for *_, answer in calls:
                answer.cancel()
            raise
        except Exception as exc:  # the connection: every call of the batch failed with it
            for *_, answer in calls:
                if not answer.done():
                    answer.set_exception(exc)
            return
        forgotten = []
        for call, reply in zip(calls, replies, strict=True):
            answer = call[3]
            if isinstance(reply, NoScriptError):
                forgotten.append(call)
            elif answer.done():  # its caller gave up waiting
                continue
            elif isinstance(reply, Exception):
                answer.set_exception(reply)
            else:
                answer.set_result(reply)
        if not forgotten:
            return
        if reloaded:  # forgotten again at once (a flush meanwhile): one by one, as redis-py does
            for script, keys, args, answer in forgotten:
                await _settle(answer, script(keys=keys, args=args))
            return
        try:
            for script in {call[0].sha: call[0] for call in forgotten}.values():
                await self.redis.script_load(script.script)
        except asyncio.CancelledError:
            for *_, answer in forgotten:
                answer.cancel()
            raise
        except Exception as exc:
            for *_, answer in forgotten:
                if not answer.done():
                    answer.set_exception(exc)
            return
        await self._execute(forgotten, reloaded=True)  # each script loaded once, its calls sent again


# A script call waiting for its batch: the script, its keys and args, and where its answer goes.
_Call = tuple[AsyncScript, Sequence[Any], Sequence[Any], "asyncio.Future[Any]"]


class _Line:
    """One connection of the client's pool, kept for the script batches: each batch is written as
    soon as it goes, whatever is still on its way, and the replies are read back in order by one
    reader, each to its batch. Through redis-py's own call path, a script call cost the API 256k
    instructions (callgrind, 2026-12-06: a pooled connection taken and given back, retries,
    callbacks, a round trip awaited per pipeline); here it costs a write and its share of a read.
    A connection lost fails what is on its way (once, as redis-py's path would); the next batch
    connects again (to the current master, with Sentinel)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._connection: Any = None
        self._connecting = asyncio.Lock()
        # Per batch written, in order: its replies read so far, how many it waits for, where they go.
        self._batches: deque[tuple[list[Any], int, asyncio.Future[list[Any]]]] = deque()
        self._reader: asyncio.Task[None] | None = None

    async def send(self, commands: Sequence[tuple[str, Sequence[Any], Sequence[Any]]]) -> list[Any]:
        """The reply to each EVALSHA (sha, keys, args), an error reply as its exception."""
        connection = await self._connected()
        if not connection.is_connected:  # lost meanwhile: this batch fails once, as redis-py's call would
            raise RedisConnectionError("the connection to Redis was lost before the batch was written")
        # Connected, and no await until the write: redis-py does not connect again under the reader.
        packed = connection.pack_commands([("EVALSHA", sha, len(keys), *keys, *args) for sha, keys, args in commands])
        replies: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._batches.append(([], len(commands), replies))  # in the step that writes: the reader's order is the write's
        try:
            await connection.send_packed_command(packed, check_health=False)
        except BaseException as exc:  # redis-py closed the connection: nothing written answers now
            replies.cancel()  # raised here, to the batch's own caller
            self._fail(exc)
            raise
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(connection))
        return await replies

    async def _connected(self) -> Any:
        if self._connection is None:
            async with self._connecting:
                if self._connection is None:
                    self._connection = await self.redis.connection_pool.get_connection()
        if not self._connection.is_connected:
            async with self._connecting:
                if not self._connection.is_connected:
                    if self._reader is not None:
                        # The lost connection's reader ends first (failing what it had on its way):
                        # it must never read a reply of the new connection.
                        await asyncio.wait([self._reader])
                    await self._connection.connect()
        return self._connection

    async def _read(self, connection: Any) -> None:
        try:
            while self._batches:
                try:
                    reply = await connection.read_response()
                except ResponseError as exc:  # an error reply: its command's answer
                    reply = exc
                read, expected, replies = self._batches[0]
                read.append(reply)
                if len(read) == expected:
                    self._batches.popleft()
                    if not replies.done():  # its batch may have been cancelled meanwhile
                        replies.set_result(read)
        except BaseException as exc:
            self._fail(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self._reader = None

    def _fail(self, exc: BaseException) -> None:
        """Every batch on its way fails with `exc` (the connection is gone)."""
        if isinstance(exc, asyncio.CancelledError):  # the reader stopped (shutdown): nothing will answer
            exc = RedisConnectionError("the connection to Redis was closed before it answered")
        waiting, self._batches = self._batches, deque()
        for _, _, replies in waiting:
            if not replies.done():
                replies.set_exception(exc)


async def _settle(answer: asyncio.Future[Any], call: Awaitable[Any]) -> None:
    """`answer` gets what `call` answers, or raises."""
    try:
        reply = await call
    except asyncio.CancelledError:
        answer.cancel()
        raise
    except Exception as exc:
        if not answer.done():
            answer.set_exception(exc)
        return
    if not answer.done():
        answer.set_result(reply)


R = TypeVar("R")


def record(cls: type[R], flat: Sequence[Any]) -> R:
    """The dataclass `cls` from a script's flat field/value pairs, each field by its name (int and
    str fields converted, others as Redis answered them); a name missing or unknown raises."""
    pairs = dict(zip(flat[::2], flat[1::2], strict=True))
    fields = _fields(cls)
    if pairs.keys() != fields.keys():
        raise ValueError(f"{cls.__name__}: the script answered {sorted(pairs)}, not {sorted(fields)}")
    return cls(**{name: _typed(hint, pairs[name]) for name, hint in fields.items()})


_FIELDS: dict[type, dict[str, object]] = {}


def _fields(cls: type) -> dict[str, object]:
    """The dataclass's fields and their types, by name (worked out once per class)."""
    found = _FIELDS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = _FIELDS[cls] = {field.name: hints[field.name] for field in dataclasses.fields(cls)}
    return found


def _typed(hint: object, value: Any) -> Any:
    if hint is int:
        return int(value)
    if hint is str:
        return str(value)
    return value
