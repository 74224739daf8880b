"""Reading journals from files: markdown / plain text with date headings, JSON Lines, Day One JSON, and Persona's
own export (which restores the same graph).

Parsers are pure: bytes in, ``(text, occurred_at)`` items out, or a ``ValidationError`` that says which line or
entry is wrong — before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil import parser as date_parser

from persona.errors import ValidationError
from persona.models import MAX_ENTRY_CHARS
from persona.store.base import EXPORT_FORMAT
from persona.zones import local_zone, localise

MAX_IMPORT_BYTES = 200 * 1024 * 1024
"""Files above 200 MB are refused before reading: split them."""

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_DEFAULT_A = datetime(2000, 1, 1)
_DEFAULT_B = datetime(2001, 2, 2)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{1,2}:\d{2}(:\d{2})?)?")


@dataclass(frozen=True)
class ImportItem:
    """One journal entry read from a file."""

    text: str
    occurred_at: datetime


def local_timezone() -> tzinfo:
    """The machine's time zone, with its rules: a date heading without a zone means the writer's local day."""
    return local_zone()


def parse_date(value: str, *, tz: tzinfo | None = None) -> datetime | None:
    """A date or date-time from a heading or field (``2024-03-01``, ``1 March 2024``, ``Friday, March 1, 2024 9:30``),
    made timezone-aware with ``tz`` when it has no zone; None when ``value`` is not a date."""
    value = value.strip()
    if not value or len(value) > 80 or not re.search(r"\b\d{4}\b", value):
        return None  # a date heading names its year in full: "May 4th - 7th" is not the 4th of May 2007
    dayfirst = not _ISO_DATE.match(value) and "/" in value
    try:
        # Parsed against two different defaults: if they disagree, the text lacked a year, month or day, and
        # dateutil would have filled it in from the default ("## 1." is not the 1st of this month).
        parsed = date_parser.parse(value, dayfirst=dayfirst, default=_DEFAULT_A)
        other = date_parser.parse(value, dayfirst=dayfirst, default=_DEFAULT_B)
    except (ValueError, OverflowError, TypeError):
        return None
    if parsed.date() != other.date():
        return None
    try:
        if parsed.tzinfo is None:
            parsed = localise(parsed, tz or local_timezone())  # the offset of that date, not today's
        parsed.astimezone(UTC)
    except OverflowError:
        raise ValidationError(f"the date {value[:40]!r} is out of range (years 2 to 9998)") from None
    return parsed


def parse_markdown(text: str, *, tz: tzinfo | None = None) -> list[ImportItem]:
    """Entries under date headings (``## 2024-03-01``, ``# March 1, 2024``, ``### 2024-03-01 19:30`` ...).

    A heading that is not a date stays part of the entry's text. Before the first date heading, a title heading
    and the lines under it describe the journal and are not an entry; any other text there has no date, and the
    file is refused rather than that text dropped.
    """
    items: list[ImportItem] = []
    current_date: datetime | None = None
    lines: list[str] = []
    preamble: list[str] = []

    def flush() -> None:
        body = "\n".join(lines).strip()
        if current_date is not None and body:
            items.append(ImportItem(body, current_date))

    for line in text.splitlines():
        heading = _HEADING.match(line)
        when = parse_date(heading.group(2), tz=tz) if heading else None
        if when is not None:
            flush()
            current_date, lines = when, []
        elif current_date is None:
            preamble.append(line)
        else:
            lines.append(line)
    flush()
    if not items and text.strip():
        raise ValidationError("no date headings found: start each entry with a heading like '## 2024-03-01'")
    content = [ln for ln in preamble if ln.strip()]
    if content and not _HEADING.match(content[0]):
        raise ValidationError(f"text before the first date heading has no date: '{content[0][:60]}'")
    return items


def load_json(text: str, *, where: str) -> Any:
    """JSON text as data, or a ``ValidationError`` that says why not: bad syntax, nesting too deep for the parser
    (100,000 ``[``), or a number too long to read (a 5,000-digit integer)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise ValidationError(f"{where} is nested too deeply to be a journal") from None
    except ValueError as exc:  # Python refuses integers of over 4,300 digits
        raise ValidationError(f"{where} is not valid JSON: {' '.join(str(exc).split())[:120]}") from None


def parse_jsonl(text: str, *, tz: tzinfo | None = None) -> list[ImportItem]:
    """One JSON object per line: ``{"text": ..., "occurred_at": ...}`` (``date`` is accepted for ``occurred_at``)."""
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        record = load_json(line, where=f"line {number}")
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise ValidationError(f'line {number} needs a "text" string')
        raw_date = record.get("occurred_at", record.get("date"))
        when = parse_date(str(raw_date), tz=tz) if raw_date is not None else None
        if when is None:
            raise ValidationError(f'line {number} needs an "occurred_at" date, got {raw_date!r}')
        items.append(ImportItem(record["text"], when))
    return items


def parse_day_one(data: dict[str, Any]) -> list[ImportItem]:
    """Day One's JSON export: ``{"entries": [{"creationDate": "...Z", "text": "...", "timeZone": "..."}]}``."""
    entries = data.get("entries")
    if not isinstance(entries, list):
        raise ValidationError('a Day One export has an "entries" list')
    items = []
    for number, record in enumerate(entries, start=1):
        text = record.get("text") if isinstance(record, dict) else None
        if not isinstance(text, str) or not text.strip():
            continue  # Day One keeps photo-only entries with no text: nothing to remember from them here
        when = parse_date(str(record.get("creationDate", "")), tz=UTC)
        if when is None:
            raise ValidationError(f"Day One entry {number} has no creationDate")
        zone = record.get("timeZone")
        if isinstance(zone, str):
            # An unknown zone name keeps UTC: the instant is still right.
            found: ZoneInfo | None = None
            with contextlib.suppress(ZoneInfoNotFoundError, ValueError, OSError):
                found = ZoneInfo(zone)
            if found is not None:
                when = _in_zone(when, found, number)
        items.append(ImportItem(_strip_day_one_markup(text), when))
    return items


def _in_zone(when: datetime, zone: ZoneInfo, number: int) -> datetime:
    try:
        return when.astimezone(zone)
    except OverflowError:
        raise ValidationError(f"Day One entry {number} has a date out of range in its time zone") from None


def _strip_day_one_markup(text: str) -> str:
    # Day One escapes markdown punctuation and embeds photo references; neither is part of what was written.
    text = re.sub(r"!\[\]\(dayone-moment://[^)]*\)", "", text)
    return re.sub(r"\\([\\.\-!()#*_\[\]])", r"\1", text).strip()


def detect_and_parse(name: str, raw: bytes, *, tz: tzinfo | None = None) -> list[ImportItem] | dict[str, Any]:
    """Parse a file by its name and content. Returns items, or the data of a Persona export (restore it with
    ``persona.transfer.restore_export``)."""
    if len(raw) > MAX_IMPORT_BYTES:
        raise ValidationError(f"the file is {len(raw) / 1e6:.0f} MB; the limit is {MAX_IMPORT_BYTES / 1e6:.0f} MB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"the file is not UTF-8 text (byte {exc.start})") from exc
    suffix = Path(name).suffix.lower()
    stripped = text.lstrip()
    if suffix == ".jsonl" or (suffix != ".json" and stripped.startswith("{") and "\n{" in stripped):
        items: list[ImportItem] | dict[str, Any] = parse_jsonl(text, tz=tz)
    elif suffix == ".json" or stripped.startswith("{"):
        data = load_json(text, where="the file")
        if isinstance(data, dict) and data.get("format") == EXPORT_FORMAT:
            return data
        if not isinstance(data, dict):
            raise ValidationError("a JSON import must be a Day One export or a Persona export")
        items = parse_day_one(data)
    else:
        items = parse_markdown(text, tz=tz)
    for item in items:
        if len(item.text) > MAX_ENTRY_CHARS:
            raise ValidationError(f"the entry of {item.occurred_at:%Y-%m-%d} is longer than {MAX_ENTRY_CHARS:,} chars")
    return items
