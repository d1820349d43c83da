"""The message record (scheduler/messages.py `Message`): made fast (`_of`, without the frozen
constructor's writes), it is the record the constructor makes: equal, hashable, frozen, and as
strict about what is missing or unknown."""

from __future__ import annotations

import dataclasses

import pytest

from scheduler.messages import Message


def made() -> Message:
    return Message.new("msg_1", "acme__shop1__n1", "normal", "5491112345678", "text", text="hi", typing_ms=900)


def test_a_record_made_fast_is_the_one_the_constructor_makes() -> None:
    fast = made()
    built = Message(**{field.name: getattr(fast, field.name) for field in dataclasses.fields(Message)})
    assert fast == built and hash(fast) == hash(built)
    assert fast.tenant_id == "acme" and fast.attempts == 0 and fast.caption is None  # defaults filled
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.status = "sent"  # type: ignore[misc]


def test_a_record_read_back_from_its_hash_is_the_same_record() -> None:
    original = made()
    fields = original.stored_fields()
    stored = {str(fields[i]): str(fields[i + 1]) for i in range(0, len(fields), 2)}
    assert "caption" not in stored and "possiblyDuplicated" not in stored  # no value: no field
    assert Message.from_hash(stored) == original


def test_a_record_missing_an_attribute_or_with_an_unknown_one_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="created_ms"):
        Message.from_hash({"id": "msg_1", "instanceName": "acme__shop1__n1"})
    with pytest.raises(TypeError, match="colour"):
        Message.new("msg_1", "acme__shop1__n1", "normal", "5491112345678", "text", colour="red")
