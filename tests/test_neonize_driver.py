"""The neonize driver, offline: real neonize protobuf events, real (never connected) clients."""

from __future__ import annotations

import asyncio
import ctypes
import io
import logging
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from config import SettingsError, load_settings
from scheduler.drivers import make_driver
from scheduler.drivers import neonize as nd
from scheduler.drivers.base import (
    Account,
    Banned,
    Connected,
    Disconnected,
    DriverError,
    DriverEvent,
    MessageReceived,
    NotLinkedError,
    NotOnWhatsAppError,
    OutcomeUnknownError,
    OutgoingMessage,
    QrCode,
    QrExpired,
    Receipt,
    SendResult,
    TransientDriverError,
)
from scheduler.drivers.neonize.loading import _e2e, _import, _pb
from scheduler.drivers.neonize.stores import _application_name, _psycopg

pb = _pb()
e2e = _e2e()
exc_module = _import("neonize.exc")

PHONE = "5491112345678"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def wire(event: Any) -> Any:
    """What neonize hands a handler: the event parsed back from its bytes."""
    return type(event).FromString(event.SerializeToString())


def jid(user: str, server: str = "s.whatsapp.net") -> Any:
    return pb.JID(User=user, Server=server, RawAgent=0, Device=0, Integrator=0, IsEmpty=not user)


NO_JID = jid("", "")


def source(sender: Any, *, chat: Any = None, from_me: bool = False, is_group: bool = False, alt: Any = None) -> Any:
    # Every required field set, as neonize's Go side always does.
    return pb.MessageSource(
        Chat=chat or sender,
        Sender=sender,
        IsFromMe=from_me,
        IsGroup=is_group,
        SenderAlt=alt or NO_JID,
        RecipientAlt=NO_JID,
        BroadcastListOwner=NO_JID,
    )


def message_event(
    content: Any,
    *,
    from_me: bool = False,
    sender: Any = None,
    chat: Any = None,
    sender_alt: Any = None,
    is_group: bool = False,
    timestamp_ms: int = 1_740_830_400_000,
) -> Any:
    info = pb.MessageInfo(
        MessageSource=source(sender or jid(PHONE), chat=chat, from_me=from_me, is_group=is_group, alt=sender_alt),
        ID="3EB0C0FFEE",
        ServerID=0,
        Type="text",
        Pushname="Ana",
        Timestamp=timestamp_ms,  # neonize sends milliseconds here
        Category="",
        Multicast=False,
        MediaType="",
        Edit="",
    )
    flags = dict.fromkeys(
        ("IsEphemeral", "IsViewOnce", "IsViewOnceV2", "IsViewOnceV2Extension", "IsDocumentWithCaption"), False
    )
    return wire(
        pb.Message(
            Info=info,
            Message=content,
            IsLottieSticker=False,
            IsEdit=False,
            UnavailableRequestID="",
            RetryCount=0,
            **flags,
        )
    )


class Recorder:
    def __init__(self) -> None:
        self.events: list[DriverEvent] = []
        self.arrived = asyncio.Event()

    async def __call__(self, event: DriverEvent) -> None:
        self.events.append(event)
        self.arrived.set()

    async def wait_for(self, kind: type, timeout: float = 10.0) -> Any:
        async def first() -> Any:
            while True:
                for event in self.events:
                    if isinstance(event, kind):
                        return event
                self.arrived.clear()
                await self.arrived.wait()

        return await asyncio.wait_for(first(), timeout)


class FakeClient:
    """Stands in for a running NewAClient where WhatsApp itself would be needed."""

    def __init__(self, *, send_delay: float = 0.0, on_whatsapp: bool = True, account: str | None = None) -> None:
        self.stopped = 0
        self.sent: list[tuple[Any, Any]] = []
        self.paired: list[str] = []
        self.uploads: list[tuple[bytes, Any]] = []
        self.lookups: list[str] = []
        self.presences: list[Any] = []
        self.send_delay = send_delay
        self.on_whatsapp = on_whatsapp
        self.account = account  # the account JID's user when it differs from the number

    async def stop(self) -> None:
        self.stopped += 1

    async def send_message(self, to: Any, message: Any) -> Any:
        await asyncio.sleep(self.send_delay)
        self.sent.append((to, message))
        return pb.SendResponse(ID="3EB0SENT", Timestamp=1_740_830_400)

    async def upload(self, data: bytes, media_type: Any = None) -> Any:
        self.uploads.append((data, media_type))
        return pb.UploadResponse(
            url="https://mmg.whatsapp.net/x",
            DirectPath="/v/x",
            Handle="",
            MediaKey=b"k",
            FileEncSHA256=b"e",
            FileSHA256=b"s",
            FileLength=len(data),
        )

    async def is_on_whatsapp(self, *numbers: str) -> list[Any]:
        self.lookups.extend(numbers)
        return [
            pb.IsOnWhatsAppResponse(Query=n, JID=jid(self.account or n.lstrip("+")), IsIn=self.on_whatsapp)
            for n in numbers
        ]

    async def send_presence(self, presence: Any) -> None:
        self.presences.append(presence)

    async def pair_code(self, phone: str) -> str:
        self.paired.append(phone)
        return "WXYZ1234"


def make_store(path: Path, jids: list[str]) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE whatsmeow_device (jid TEXT PRIMARY KEY)")
        db.executemany("INSERT INTO whatsmeow_device VALUES (?)", [(j,) for j in jids])
    db.close()


@pytest.fixture
def driver(tmp_path: Path) -> nd.NeonizeDriver:
    return nd.NeonizeDriver(tmp_path / "sessions", max_sessions=4)


# -- messages -------------------------------------------------------------------------------------


def test_conversation_maps_to_message_received_with_its_text() -> None:
    event = nd.map_event(message_event(e2e.Message(conversation="hola")))
    assert event == MessageReceived(
        message_id="3EB0C0FFEE",
        sender=PHONE,
        push_name="Ana",
        message_type="conversation",
        text="hola",
        timestamp=datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
        from_me=False,
    )
    assert (event.chat_id, event.sender_lid, event.quoted_message_id, event.media) == (None, None, None, None)


def test_extended_text_maps_to_conversation_with_its_text() -> None:
    content = e2e.Message(extendedTextMessage=e2e.ExtendedTextMessage(text="see https://example.com"))
    event = nd.map_event(message_event(content))
    assert isinstance(event, MessageReceived)
    assert (event.message_type, event.text) == ("conversation", "see https://example.com")


@pytest.mark.parametrize(
    "content",
    [
        e2e.Message(imageMessage=e2e.ImageMessage(caption="a caption is not text", mimetype="image/jpeg")),
        e2e.Message(documentMessage=e2e.DocumentMessage(caption="invoice", fileName="a.pdf")),
        e2e.Message(audioMessage=e2e.AudioMessage(PTT=True, seconds=3)),
        e2e.Message(videoMessage=e2e.VideoMessage(caption="clip", seconds=5)),
    ],
    ids=["imageMessage", "documentMessage", "audioMessage", "videoMessage"],
)
def test_media_message_maps_to_its_type_with_text_none(content: Any, request: pytest.FixtureRequest) -> None:
    event = nd.map_event(message_event(content))
    assert isinstance(event, MessageReceived)
    assert event.message_type == request.node.callspec.id
    assert event.text is None


def test_an_inbound_caption_is_kept_apart_from_the_text() -> None:
    content = e2e.Message(imageMessage=e2e.ImageMessage(caption="look at this", mimetype="image/jpeg"))
    event = nd.map_event(message_event(content))
    assert isinstance(event, MessageReceived)
    assert (event.text, event.caption) == (None, "look at this")


def test_empty_media_submessage_is_detected_by_presence_not_truthiness() -> None:
    # An image whose every field is empty is falsy-looking but present.
    event = nd.map_event(message_event(e2e.Message(imageMessage=e2e.ImageMessage())))
    assert isinstance(event, MessageReceived)
    assert event.message_type == "imageMessage"


def test_empty_conversation_is_still_a_text_message() -> None:
    event = nd.map_event(message_event(e2e.Message(conversation="")))
    assert isinstance(event, MessageReceived)
    assert (event.message_type, event.text) == ("conversation", "")


def test_ephemeral_wrapper_is_unwrapped() -> None:
    inner = e2e.Message(conversation="disappearing")
    content = e2e.Message(ephemeralMessage=e2e.FutureProofMessage(message=inner))
    event = nd.map_event(message_event(content))
    assert isinstance(event, MessageReceived)
    assert event.text == "disappearing"


def test_own_message_is_flagged_from_me() -> None:
    event = nd.map_event(message_event(e2e.Message(conversation="sent from my phone"), from_me=True))
    assert isinstance(event, MessageReceived)
    assert event.from_me is True


@pytest.mark.parametrize(
    "content",
    [
        e2e.Message(protocolMessage=e2e.ProtocolMessage(type=e2e.ProtocolMessage.HISTORY_SYNC_NOTIFICATION)),
        e2e.Message(messageContextInfo=e2e.MessageContextInfo()),
        e2e.Message(),
    ],
    ids=["housekeeping", "context-only", "empty"],
)
def test_messages_without_content_map_to_none(content: Any) -> None:
    assert nd.map_event(message_event(content)) is None


def test_status_broadcasts_and_newsletters_are_skipped() -> None:
    text = e2e.Message(conversation="my status")
    assert nd.map_event(message_event(text, chat=jid("status", "broadcast"))) is None
    assert nd.map_event(message_event(text, chat=jid("1203631", "newsletter"))) is None


def test_lid_sender_is_reported_by_its_phone_number() -> None:
    event = nd.map_event(
        message_event(e2e.Message(conversation="hi"), sender=jid("123456789012345", "lid"), sender_alt=jid(PHONE))
    )
    assert isinstance(event, MessageReceived)
    assert event.sender == PHONE


# -- receipts -------------------------------------------------------------------------------------


def receipt_event(kind: int, ids: list[str], *, from_me: bool = False) -> Any:
    return wire(
        pb.Receipt(
            MessageSource=source(jid(PHONE), from_me=from_me), MessageIDs=ids, Timestamp=1_740_830_460, Type=kind
        )
    )


def test_delivered_receipt_lists_every_message_id() -> None:
    event = nd.map_event(receipt_event(pb.Receipt.DELIVERED, ["A1", "B2", "C3"]))
    assert event == Receipt(
        message_ids=("A1", "B2", "C3"), status="delivered", timestamp=datetime(2025, 3, 1, 12, 1, tzinfo=UTC)
    )


def test_read_receipt_with_several_ids_maps_to_read() -> None:
    event = nd.map_event(receipt_event(pb.Receipt.READ, ["A1", "B2"]))
    assert isinstance(event, Receipt)
    assert (event.status, event.message_ids) == ("read", ("A1", "B2"))


def test_played_voice_note_counts_as_read() -> None:
    event = nd.map_event(receipt_event(pb.Receipt.PLAYED, ["A1"]))
    assert isinstance(event, Receipt)
    assert event.status == "read"


def test_receipts_that_say_nothing_about_the_recipient_are_skipped() -> None:
    assert nd.map_event(receipt_event(pb.Receipt.RETRY, ["A1"])) is None
    assert nd.map_event(receipt_event(pb.Receipt.READ_SELF, ["A1"])) is None
    assert nd.map_event(receipt_event(pb.Receipt.DELIVERED, ["A1"], from_me=True)) is None


# -- connection events ----------------------------------------------------------------------------


def test_connected_reports_own_phone_digits() -> None:
    assert nd.map_event(wire(pb.Connected(status=True)), own_phone=PHONE) == Connected(phone_number=PHONE)


def test_logged_out_maps_to_disconnected_logged_out() -> None:
    event = nd.map_event(wire(pb.LoggedOut(OnConnect=True, Reason=pb.LOGGED_OUT)))
    assert isinstance(event, Disconnected)
    assert event.logged_out is True
    assert "logged_out" in event.reason


def test_stream_replaced_maps_to_disconnected_not_logged_out() -> None:
    event = nd.map_event(wire(pb.StreamReplaced()))
    assert isinstance(event, Disconnected)
    assert event.logged_out is False
    assert "replaced" in event.reason


def test_plain_disconnect_is_not_a_logout() -> None:
    assert nd.map_event(wire(pb.Disconnected(status=True))) == Disconnected(reason="connection lost")


def test_temporary_ban_expires_after_its_duration() -> None:
    ban = wire(pb.TemporaryBan(Code=pb.TemporaryBan.SEND_TO_TOO_MANY_PEOPLE, Expire=3600))
    assert nd.map_event(ban, now=NOW) == Banned(reason="send_to_too_many_people", expires_at=NOW + timedelta(hours=1))


def test_temporary_ban_without_duration_has_no_expiry() -> None:
    event = nd.map_event(wire(pb.TemporaryBan(Code=pb.TemporaryBan.BLOCKED_BY_USERS, Expire=0)), now=NOW)
    assert event == Banned(reason="blocked_by_users", expires_at=None)


def test_connect_failure_for_a_logout_reason_is_a_logout() -> None:
    event = nd.map_event(wire(pb.ConnectFailure(Reason=pb.LOGGED_OUT, Message="401", Raw=pb.Node(Tag="failure"))))
    assert isinstance(event, Disconnected)
    assert event.logged_out is True


@pytest.mark.parametrize(("reason", "called"), [(pb.MAIN_DEVICE_GONE, "locked"), (pb.UNKNOWN_LOGOUT, "banned")])
def test_logouts_for_403_and_406_are_reported_as_bans(reason: int, called: str) -> None:
    # whatsmeow delivers 403 (LOCKED in WhatsApp Web) and 406 (BANNED) as LoggedOut.
    assert nd.map_event(wire(pb.LoggedOut(OnConnect=True, Reason=reason))) == Banned(reason=called, expires_at=None)
    failure = wire(pb.ConnectFailure(Reason=reason, Message="", Raw=pb.Node(Tag="failure")))
    assert nd.map_event(failure) == Banned(reason=called, expires_at=None)


def test_connect_failure_for_a_server_problem_is_not_a_logout() -> None:
    event = nd.map_event(
        wire(pb.ConnectFailure(Reason=pb.SERVICE_UNAVAILABLE, Message="503", Raw=pb.Node(Tag="failure")))
    )
    assert isinstance(event, Disconnected)
    assert event.logged_out is False


def test_events_we_do_not_report_map_to_none() -> None:
    assert nd.map_event(wire(pb.KeepAliveTimeout(ErrorCount=1, LastSuccess=1_740_830_400))) is None
    assert (
        nd.map_event(
            wire(pb.PairStatus(ID=jid(PHONE), BusinessName="", Platform="android", Status=pb.PairStatus.SUCCESS))
        )
        is None
    )


# -- errors, pairing codes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (TimeoutError(), OutcomeUnknownError),
        (exc_module.SendMessageError("timed out waiting for message send response"), OutcomeUnknownError),
        # whatsmeow fails these before the message is written: retried, never "outcome unknown".
        (exc_module.SendMessageError("failed to get LID for PN 549111: info query timed out"), TransientDriverError),
        (
            exc_module.SendMessageError("websocket disconnected before info query returned response"),
            TransientDriverError,
        ),
        (exc_module.SendMessageError("failed to get device list: info query timed out"), TransientDriverError),
        (exc_module.SendMessageError("client is nil"), TransientDriverError),
        (exc_module.SendMessageError("failed to send message node: websocket not connected"), TransientDriverError),
        (exc_module.NeonizeError("failed to dial whatsapp web websocket: i/o timeout"), TransientDriverError),
        (ConnectionResetError("peer went away"), TransientDriverError),
        (exc_module.UploadError("upload returned 500"), TransientDriverError),
        (exc_module.SendMessageError("not logged in"), NotLinkedError),
    ],
)
def test_classify_error_maps_to_our_tree(raised: Exception, expected: type[DriverError]) -> None:
    assert type(nd.classify_error(raised, sending=True)) is expected


def test_a_timeout_outside_a_send_is_only_transient() -> None:
    assert type(nd.classify_error(TimeoutError())) is TransientDriverError


def test_classify_error_keeps_other_errors_generic_with_the_cause_in_the_message() -> None:
    error = nd.classify_error(exc_module.SendMessageError("server returned error 479"))
    assert type(error) is DriverError
    assert "479" in str(error)
    assert "SendMessageError" in str(error)


def test_classify_error_passes_driver_errors_through() -> None:
    original = NotLinkedError("no device")
    assert nd.classify_error(original) is original


@pytest.mark.parametrize("raw", ["ABCDEFGH", "abcd-efgh", "ABCD EFGH"])
def test_pairing_code_is_formatted_in_two_groups_of_four(raw: str) -> None:
    assert nd.format_pairing_code(raw) == "ABCD-EFGH"


def test_pairing_code_of_the_wrong_length_is_rejected() -> None:
    with pytest.raises(DriverError):
        nd.format_pairing_code("ABC-123")


def test_store_is_one_sqlite_file_per_instance(driver: nd.NeonizeDriver) -> None:
    assert driver.store_path("acme__shop1__sales") == driver.sessions_dir / "acme__shop1__sales.sqlite3"


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden"])
def test_instance_names_that_are_not_file_names_are_refused(driver: nd.NeonizeDriver, name: str) -> None:
    with pytest.raises(ValueError):
        driver.store_path(name)


def test_fresh_session_is_not_linked(driver: nd.NeonizeDriver) -> None:
    assert driver.session("acme__shop1__sales", Recorder()).linked is False


def test_store_without_device_row_is_not_linked(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite3"
    make_store(store, [])
    assert nd.store_has_device(store) is False


def test_store_with_device_row_is_linked_and_knows_its_phone(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite3"
    make_store(store, [f"{PHONE}:12@s.whatsapp.net"])
    assert nd.store_has_device(store) is True
    assert nd.store_phone(store) == PHONE


def test_store_that_is_not_a_database_is_not_linked(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite3"
    store.write_bytes(b"definitely not sqlite" * 100)
    assert nd.store_has_device(store) is False


def test_remove_store_deletes_the_database_and_its_side_files(driver: nd.NeonizeDriver) -> None:
    path = driver.store_path("acme__shop1__sales")
    path.parent.mkdir(parents=True)
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    for file in files:
        file.write_bytes(b"x")
    driver.remove_store("acme__shop1__sales")
    assert [file.exists() for file in files] == [False, False, False]


def test_remove_store_of_an_unknown_instance_is_a_no_op(driver: nd.NeonizeDriver) -> None:
    driver.remove_store("nobody")
    assert not driver.store_path("nobody").exists()


async def test_remove_store_is_refused_while_the_session_is_open(driver: nd.NeonizeDriver) -> None:
    session = driver.session("acme__shop1__sales", Recorder())
    with pytest.raises(DriverError):
        driver.remove_store("acme__shop1__sales")
    await session.close()
    driver.remove_store("acme__shop1__sales")


async def test_driver_refuses_more_sessions_than_it_is_sized_for(tmp_path: Path) -> None:
    driver = nd.NeonizeDriver(tmp_path, max_sessions=1)
    first = driver.session("one", Recorder())
    with pytest.raises(TransientDriverError):
        driver.session("two", Recorder())
    await first.close()
    await driver.session("two", Recorder()).close()


# -- sessions on real (offline) neonize clients ---------------------------------------------------


def in_child_session(driver: nd.NeonizeDriver, sink: Any, name: str = "acme__shop1__sales", **options: Any) -> Any:
    """The session as its session host runs it (here in the test process, on offline clients)."""
    return nd.NeonizeSession(name, driver.store_path(name), sink, **options)


async def test_session_builds_a_client_on_its_store_and_tears_it_down(driver: nd.NeonizeDriver) -> None:
    session = in_child_session(driver, Recorder())
    client = session._new_client()
    other = session._new_client()
    assert client.name == str(driver.store_path("acme__shop1__sales"))
    # A unique Go-side id: a collected client's finalizer must not stop a newer one.
    assert client.uuid != other.uuid
    assert client.uuid != client.name.encode()
    registered = set(client.event.list_func)
    codes = _import("neonize.events").EVENT_TO_INT
    assert {codes[pb.Connected], codes[pb.Message], codes[pb.Receipt], codes[pb.LoggedOut]} <= registered
    session._client = client
    await session.close()
    assert session._client is None


async def test_handler_exceptions_are_logged_not_lost(
    driver: nd.NeonizeDriver, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken_sink(event: DriverEvent) -> None:
        raise RuntimeError("sink exploded")

    session = in_child_session(driver, broken_sink)
    client = session._new_client()
    session._client = client
    driver.sessions_dir.mkdir(parents=True, exist_ok=True)
    make_store(driver.store_path("acme__shop1__sales"), [f"{PHONE}@s.whatsapp.net"])
    handler = client.event.list_func[_import("neonize.events").EVENT_TO_INT[pb.Connected]]
    with caplog.at_level(logging.ERROR, logger="scheduler.drivers.neonize"):
        await handler(client, wire(pb.Connected(status=True)))  # must not raise
    assert any(r.exc_info and "sink exploded" in str(r.exc_info[1]) for r in caplog.records)
    session._client = None
    await session.close()


async def test_handlers_run_one_at_a_time_in_arrival_order(driver: nd.NeonizeDriver) -> None:
    # Connected reads the store in a thread before telling the sink; a message that arrived after
    # it must still reach the sink after it (message.received never overtakes instance.connected).
    sink = Recorder()
    session = in_child_session(driver, sink)
    client = FakeClient()
    session._client = client
    driver.sessions_dir.mkdir(parents=True, exist_ok=True)
    make_store(driver.store_path("acme__shop1__sales"), [f"{PHONE}:3@s.whatsapp.net"])
    connected = nd.guard(session._on_connected, "connected", session._order)
    message = nd.guard(session._on_event, "message", session._order)
    first = asyncio.create_task(connected(client, wire(pb.Connected(status=True))))
    second = asyncio.create_task(message(client, message_event(e2e.Message(conversation="hi"))))
    await asyncio.gather(first, second)
    assert [type(e) for e in sink.events] == [Connected, MessageReceived]
    session._client = None
    await session.close()


async def test_offline_connect_creates_the_store_unlinked_and_reports_the_failure(tmp_path: Path) -> None:
    # A refused proxy makes the dial fail at once, with or without internet.
    driver = nd.NeonizeDriver(tmp_path, max_sessions=2, proxy="socks5://127.0.0.1:9")
    sink = Recorder()
    session = driver.session("acme__shop1__sales", sink)
    await session.connect()
    event = await sink.wait_for(Disconnected, timeout=30)
    assert "connection refused" in event.reason
    with sqlite3.connect(driver.store_path("acme__shop1__sales")) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.close()
    assert "whatsmeow_device" in tables
    assert session.linked is False
    await session.close()
    driver.close()


# -- QR cycle, pairing, sending -------------------------------------------------------------------


def qr_session(driver: nd.NeonizeDriver, sink: Recorder, **options: Any) -> tuple[nd.NeonizeSession, FakeClient]:
    session = in_child_session(driver, sink, **options)
    client = FakeClient()
    session._client = client
    return session, client


async def test_qr_codes_carry_their_expiry_and_each_resets_the_deadline(driver: nd.NeonizeDriver) -> None:
    sink = Recorder()
    session, client = qr_session(driver, sink, qr_first_ttl=60, qr_next_ttl=20, qr_grace=5)
    loop = asyncio.get_running_loop()
    before = datetime.now(UTC)
    await session._on_qr(client, b"2@first")
    first_deadline = session.qr_deadline
    assert first_deadline == pytest.approx(loop.time() + 65, abs=1)
    await session._on_qr(client, b"2@second")
    assert session.qr_deadline == pytest.approx(loop.time() + 25, abs=1)
    first, second = sink.events
    assert isinstance(first, QrCode) and isinstance(second, QrCode)
    assert first.code == "2@first"
    assert first.expires_at - before == pytest.approx(timedelta(seconds=60), abs=timedelta(seconds=1))
    assert second.expires_at - before == pytest.approx(timedelta(seconds=20), abs=timedelta(seconds=1))
    await session.close()


async def test_qr_cycle_without_new_codes_expires_and_ends_the_session(driver: nd.NeonizeDriver) -> None:
    sink = Recorder()
    ended: list[bool] = []

    async def on_ended(reconnect: bool) -> None:
        ended.append(reconnect)

    session, client = qr_session(driver, sink, qr_first_ttl=0.05, qr_next_ttl=0.05, qr_grace=0, on_ended=on_ended)
    await session._on_qr(client, b"2@only")
    await sink.wait_for(QrExpired, timeout=5)
    assert [type(e) for e in sink.events] == [QrCode, QrExpired]
    assert client.stopped == 1
    assert session._client is None
    assert ended == [False]  # its host is ended: the Go call stuck in FetchMe goes with it


async def test_whatsmeow_running_out_of_codes_expires_the_qr_at_once(driver: nd.NeonizeDriver) -> None:
    # whatsmeow's "timeout" login event comes through the login-status callback neonize ignores;
    # the QR cycle ends then, not a grace period after the last code's own expiry.
    sink = Recorder()
    session, client = qr_session(driver, sink, qr_first_ttl=60, qr_next_ttl=20, qr_grace=5)
    await session._on_qr(client, b"2@last")
    real = session._new_client()
    status = ctypes.create_string_buffer(b"timeout")
    session._client = real
    heard: list[str] = []
    real.login_status = heard.append
    real._NewAClient__onLoginStatus(0, ctypes.addressof(status))
    assert heard == ["timeout"]
    session._client = client
    started = time.monotonic()
    session._on_login_status(client, "timeout")
    await sink.wait_for(QrExpired, timeout=5)
    assert time.monotonic() - started < 1
    assert client.stopped == 1


async def test_a_linking_attempt_that_never_gets_a_qr_ends_by_its_deadline(driver: nd.NeonizeDriver) -> None:
    sink = Recorder()
    session, client = qr_session(driver, sink, qr_first_ttl=0.05, qr_grace=0)
    session._arm_qr_timer(0.05)  # what connect() arms for an unlinked store
    await sink.wait_for(QrExpired, timeout=5)
    assert client.stopped == 1


async def test_connected_cancels_the_qr_deadline_and_announces_presence(driver: nd.NeonizeDriver) -> None:
    sink = Recorder()
    session, client = qr_session(driver, sink, qr_first_ttl=60, qr_next_ttl=20, qr_grace=5)
    driver.sessions_dir.mkdir(parents=True, exist_ok=True)
    make_store(driver.store_path("acme__shop1__sales"), [f"{PHONE}:3@s.whatsapp.net"])
    await session._on_qr(client, b"2@code")
    await session._on_connected(client, wire(pb.Connected(status=True)))
    assert session.qr_deadline is None
    assert sink.events[-1] == Connected(phone_number=PHONE)
    await asyncio.gather(*session._background)
    assert client.presences == [_import("neonize.utils.enum").Presence.AVAILABLE]
    await session.close()


async def test_pair_phone_without_a_qr_is_a_transient_error(driver: nd.NeonizeDriver) -> None:
    session, client = qr_session(driver, Recorder(), pair_qr_wait=0.01)
    session._task = asyncio.get_running_loop().create_future()
    with pytest.raises(TransientDriverError):
        await session.pair_phone(PHONE)
    assert client.paired == []
    session._task = None
    await session.close()


async def test_pair_phone_after_the_first_qr_returns_a_formatted_code(driver: nd.NeonizeDriver) -> None:
    session, client = qr_session(driver, Recorder())
    session._task = asyncio.get_running_loop().create_future()
    await session._on_qr(client, b"2@code")
    assert await session.pair_phone("+54 9 11 1234-5678") == "WXYZ-1234"
    assert client.paired == [PHONE]
    session._task = None
    await session.close()


def test_pairing_display_name_is_in_whatsmeow_browser_os_form() -> None:
    assert re.fullmatch(r"[A-Z][a-z]+ \([A-Z][a-z]+\)", nd.PAIRING_DISPLAY_NAME)


async def test_send_when_not_connected_is_transient(driver: nd.NeonizeDriver) -> None:
    session = driver.session("acme__shop1__sales", Recorder())
    with pytest.raises(TransientDriverError):
        await session.send(OutgoingMessage(to=PHONE, type="text", text="hi"))
    await session.close()


async def test_send_text_sends_a_plain_conversation_to_the_looked_up_jid(driver: nd.NeonizeDriver) -> None:
    session, client = qr_session(driver, Recorder())
    session._connected = True
    result = await session.send(OutgoingMessage(to=PHONE, type="text", text="hola @123"))
    assert result == SendResult(message_id="3EB0SENT", sent_at=datetime(2025, 3, 1, 12, tzinfo=UTC))
    ((to, message),) = client.sent
    assert (to.User, to.Server) == (PHONE, "s.whatsapp.net")
    assert message.HasField("conversation") and message.conversation == "hola @123"
    await session.close()


async def test_recipients_are_looked_up_with_a_plus_and_sent_to_the_account_jid(driver: nd.NeonizeDriver) -> None:
    # Mexico: the account of +52 1 55... is 52 55... (no "1"); sending to the digits goes nowhere.
    session, client = qr_session(driver, Recorder())
    client.account = "525512345678"
    session._connected = True
    assert await session.check_numbers(["5215512345678"]) == {
        "5215512345678": Account(number="525512345678", lid=None, jid="525512345678@s.whatsapp.net")
    }
    await session.send(OutgoingMessage(to="5215512345678", type="text", text="hola"))
    assert client.lookups == ["+5215512345678"]  # asked once: the answer is cached per recipient
    ((to, _),) = client.sent
    assert to.User == "525512345678"
    await session.close()


async def test_a_number_whatsapp_knows_nothing_about_is_not_on_whatsapp(driver: nd.NeonizeDriver) -> None:
    session, client = qr_session(driver, Recorder())
    session._connected = True

    async def nothing(*numbers: str) -> list[Any]:
        raise exc_module.IsOnWhatsAppError("Function returned nothing.")

    client.is_on_whatsapp = nothing  # type: ignore[method-assign]
    assert await session.check_numbers(["123"]) == {"123": None}
    with pytest.raises(NotOnWhatsAppError):
        await session.send(OutgoingMessage(to="123", type="text", text="hi"))
    await session.close()


async def test_check_numbers_reports_what_whatsapp_says(driver: nd.NeonizeDriver) -> None:
    session, _ = qr_session(driver, Recorder())
    session._connected = True
    assert await session.check_numbers([PHONE]) == {PHONE: Account(PHONE, None, f"{PHONE}@s.whatsapp.net")}
    session._client = FakeClient(on_whatsapp=False)
    assert await session.check_numbers(["5491100000001"]) == {"5491100000001": None}
    await session.close()


def png(width: int = 640, height: int = 480) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


async def test_send_image_uploads_the_bytes_with_a_thumbnail_and_the_caption(driver: nd.NeonizeDriver) -> None:
    session, client = qr_session(driver, Recorder())
    session._connected = True
    data = png()
    await session.send(OutgoingMessage(to=PHONE, type="image", media=data, caption="look"))
    assert [upload[0] for upload in client.uploads] == [data]
    ((_, message),) = client.sent
    image = message.imageMessage
    assert (image.caption, image.mimetype, image.width, image.height) == ("look", "image/png", 640, 480)
    assert image.fileLength == len(data) and image.URL
    thumbnail = Image.open(io.BytesIO(image.JPEGThumbnail))
    assert thumbnail.format == "JPEG" and max(thumbnail.size) <= 72
    await session.close()


async def test_send_media_without_bytes_is_refused(driver: nd.NeonizeDriver) -> None:
    session, client = qr_session(driver, Recorder())
    session._connected = True
    with pytest.raises(DriverError):
        await session.send(OutgoingMessage(to=PHONE, type="video", media_url="https://example.com/v.mp4"))
    assert client.sent == []
    await session.close()


async def test_send_that_times_out_has_an_unknown_outcome(driver: nd.NeonizeDriver) -> None:
    session = in_child_session(driver, Recorder(), name="x", send_timeout=0.01)
    session._client = FakeClient(send_delay=5)
    session._connected = True
    with pytest.raises(OutcomeUnknownError):
        await session.send(OutgoingMessage(to=PHONE, type="text", text="hi"))
    await session.close()


async def test_a_send_failing_before_the_message_left_is_transient(driver: nd.NeonizeDriver) -> None:
    session, client = qr_session(driver, Recorder())
    session._connected = True

    async def lid_lookup_timed_out(to: Any, message: Any) -> Any:
        raise exc_module.SendMessageError("failed to get LID for PN 5491112345678: info query timed out")

    client.send_message = lid_lookup_timed_out  # type: ignore[method-assign]
    with pytest.raises(TransientDriverError):
        await session.send(OutgoingMessage(to=PHONE, type="text", text="hi"))
    await session.close()


async def test_logout_event_stops_the_client_before_telling_the_sink(driver: nd.NeonizeDriver) -> None:
    seen: list[tuple[DriverEvent, int]] = []
    client = FakeClient()

    async def sink(event: DriverEvent) -> None:
        seen.append((event, client.stopped))

    session = in_child_session(driver, sink, name="x")
    session._client = client
    session._connected = True
    await session._on_event(client, wire(pb.LoggedOut(OnConnect=False, Reason=pb.LOGGED_OUT)))
    ((event, stopped_before_sink),) = seen
    assert isinstance(event, Disconnected) and event.logged_out
    assert stopped_before_sink == 1
    assert session.connected is False


@pytest.mark.parametrize("reason", [pb.GENERIC, pb.BAD_USER_AGENT, pb.EXPERIMENTAL])
async def test_a_connect_failure_whatsmeow_does_not_retry_ends_the_session(
    driver: nd.NeonizeDriver, reason: int
) -> None:
    # 400, 409, 501: whatsmeow stays down. The session ends (its host with it), so the next
    # connect() starts afresh instead of finding a half-dead client and doing nothing.
    sink = Recorder()
    ended: list[bool] = []

    async def on_ended(reconnect: bool) -> None:
        ended.append(reconnect)

    session, client = qr_session(driver, sink, on_ended=on_ended)
    session._connected = True
    failure = wire(pb.ConnectFailure(Reason=reason, Message="failure", Raw=pb.Node(Tag="failure")))
    await session._on_event(client, failure)
    await asyncio.gather(*session._background)
    assert client.stopped == 1
    assert isinstance(sink.events[-1], Disconnected)
    assert ended == [False]


async def test_a_run_that_returns_by_itself_ends_the_session_for_a_reconnect(driver: nd.NeonizeDriver) -> None:
    # The shim's event loop returns when it cannot encode an event (a receipt type or failure code
    # it does not map): Neonize() returns an error, events stop. The session ends asking to be
    # connected again from its store.
    sink = Recorder()
    ended: list[bool] = []

    async def on_ended(reconnect: bool) -> None:
        ended.append(reconnect)

    session, client = qr_session(driver, sink, on_ended=on_ended)
    session._connected = True
    run: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    run.set_exception(exc_module.NeonizeError("proto: required field Type not set"))
    session._task = run
    session._on_run_done(client, run)
    event = await sink.wait_for(Disconnected)
    await asyncio.gather(*session._background)
    assert "required field" in event.reason
    assert ended == [True]


async def test_a_lid_sender_without_its_number_is_resolved_through_the_lid_store(driver: nd.NeonizeDriver) -> None:
    sink = Recorder()
    session, client = qr_session(driver, sink)
    asked: list[Any] = []

    async def get_pn_from_lid(lid: Any) -> Any:
        asked.append(lid.User)
        return jid(PHONE)

    client.get_pn_from_lid = get_pn_from_lid  # type: ignore[attr-defined]
    lid = jid("123456789012345", "lid")
    await session._on_event(client, message_event(e2e.Message(conversation="hola"), sender=lid, chat=lid))
    assert asked == ["123456789012345"]
    received = sink.events[-1]
    assert isinstance(received, MessageReceived) and received.sender == PHONE


# -- session stores in PostgreSQL -----------------------------------------------------------------

# A PostgreSQL these tests may create (and drop) schemas in; they skip when it is unreachable.
PG_URL = os.environ.get("WA_GATEWAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def test_schema_per_instance_is_a_short_identifier_unique_per_exact_name() -> None:
    names = ["acme__shop1__sales", "Shop-1", "shop_1", "x" * 200]
    schemas = [nd.store_schema(name) for name in names]
    assert len(set(schemas)) == len(names)
    assert schemas[0].startswith("wa_acme__shop1__sales_")
    assert all(len(schema) <= 38 and schema.replace("_", "").isalnum() and schema.islower() for schema in schemas)
    assert nd.store_schema("Shop-1") == nd.store_schema("Shop-1")


def test_client_url_puts_the_schema_on_the_search_path_and_names_the_connections() -> None:
    url = nd.client_url(
        "postgresql://gw:p%40ss@db.internal:5433/wa?search_path=public&application_name=x", "wa_a_0123456789", "c" * 32
    )
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("postgresql", "gw:p%40ss@db.internal:5433", "/wa")
    query = parse_qs(parts.query)
    assert query["search_path"] == ["wa_a_0123456789"]
    assert query["application_name"] == ["wa-gateway wa_a_0123456789 cccccccccccc"]
    assert query["sslmode"] == ["prefer"]  # libpq's default; lib/pq's own would be "require"
    given = parse_qs(urlsplit(nd.client_url("postgres://h/db?sslmode=verify-full", "s", "c")).query)
    assert given["sslmode"] == ["verify-full"]
    longest = _application_name(nd.store_schema("x" * 200), uuid.uuid4().hex)
    assert len(longest) <= 63  # PostgreSQL cuts longer names, and the cut would mix up instances


def test_database_url_without_psycopg_names_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now raises ImportError
    with pytest.raises(RuntimeError, match=r"GATEWAY_SESSION_DATABASE_URL.*wa-gateway\[postgres\]"):
        nd.NeonizeDriver(tmp_path, max_sessions=1, database_url=PG_URL)


def test_session_database_url_setting_must_be_postgres() -> None:
    with pytest.raises(SettingsError, match="GATEWAY_SESSION_DATABASE_URL"):
        load_settings({"GATEWAY_SESSION_DATABASE_URL": "mysql://db/wa"})
    assert load_settings({}).session_database_url is None
    url = "postgres://gw@db/wa"
    assert load_settings({"GATEWAY_SESSION_DATABASE_URL": url}).session_database_url == url


def test_make_driver_hands_the_database_url_to_the_neonize_driver(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    settings = load_settings({}, data_dir=tmp_path, session_database_url=PG_URL)
    driver = make_driver(settings, None, "w1")  # type: ignore[arg-type]  # neonize needs no Redis
    assert isinstance(driver, nd.NeonizeDriver) and driver.postgres is not None
    assert driver.postgres.database_url == PG_URL
    assert driver.store("acme__shop1__sales").client_name("c").startswith("postgresql://")


def test_unreachable_database_is_a_transient_error(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    driver = nd.NeonizeDriver(tmp_path, 1, database_url="postgresql://postgres@127.0.0.1:9/none?connect_timeout=2")
    with pytest.raises(TransientDriverError, match="unreachable"):
        driver.store("acme__shop1__sales").has_device()


class Postgres:
    """The test database, through psycopg, plus the instance names a test used (dropped after it)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.run = uuid.uuid4().hex[:8]
        self.used: list[str] = []

    def name(self, suffix: str) -> str:
        name = f"pgtest-{self.run}-{suffix}"
        self.used.append(name)
        return name

    def tables(self, instance_name: str) -> set[str]:
        rows = self.conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (nd.store_schema(instance_name),),
        )
        return {row[0] for row in rows}

    def schema_exists(self, instance_name: str) -> bool:
        row = self.conn.execute("SELECT to_regnamespace(%s) IS NOT NULL", (nd.store_schema(instance_name),)).fetchone()
        return bool(row[0])

    def connections(self, instance_name: str) -> int:
        prefix = _application_name(nd.store_schema(instance_name))
        row = self.conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE left(application_name, char_length(%(p)s)) = %(p)s",
            {"p": prefix},
        ).fetchone()
        return int(row[0])

    def insert_device(self, instance_name: str, jid: str) -> None:
        """A device row as whatsmeow writes it once a phone has linked the session."""
        sql = _psycopg().sql
        self.conn.execute(
            sql.SQL(
                "INSERT INTO {}.whatsmeow_device (jid, registration_id, noise_key, identity_key, signed_pre_key,"
                " signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details, adv_account_sig, adv_account_sig_key,"
                " adv_device_sig) VALUES (%(jid)s, 1, %(k32)s, %(k32)s, %(k32)s, 1, %(k64)s, %(k32)s, %(k32)s,"
                " %(k64)s, %(k32)s, %(k64)s)"
            ).format(sql.Identifier(nd.store_schema(instance_name))),
            {"jid": jid, "k32": bytes(32), "k64": bytes(64)},
        )


@pytest.fixture
def postgres() -> Any:
    psycopg = pytest.importorskip("psycopg")
    try:
        conn = psycopg.connect(PG_URL, autocommit=True, connect_timeout=2)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {PG_URL}: {exc}")
    db = Postgres(conn)
    try:
        yield db
    finally:
        for name in db.used:
            conn.execute(
                psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    psycopg.sql.Identifier(nd.store_schema(name))
                )
            )
        conn.close()


@pytest.fixture
def pg_driver(tmp_path: Path, postgres: Postgres) -> Any:
    # A refused proxy makes WhatsApp unreachable at once; the store is set up before that.
    driver = nd.NeonizeDriver(tmp_path, max_sessions=4, database_url=PG_URL, proxy="socks5://127.0.0.1:9")
    yield driver
    driver.close()


async def offline_connect(driver: nd.NeonizeDriver, instance_name: str) -> nd.HostedSession:
    sink = Recorder()
    session = driver.session(instance_name, sink)
    await session.connect()
    event = await sink.wait_for(Disconnected)
    assert "connection refused" in event.reason
    return session


async def eventually(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_two_instances_keep_their_stores_apart_in_one_database(
    pg_driver: nd.NeonizeDriver, postgres: Postgres, tmp_path: Path
) -> None:
    one, two = postgres.name("one"), postgres.name("two")
    fresh = pg_driver.session(one, Recorder())
    assert fresh.linked is False  # not even a schema yet
    await fresh.close()
    first = await offline_connect(pg_driver, one)
    second = await offline_connect(pg_driver, two)  # the second schema is where whatsmeow alone would fail
    for name in (one, two):
        assert {"whatsmeow_version", "whatsmeow_device", "whatsmeow_sessions"} <= postgres.tables(name)
    assert first.linked is False and second.linked is False
    assert await asyncio.to_thread(os.listdir, tmp_path) == []  # no sqlite files
    # neonize leaves each stopped client's connections open; the session ends them.
    assert await eventually(lambda: postgres.connections(one) == 0 and postgres.connections(two) == 0)
    await first.close()
    await second.close()
    # Another worker (another machine) picks the instance up from the same database.
    other = nd.NeonizeDriver(tmp_path / "other", max_sessions=1, database_url=PG_URL, proxy="socks5://127.0.0.1:9")
    again = await offline_connect(other, one)
    assert again.linked is False
    await again.close()
    other.close()


async def test_linked_once_the_instance_schema_holds_a_device(pg_driver: nd.NeonizeDriver, postgres: Postgres) -> None:
    one, two = postgres.name("one"), postgres.name("two")
    for name in (one, two):
        await (await offline_connect(pg_driver, name)).close()
    postgres.insert_device(one, f"{PHONE}:12@s.whatsapp.net")
    first, second = pg_driver.session(one, Recorder()), pg_driver.session(two, Recorder())
    assert first.linked is True and second.linked is False
    assert first.store.phone() == PHONE and second.store.phone() is None
    await first.close()
    await second.close()
    # The own number reaches Connected from the store, as with sqlite (in the session host).
    sink = Recorder()
    inside = nd.NeonizeSession(one, pg_driver.store(one), sink)
    inside._client = client = FakeClient()
    await inside._on_connected(client, wire(pb.Connected(status=True)))
    assert sink.events[-1] == Connected(phone_number=PHONE)
    inside._client = None
    await inside.close()


async def test_remove_store_drops_only_that_instance(pg_driver: nd.NeonizeDriver, postgres: Postgres) -> None:
    one, two = postgres.name("one"), postgres.name("two")
    for name in (one, two):
        await (await offline_connect(pg_driver, name)).close()
    postgres.insert_device(two, f"{PHONE}@s.whatsapp.net")
    session = pg_driver.session(one, Recorder())
    with pytest.raises(DriverError):
        pg_driver.remove_store(one)  # still open
    await session.close()
    pg_driver.remove_store(one)
    assert not postgres.schema_exists(one)
    assert postgres.schema_exists(two) and pg_driver.store(two).has_device()
    pg_driver.remove_store(one)  # already gone: a no-op
    pg_driver.remove_store(postgres.name("never-connected"))


# -- media built without ffprobe ------------------------------------------------------------------


def tone(seconds: float, rate: int = 16000) -> bytes:
    """A WAV whose second half is silent (so the waveform has a shape)."""
    import math
    import struct
    import wave

    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        loud = int(rate * seconds / 2)
        samples = [int(12000 * math.sin(i / 8)) if i < loud else 0 for i in range(int(rate * seconds))]
        wav.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return out.getvalue()


@pytest.fixture
def no_ffprobe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A PATH without ffprobe (nor ffmpeg: the imageio-ffmpeg wheel's binary is used)."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))


async def test_a_voice_note_is_built_with_seconds_waveform_and_the_opus_mimetype(
    driver: nd.NeonizeDriver, no_ffprobe: None
) -> None:
    from scheduler.media import Media, to_voice_note

    voice = await to_voice_note(Media(tone(4.0), "audio/wav"))
    session, client = qr_session(driver, Recorder())
    session._connected = True
    await session.send(OutgoingMessage(to=PHONE, type="audio", media=voice.data, mimetype=voice.mimetype))
    ((_, message),) = client.sent
    audio = message.audioMessage
    assert (audio.mimetype, audio.PTT, audio.seconds) == ("audio/ogg; codecs=opus", True, 4)
    assert len(audio.waveform) == 64
    assert max(audio.waveform[:28]) == 100 and max(audio.waveform[36:]) == 0  # loud, then silent
    assert audio.fileLength == len(voice.data)
    await session.close()


@pytest.fixture
def clip(tmp_path: Path) -> bytes:
    """A 3-second 320x240 MPEG-4 video, made with the ffmpeg the imageio-ffmpeg wheel ships."""
    from scheduler.media import find_ffmpeg

    path = tmp_path / "clip.mp4"
    source = "testsrc=duration=3:size=320x240:rate=10"
    subprocess.run(
        [find_ffmpeg(), "-loglevel", "error", "-f", "lavfi", "-i", source, "-c:v", "mpeg4", str(path)], check=True
    )
    return path.read_bytes()


async def test_a_video_is_built_with_duration_size_and_thumbnail(
    driver: nd.NeonizeDriver, clip: bytes, no_ffprobe: None
) -> None:
    session, client = qr_session(driver, Recorder())
    session._connected = True
    await session.send(OutgoingMessage(to=PHONE, type="video", media=clip, caption="clip"))
    ((_, message),) = client.sent
    video = message.videoMessage
    assert (video.seconds, video.width, video.height, video.caption) == (3, 320, 240, "clip")
    assert Image.open(io.BytesIO(video.JPEGThumbnail)).format == "JPEG"
    await session.close()


async def test_image_decoding_and_thumbnails_run_off_the_event_loop(
    driver: nd.NeonizeDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 12 MP JPEG takes ~150 ms to decode and shrink: never on the loop that carries the events.
    from scheduler.drivers.neonize import builders

    threads: list[str] = []
    profile = builders._image_profile

    def recorded(data: bytes, mimetype: str | None) -> Any:
        threads.append(threading.current_thread().name)
        return profile(data, mimetype)

    monkeypatch.setattr(builders, "_image_profile", recorded)
    session, _ = qr_session(driver, Recorder())
    session._connected = True
    await session.send(OutgoingMessage(to=PHONE, type="image", media=png(), caption="x"))
    assert threads and threads[0] != threading.main_thread().name
    await session.close()
