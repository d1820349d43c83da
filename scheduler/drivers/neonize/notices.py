"""Pure mappings of neonize's call and group notices (`CallOffer`, `GroupInfoEvent`, `JoinedGroup`)
into the driver interface's `CallReceived`, `GroupParticipants` and `GroupUpdated`.

A `CallOffer` carries whatsmeow's `offer` node as `data`: a video call has a `video` child, a group
call a `group-jid` attribute (or a `group_info` child). The caller is `callCreator`, its other
address (phone number or LID) `callCreatorAlt`."""

from __future__ import annotations

from typing import Any

from scheduler.drivers.base import CallReceived, GroupParticipants, GroupUpdated, ParticipantAction
from scheduler.drivers.neonize.mapping import LID_SERVER, digits, from_epoch

_PHONE_SERVERS = ("s.whatsapp.net", "c.us")
# GroupInfoEvent's member lists, by the action they stand for.
_MEMBER_CHANGES: tuple[tuple[str, ParticipantAction], ...] = (
    ("Join", "add"),
    ("Leave", "remove"),
    ("Promote", "promote"),
    ("Demote", "demote"),
)


def member(jid: Any) -> str:
    """A person as group events name them: digits, or `<lid>@lid` when only the LID is known."""
    user = digits(jid.User)
    return f"{user}@{LID_SERVER}" if jid.Server == LID_SERVER else user


def map_call(offer: Any) -> CallReceived:
    meta = offer.basicCallMeta
    creator = meta.callCreator if meta.HasField("callCreator") else getattr(meta, "from")
    alt = meta.callCreatorAlt
    phone, lid = (creator, alt) if creator.Server != LID_SERVER else (alt, creator)
    node = offer.data
    attrs = {attr.name for attr in node.Attrs}
    children = {child.Tag for child in node.Nodes}
    return CallReceived(
        call_id=meta.callID,
        caller=(digits(phone.User) or None) if phone.Server in _PHONE_SERVERS else None,
        caller_lid=(digits(lid.User) or None) if lid.Server == LID_SERVER else None,
        is_video="video" in children,
        is_group="group-jid" in attrs or "group_info" in children,
        timestamp=from_epoch(meta.timestamp),
    )


def map_group_info(event: Any) -> list[GroupParticipants | GroupUpdated]:
    """One notice can carry several changes: each members' change, then the settings' one."""
    group_id = f"{event.JID.User}@{event.JID.Server}"
    by = member(event.Sender) if event.HasField("Sender") and event.Sender.User else None
    found: list[GroupParticipants | GroupUpdated] = [
        GroupParticipants(group_id=group_id, action=action, participants=tuple(member(j) for j in jids), by=by)
        for field, action in _MEMBER_CHANGES
        if (jids := getattr(event, field))
    ]
    settings = {
        "subject": event.Name.Name if event.HasField("Name") else None,
        "description": event.Topic.Topic if event.HasField("Topic") else None,
        "announce": event.Announce.IsAnnounce if event.HasField("Announce") else None,
        "locked": event.Locked.isLocked if event.HasField("Locked") else None,
    }
    if any(value is not None for value in settings.values()):
        found.append(GroupUpdated(group_id=group_id, by=by, **settings))
    return found


def map_joined(event: Any, own_phone: str) -> GroupParticipants:
    """This number was added to a group (or joined it, or created it): an `add` of itself."""
    info = event.GroupInfo
    by = member(event.Sender) if event.HasField("Sender") and event.Sender.User else None
    return GroupParticipants(
        group_id=f"{info.JID.User}@{info.JID.Server}", action="add", participants=(own_phone,), by=by
    )
