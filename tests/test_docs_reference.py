"""The documentation's generated references say what the code says: docs/gen_reference.py renders
them again here, and a committed page that differs fails, naming the command that rewrites it."""

from __future__ import annotations

import pytest

from config.settings import ENV_PREFIX, Settings
from docs import gen_reference
from scheduler.events import EVENT_NAMES


@pytest.mark.parametrize("path", sorted(gen_reference.PAGES))
def test_the_committed_reference_is_what_the_code_says(path: str) -> None:
    committed = (gen_reference.ROOT / path).read_text()
    assert committed == gen_reference.PAGES[path](), f"{path} is out of date: run `{gen_reference.COMMAND}`"


def test_every_setting_is_a_row_with_its_description() -> None:
    page = gen_reference.configuration_page()
    for name, field in Settings.model_fields.items():
        assert field.description, f"Settings.{name} has no description for the configuration reference"
        row = next(line for line in page.splitlines() if line.startswith(f"| `{ENV_PREFIX}{name.upper()}` |"))
        assert gen_reference.cell(field.description) in row


def test_a_changed_setting_shows_as_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    before = gen_reference.configuration_page()
    monkeypatch.setattr(Settings.model_fields["queue_limit"], "description", "something else")
    after = gen_reference.configuration_page()
    assert before != after
    assert "| something else |" in after


def test_every_event_has_a_record_and_every_record_a_table() -> None:
    document = gen_reference.served_openapi()
    page = gen_reference.events_page(document)
    assert list(document["webhooks"]) == list(EVENT_NAMES)
    for event, path in document["webhooks"].items():
        data = path["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["data"]
        record = data["$ref"].rsplit("/", 1)[1]
        assert f"| `{event}` | [{record}](#{record.lower()}) |" in page
        assert f"\n## {record}\n" in page
        for field in document["components"]["schemas"][record]["properties"]:
            assert f"| `{field}` |" in page.split(f"\n## {record}\n", 1)[1]


def test_an_event_missing_from_event_names_is_refused() -> None:
    document = gen_reference.served_openapi()
    document["webhooks"]["message.unheard_of"] = document["webhooks"]["message.received"]
    with pytest.raises(ValueError, match=r"message\.unheard_of"):
        gen_reference.events_page(document)


def test_an_event_without_a_record_is_refused() -> None:
    document = gen_reference.served_openapi()
    del document["webhooks"]["instance.qr_expired"]
    with pytest.raises(ValueError, match=r"without a record.*instance\.qr_expired"):
        gen_reference.events_page(document)


def test_every_record_says_what_its_event_means() -> None:
    document = gen_reference.served_openapi()
    for event, path in document["webhooks"].items():
        data = path["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["data"]
        record = document["components"]["schemas"][data["$ref"].rsplit("/", 1)[1]]
        assert record.get("description"), f"the record of {event} has no docstring for the events reference"
