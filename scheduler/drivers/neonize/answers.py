"""Pure helpers: neonize's answers to the conversation actions into the driver interface's shapes
(`IsOnWhatsAppResponse`, `UserInfo`, `ProfilePictureInfo`, `ContactInfo`, `GroupInfo`), and the
JIDs the actions address."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from scheduler.drivers.base import Group, GroupMember, ParticipantResult, Profile
from scheduler.drivers.neonize.mapping import LID_SERVER, digits

# whatsmeow's answers when a profile picture is hidden from us or there is none: no picture.
_NO_PICTURE_MARKERS = ("hidden their profile picture", "doesn't have a profile picture", "item-not-found")
# whatsmeow's answers for a group that does not exist or that we are not in.
_UNKNOWN_GROUP_MARKERS = ("group not found", "not participating", "item-not-found", "forbidden", "not-authorized")
# What the codes WhatsApp answers per participant of a group change mean.
_PARTICIPANT_ERRORS = {
    401: "not authorized: this number is not an admin of the group",
    403: "the number's privacy settings refuse being added: send it the invite link",
    404: "not on WhatsApp",
    408: "the number left the group recently and cannot be added again yet",
    409: "already a participant",
}


def jid_text(jid: Any) -> str:
    return f"{jid.User}@{jid.Server}"


def accounts(numbers: Sequence[str], answers: Iterable[Any]) -> dict[str, Any]:
    """Each number's account JID from `IsOnWhatsApp`'s answers (asked with a `+`), None when it has
    no account or WhatsApp did not answer for it."""
    found = {digits(answer.Query): answer.JID for answer in answers if answer.IsIn and answer.JID.User}
    return {number: found.get(number) for number in numbers}


def profile_of(user_info: Any | None, picture: Any | None, contact: Any | None) -> Profile:
    """A contact's profile: the name it chose (push name), else its business names, else the name in
    the phone's address book; its picture's URL; its about text. None for what it hides."""
    names = []
    if contact is not None and contact.Found:
        names += [contact.PushName, contact.BusinessName]
    if user_info is not None and user_info.HasField("VerifiedName"):
        names.append(user_info.VerifiedName.Details.verifiedName)
    if contact is not None and contact.Found:
        names.append(contact.FullName)
    return Profile(
        name=next((name for name in names if name), None),
        picture_url=(picture.URL or None) if picture is not None else None,
        about=(user_info.Status or None) if user_info is not None else None,
    )


def hidden_picture(error: Exception) -> bool:
    """Whether a `GetProfilePicture` failure only means there is no picture for us to see (neonize
    raises it with the whole answer, whose `Error` says why)."""
    answer = error.args[0] if error.args else None
    text = str(getattr(answer, "Error", None) or error)
    return any(marker in text for marker in _NO_PICTURE_MARKERS)


def unknown_group(error: Exception) -> bool:
    return any(marker in str(error).lower() for marker in _UNKNOWN_GROUP_MARKERS)


def _member(participant: Any) -> GroupMember:
    # A LID-addressed group names members by LID (`JID`) and gives the number apart, when it may.
    jid = participant.JID
    phone = jid if jid.Server != LID_SERVER else participant.PhoneNumber
    return GroupMember(
        phone_number=digits(phone.User) or None, is_admin=participant.IsAdmin or participant.IsSuperAdmin
    )


def group_of(info: Any, own_phone: str) -> Group:
    """Our `Group` from neonize's `GroupInfo`; `own_phone` tells which member we are."""
    members = tuple(_member(participant) for participant in info.Participants)
    return Group(
        group_id=jid_text(info.JID),
        subject=info.GroupName.Name,
        description=info.GroupTopic.Topic or None,
        members=members,
        is_admin=any(member.is_admin and member.phone_number == own_phone for member in members),
    )


def participant_results(
    numbers: Sequence[str], asked: dict[str, Any], answers: Iterable[Any]
) -> list[ParticipantResult]:
    """Each number's outcome of `UpdateGroupParticipants`: `asked` maps the numbers to the account
    JIDs sent (None: not on WhatsApp, not sent); `answers` are WhatsApp's `GroupParticipant`s."""
    errors: dict[str, int] = {}
    for answer in answers:
        for jid in (answer.JID, answer.PhoneNumber):
            if jid.User:
                errors[digits(jid.User)] = answer.Error
    results = []
    for number in numbers:
        jid = asked.get(number)
        if jid is None:
            results.append(ParticipantResult(number=number, ok=False, error="not on WhatsApp"))
            continue
        code = errors.get(digits(jid.User), 0)
        error = _PARTICIPANT_ERRORS.get(code, f"WhatsApp answered {code}") if code else None
        results.append(ParticipantResult(number=number, ok=code == 0, error=error))
    return results
