"""The Lua scripts of core/lua: every script the gateway runs, named once (`SCRIPTS`), registered
once per Redis client (`Scripts.of`), fed the key templates of core/keys.py (`lua_keys`) and
decoded by name into typed records (`record`).

A script is put together from parts: shared ones (libraries of functions) first, its own last.
Every file opens with the same header (tests/test_lua_headers.py checks it):

    -- <what it does>
    -- KEYS: 1 <name> <what>, 2 ... (or: none)
    -- ARGV: 1 <name> <what>, 2 ... (or: none)
    -- returns: <what>

and reads its KEYS and ARGV into named locals at its top, nowhere else."""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
import weakref
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any, TypeVar

from redis.commands.core import AsyncScript

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
    return "\n".join([lua_keys(), *texts])


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
)
LUA_KEY_CONSTANTS = {"STATS": keys.STATS}

_MARK = "\x00"


def _lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def lua_key(build: Callable[..., str]) -> str:
    """`K.<name> = function(<params>) return '<literal>' .. <param> ... end`, from the template
    core/keys.py builds: called with markers in place of its parameters."""
    params = list(inspect.signature(build).parameters)
    template = build(*(f"{_MARK}{param}{_MARK}" for param in params))
    pieces = re.split(f"{_MARK}(\\w+){_MARK}", template)  # literal, param, literal, ...
    terms = [piece if i % 2 else _lua_string(piece) for i, piece in enumerate(pieces) if piece or i % 2]
    return f"function K.{build.__name__}({', '.join(params)}) return {' .. '.join(terms)} end"


def lua_keys() -> str:
    """The key helpers every script starts with: `K`, rendered from core/keys.py's templates."""
    constants = ", ".join(f"{name} = {_lua_string(value)}" for name, value in LUA_KEY_CONSTANTS.items())
    return "\n".join([f"local K = {{{constants}}}", *(lua_key(build) for build in LUA_KEYS)])


class Scripts:
    """Every script of `SCRIPTS`, registered on one Redis client: `Scripts.of(redis)["accept"]`.
    A script is registered (its source put together, its SHA computed) at its first use, once."""

    _of: weakref.WeakKeyDictionary[Redis, Scripts] = weakref.WeakKeyDictionary()

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._loaded: dict[str, AsyncScript] = {}

    @classmethod
    def of(cls, redis: Redis) -> Scripts:
        """The registry of `redis`'s scripts: one per client."""
        found = cls._of.get(redis)
        if found is None:
            found = cls._of[redis] = cls(redis)
        return found

    def __getitem__(self, name: str) -> AsyncScript:
        found = self._loaded.get(name)
        if found is None:
            found = self._loaded[name] = self.redis.register_script(lua(*SCRIPTS[name]))
        return found


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
