"""Every Lua script says what it takes and answers in one header format, names its arguments at
its top, and builds its keys with the templates of core/keys.py (core/scripts.py): checked on the
files, and the key helpers against real Redis."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

import scheduler.messages  # noqa: F401  # renders the message fields the lane scripts start with
from config import Settings
from core import keys
from core.redis_client import Redis
from core.scripts import LUA_KEYS, SCRIPTS, Scripts, lua_key, lua_keys, lua_literal
from scheduler.lanes import Lanes, rules

FOLDER = resources.files("core") / "lua"
FILES = {path.name.removesuffix(".lua"): path.read_text() for path in FOLDER.iterdir() if path.name.endswith(".lua")}
HEADER = ("-- KEYS: ", "-- ARGV: ", "-- returns: ")
POSITIONAL = re.compile(r"\b(KEYS|ARGV)\[")


def header_and_rest(text: str) -> tuple[list[str], list[str]]:
    lines = text.splitlines()
    end = next(i for i, line in enumerate(lines) if not line.startswith("--"))
    return lines[:end], lines[end:]


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_file_opens_with_the_header_and_ends_it_with_returns(name: str) -> None:
    header, _ = header_and_rest(FILES[name])
    starts = [next((i for i, line in enumerate(header) if line.startswith(tag)), -1) for tag in HEADER]
    assert -1 not in starts, f"{name}.lua: its header lacks one of {HEADER}"
    assert starts == sorted(starts) and starts[0] > 0, f"{name}.lua: what it does, then KEYS, ARGV, returns"
    after = header[starts[-1] + 1 :]
    assert all(line.startswith("--    ") for line in after), f"{name}.lua: the header ends with `returns`"


@pytest.mark.parametrize("name", sorted(FILES))
def test_keys_and_argv_are_named_at_the_top_only(name: str) -> None:
    """KEYS[i] and ARGV[i] appear only in the block right after the header, up to its first blank
    line: the body reads names."""
    _, rest = header_and_rest(FILES[name])
    top = rest.index("") if "" in rest else 0
    late = [line for line in rest[top:] if POSITIONAL.search(line)]
    assert not late, f"{name}.lua reads an argument by position in its body: {late}"
    assert all(line.startswith(("local ", "for ", "  ")) for line in rest[:top] if POSITIONAL.search(line))


def test_every_file_is_part_of_a_script() -> None:
    used = {part for parts in SCRIPTS.values() for part in parts}
    assert set(FILES) - used == set()


def _literal_pieces(build: object) -> set[str]:
    """The literal parts of a key template (what sits between its parameters), beyond one colon."""
    rendered = lua_key(build)  # type: ignore[arg-type]
    return {piece for piece in re.findall(r"'([^']*)'", rendered) if piece != ":"}


def test_no_script_spells_a_key_of_core_keys_by_hand() -> None:
    """The key templates exist once, in core/keys.py: a script that builds one of those keys from
    its own literals (as common.lua did with ':lane:') would drift from them unseen."""
    pieces = {piece for build in LUA_KEYS for piece in _literal_pieces(build)} | {keys.PREFIX}
    for name, text in FILES.items():
        _, body = header_and_rest(text)
        literals = re.findall(r"'([^']*)'", "\n".join(line.split("--")[0] for line in body))
        spelled = [literal for literal in literals for piece in pieces if piece in literal]
        assert not spelled, f"{name}.lua builds a key from its own literals: {spelled}"


async def test_the_key_helpers_build_what_core_keys_builds(redis: Redis) -> None:
    for build in LUA_KEYS:
        args = [f"a{i}-x:y" for i in range(build.__code__.co_argcount)]
        script = f"{lua_keys()}\nreturn K.{build.__name__}(unpack(ARGV))"
        assert await redis.eval(script, 0, *args) == build(*args), build.__name__  # type: ignore[misc]
    assert await redis.eval(f"{lua_keys()}\nreturn K.STATS", 0) == keys.STATS  # type: ignore[misc]


async def test_every_script_compiles_and_is_registered_once_per_client(redis: Redis) -> None:
    scripts = Scripts.of(redis)
    assert Scripts.of(redis) is scripts
    for name in SCRIPTS:
        assert scripts[name] is scripts[name]
        assert await redis.script_load(scripts[name].registered.script) == scripts[name].sha


async def test_a_lua_literal_builds_the_table_its_json_decodes_to(redis: Redis) -> None:
    # the lanes' rules go into every lane script's source this way (scheduler/lanes.py)
    settings = Settings()
    value = {
        **rules(settings.lanes, 86_400_000, settings.throttle, settings.queue_limit),
        "quoted": "it's a \\ and a '",
        "flags": [True, False],
        "small": 1e-05,
    }
    script = f"""local value = {lua_literal(value)}
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= 'table' then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
return same(value, cjson.decode(ARGV[1])) and 1 or 0"""
    assert await redis.eval(script, 0, json.dumps(value)) == 1  # type: ignore[misc]
    assert await redis.eval(script, 0, json.dumps({**value, "small": 2e-05})) == 0  # type: ignore[misc]


async def test_lane_scripts_under_other_rules_are_scripts_of_their_own(redis: Redis) -> None:
    settings = Settings()
    ours = Lanes(redis, settings.lanes, 3600, max_wait_ms=60_000)
    other = Lanes(redis, settings.lanes, 3600, max_wait_ms=60_000, queue_limit=5)
    assert ours.script("accept") is Lanes(redis, settings.lanes, 3600, max_wait_ms=60_000).script("accept")
    assert ours.script("accept").sha != other.script("accept").sha
