"""File formats: markdown with date headings, JSON Lines, Day One JSON, Persona exports; bad files refused."""

from __future__ import annotations

import json
from datetime import UTC

import pytest

from persona.errors import ValidationError
from persona.importers import detect_and_parse, parse_date, parse_markdown

MARKDOWN = """# My journal

## 2024-03-01
First day. Coffee with Ana.

## Saturday, 2 March 2024
Second day.
### A sub-heading that is not a date
Still the second day.

# March 3, 2024 19:30
Third day, in the evening.
"""


def test_markdown_with_heading_variants():
    items = parse_markdown(MARKDOWN, tz=UTC)
    assert [i.occurred_at.date().isoformat() for i in items] == ["2024-03-01", "2024-03-02", "2024-03-03"]
    assert "A sub-heading that is not a date" in items[1].text and "Still the second day." in items[1].text
    assert items[2].occurred_at.hour == 19 and items[2].occurred_at.tzinfo is not None


def test_markdown_without_dates_is_refused():
    with pytest.raises(ValidationError, match="date headings"):
        parse_markdown("just some text\nwith no headings")


def test_jsonl_and_its_errors():
    good = '{"text": "a", "occurred_at": "2024-03-01T10:00:00+01:00"}\n\n{"text": "b", "date": "2024-03-02"}\n'
    items = detect_and_parse("j.jsonl", good.encode())
    assert [i.text for i in items] == ["a", "b"] and items[0].occurred_at.utcoffset().total_seconds() == 3600
    with pytest.raises(ValidationError, match="line 2"):
        detect_and_parse("j.jsonl", b'{"text": "a", "occurred_at": "2024-03-01"}\n{not json}\n')
    with pytest.raises(ValidationError, match="occurred_at"):
        detect_and_parse("j.jsonl", b'{"text": "a", "occurred_at": "someday"}\n')


def test_day_one_export():
    data = {
        "metadata": {"version": "1.0"},
        "entries": [
            {
                "creationDate": "2024-03-01T08:30:00Z",
                "timeZone": "Europe/Lisbon",
                "text": "Run by the river\\. 5 km\\!",
            },
            {"creationDate": "2024-03-02T08:30:00Z", "photos": [{}]},
        ],
    }
    items = detect_and_parse("Journal.json", json.dumps(data).encode())
    assert len(items) == 1 and items[0].text == "Run by the river. 5 km!"
    assert str(items[0].occurred_at.tzinfo) == "Europe/Lisbon"


def test_persona_export_is_recognised():
    data = {"format": "persona-export/1", "user_id": "x", "nodes": [], "links": []}
    assert detect_and_parse("backup.json", json.dumps(data).encode()) == data


@pytest.mark.parametrize("raw", [b"\xff\xfe\x00garbage", b"[1, 2, 3]", b'{"entries": 5}'])
def test_unreadable_files_are_refused(raw):
    with pytest.raises(ValidationError):
        detect_and_parse("x.json", raw)


def test_parse_date_rejects_non_dates():
    assert parse_date("Groceries") is None and parse_date("") is None
    assert parse_date("2024-02-30") is None
    assert parse_date("12/03/2024", tz=UTC).month == 3  # day first, as most journals outside the US write it


@pytest.mark.parametrize("heading", ["1.", "12:30", "May 4th - 7th", "Chapter 3", "Week 12"])
def test_headings_without_a_full_date_are_not_dates(heading):
    assert parse_date(heading) is None


def test_text_before_the_first_date_is_refused_unless_under_a_title():
    with pytest.raises(ValidationError, match="no date"):
        parse_markdown("A line with no date.\n\n## 2024-03-01\nEntry.")
    items = parse_markdown("# My journal\nWritten in Lisbon.\n\n## 2024-03-01\nEntry.", tz=UTC)
    assert [i.text for i in items] == ["Entry."]
