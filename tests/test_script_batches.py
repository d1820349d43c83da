"""Script calls made in one turn of the event loop go to Redis as one pipeline (core/scripts.py
`Batch`): each caller still gets its own answer or its own error, against the real Redis."""

from __future__ import annotations

import asyncio
import math

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from benchmarks.roundtrips import RoundTrips
from core.redis_client import Redis, connect
from core.scripts import BATCH_EARLY, Batch, Script
from tests.serve_process import free_port

ECHO = "return {ARGV[1], redis.call('INCR', KEYS[1])}"
FAILS_ON_BOOM = "if ARGV[1] == 'boom' then return redis.error_reply('boom asked') end return ARGV[1]"


def script(redis: Redis, source: str, batch: Batch) -> Script:
    return Script(redis.register_script(source), batch)


async def test_calls_of_one_turn_are_one_round_trip_and_each_gets_its_own_answer(redis: Redis) -> None:
    echo = script(redis, ECHO, Batch(redis))
    await echo(["warm"], ["0"])  # loaded: the batch below is the whole story
    trips = RoundTrips()
    with trips.counting() as counted:
        answers = await asyncio.gather(*(echo(["counter"], [f"call {i}"]) for i in range(BATCH_EARLY - 1)))
    assert counted() == 1
    assert [answer[0] for answer in answers] == [f"call {i}" for i in range(BATCH_EARLY - 1)]
    assert [int(answer[1]) for answer in answers] == list(range(1, BATCH_EARLY))  # run in the order asked


@pytest.mark.parametrize("calls", [50, 1000])
async def test_a_full_batch_goes_early_on_the_one_connection_in_order(redis: Redis, calls: int) -> None:
    """BATCH_EARLY calls go at once, the rest as the turn ends: a thousand calls in one turn are
    sixty-three writes on one connection, each written while the ones before are on their way, and
    Redis runs them in the order asked."""
    echo = script(redis, ECHO, Batch(redis))
    await echo(["warm"], ["0"])
    trips = RoundTrips()
    with trips.counting() as counted:
        answers = await asyncio.gather(*(echo(["counter"], [f"call {i}"]) for i in range(calls)))
    assert counted() == math.ceil(calls / BATCH_EARLY)
    assert [answer[0] for answer in answers] == [f"call {i}" for i in range(calls)]
    assert [int(answer[1]) for answer in answers] == list(range(1, calls + 1))  # run in the order asked
    clients = [c for c in await redis.client_list() if c.get("cmd") == "evalsha"]
    assert len(clients) == 1  # one connection carried them all


async def test_calls_one_after_the_other_each_go_at_once(redis: Redis) -> None:
    echo = script(redis, ECHO, Batch(redis))
    trips = RoundTrips()
    with trips.counting() as counted:
        for i in range(3):
            assert (await echo(["counter"], [str(i)]))[0] == str(i)
    assert counted() >= 3


async def test_an_error_answers_only_its_own_caller(redis: Redis) -> None:
    fails = script(redis, FAILS_ON_BOOM, Batch(redis))
    results = await asyncio.gather(fails([], ["a"]), fails([], ["boom"]), fails([], ["b"]), return_exceptions=True)
    assert results[0] == "a" and results[2] == "b"
    assert isinstance(results[1], ResponseError) and "boom asked" in str(results[1])


async def test_scripts_redis_forgot_are_loaded_and_run_again(redis: Redis) -> None:
    batch = Batch(redis)
    echo, fails = script(redis, ECHO, batch), script(redis, FAILS_ON_BOOM, batch)
    await asyncio.gather(echo(["counter"], ["x"]), fails([], ["y"]))
    await redis.script_flush()  # as after a Redis restart
    trips = RoundTrips()
    with trips.counting() as counted:
        answers = await asyncio.gather(echo(["counter"], ["again"]), fails([], ["ok"]), echo(["counter"], ["more"]))
    assert counted() == 4  # the batch, each script loaded once, the batch again
    assert answers[0][0] == "again" and answers[1] == "ok" and answers[2][0] == "more"
    assert await redis.get("counter") == "3"  # each ran once: none lost, none twice


async def test_a_caller_that_gives_up_before_the_batch_goes_is_not_sent(redis: Redis) -> None:
    echo = script(redis, ECHO, Batch(redis))
    await echo(["warm"], ["0"])
    gone = asyncio.ensure_future(echo(["given-up"], ["never"]))
    kept = asyncio.ensure_future(echo(["kept"], ["yes"]))
    await asyncio.sleep(0)  # both asked; the batch goes on the next turn
    gone.cancel()
    assert (await kept)[0] == "yes"
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert await redis.exists("given-up") == 0


async def test_no_connection_fails_every_call_of_the_batch_with_it() -> None:
    client = connect(f"redis://127.0.0.1:{free_port()}")  # nobody listens there
    echo = script(client, ECHO, Batch(client))
    results = await asyncio.gather(*(echo(["k"], [str(i)]) for i in range(3)), return_exceptions=True)
    assert [type(result) for result in results] == [RedisConnectionError] * 3
    await client.aclose()


async def test_a_connection_cut_fails_what_was_on_its_way_once_and_the_next_call_connects_again(
    redis_url: str,
) -> None:
    """The batches' connection (`_Line`) lost with calls on their way: each fails with a
    ConnectionError (nothing answers them, nothing is retried twice), and the next call connects
    again. Between the client and Redis, a proxy on loopback that cuts the connection on demand."""
    cutting = asyncio.Event()

    async def proxied(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(redis_url.removeprefix("unix://"))

        async def answers() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)

        back = asyncio.ensure_future(answers())
        while (data := await reader.read(65536)) and not cutting.is_set():
            up_writer.write(data)
        back.cancel()  # cut (or the client left): what was asked is never answered
        writer.close()
        up_writer.close()

    proxy = await asyncio.start_server(proxied, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    client = connect(f"redis://127.0.0.1:{port}")
    echo = script(client, ECHO, Batch(client))
    try:
        assert (await echo(["k"], ["before"]))[0] == "before"
        cutting.set()
        cut = asyncio.gather(*(echo(["k"], [str(i)]) for i in range(3)), return_exceptions=True)
        results = await asyncio.wait_for(cut, 5)  # failed, not left waiting
        assert [type(result) for result in results] == [RedisConnectionError] * 3
        cutting.clear()
        assert (await echo(["k"], ["after"]))[0] == "after"  # a new connection, through the proxy
        assert await client.get("k") == "2"  # the cut calls never ran
    finally:
        await client.aclose()
        proxy.close()


async def test_a_batch_after_a_lost_connection_gets_its_own_answer_and_the_lost_one_fails(redis_url: str) -> None:
    """The connection lost while a batch waits for its replies (held back by a proxy): that batch
    fails, and the next one, on a new connection, gets its own answer. (That the new connection
    waits for the lost one's reader to end, core/scripts.py `_Line._connected`, is not what
    decides this run: the reader sees the connection closed while the new one is being opened.)"""
    holding = asyncio.Event()

    async def proxied(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(redis_url.removeprefix("unix://"))

        async def answers() -> None:
            while data := await up_reader.read(65536):
                if not holding.is_set():
                    writer.write(data)

        back = asyncio.ensure_future(answers())
        while data := await reader.read(65536):
            up_writer.write(data)
        back.cancel()
        writer.close()
        up_writer.close()

    proxy = await asyncio.start_server(proxied, "127.0.0.1", 0)
    client = connect(f"redis://127.0.0.1:{proxy.sockets[0].getsockname()[1]}")
    batch = Batch(client)
    echo = script(client, ECHO, batch)
    try:
        assert (await echo(["k"], ["first"]))[0] == "first"  # loaded, and the batches' connection open
        holding.set()
        held = asyncio.ensure_future(echo(["k"], ["held"]))
        await asyncio.sleep(0.2)  # written, its answer held back
        assert not held.done()
        await batch._line._connection.disconnect(nowait=True)  # lost, as after a failed write
        holding.clear()
        assert (await asyncio.wait_for(echo(["k"], ["next"]), 5))[0] == "next"
        with pytest.raises(RedisConnectionError):
            await held
    finally:
        await client.aclose()
        proxy.close()


async def test_a_wait_on_a_bell_and_the_script_after_it_are_one_round_trip(redis: Redis) -> None:
    echo = script(redis, ECHO, Batch(redis))
    await echo(["warm"], ["0"])
    await redis.rpush("bell", 1)  # type: ignore[misc]  # rung: no waiting out the 5 s
    trips = RoundTrips()
    with trips.counting() as counted:
        assert (await echo.after_wait("bell", 5.0, ["counter"], ["after"]))[0] == "after"
    assert counted() == 1
    await redis.script_flush()  # as after a Redis restart: the caller runs it as without a wait
    assert await echo.after_wait("bell", 0.01, ["counter"], ["lost"]) is None
