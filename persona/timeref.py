"""Relative time in what a person wrote, resolved against the entry's date.

"I went to the support group yesterday", written on 8 May 2023, is about 7 May 2023. A question months later
("when did I go to the support group?") needs that date, and the words "yesterday" cannot give it. So passages
carry a short note after each relative phrase: ``yesterday [7 May 2023]``. The writer's words stay as written.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from persona.dates import WEEKDAYS, day_text, month_start, month_text

_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "few": 3}
_PHRASE = re.compile(
    r"\b(yesterday|today|tonight|this morning|this afternoon|this evening|tomorrow"
    r"|last (?:week|weekend|month|year|night|" + "|".join(WEEKDAYS) + r")"
    r"|next (?:week|weekend|month|year|" + "|".join(WEEKDAYS) + r")"
    r"|(?:\d+|a|an|one|two|three|four|five|six|seven|few) (?:days?|weeks?|months?|years?) ago)\b",
    re.IGNORECASE,
)


def resolve(phrase: str, written: date) -> str | None:
    """What a relative phrase written on ``written`` refers to, as text; None when it is not one we know."""
    words = phrase.lower().split()
    if words[0] in ("today", "tonight", "this"):
        return day_text(written)
    if words[0] == "yesterday":
        return day_text(written - timedelta(days=1))
    if words[0] == "tomorrow":
        return day_text(written + timedelta(days=1))
    if words[-1] == "ago":
        count, unit = _NUMBERS.get(words[0]) or int(words[0]), words[1].rstrip("s")
        return _ago(written, count, unit)
    step = -1 if words[0] == "last" else 1
    unit = words[1]
    if unit in WEEKDAYS:
        # "next Monday" is 1-7 days ahead, "last Monday" 1-7 days back: never the day it was written.
        ahead = (WEEKDAYS.index(unit) - written.weekday()) % 7 or 7
        back = (written.weekday() - WEEKDAYS.index(unit)) % 7 or 7
        return day_text(written + timedelta(days=ahead if step > 0 else -back))
    if unit == "night":
        return day_text(written - timedelta(days=1))
    if unit in ("week", "weekend"):
        return f"the {unit} {'before' if step < 0 else 'after'} {day_text(written)}"
    if unit == "month":
        return month_text(month_start(written, step))
    return str(written.year + step)


def _ago(written: date, count: int, unit: str) -> str:
    if unit == "day":
        return day_text(written - timedelta(days=count))
    if unit == "week":
        return f"the week of {day_text(written - timedelta(weeks=count))}"
    if unit == "month":
        return month_text(month_start(written, -count))
    return str(written.year - count)


def annotate(text: str, written: datetime | date) -> str:
    """``text`` with ``[resolved date]`` after each relative time phrase."""
    day = written.date() if isinstance(written, datetime) else written

    def note(match: re.Match[str]) -> str:
        try:
            resolved = resolve(match.group(0), day)
        except (OverflowError, ValueError):  # "999999 days ago" is before year 1: leave the words as written
            resolved = None
        return f"{match.group(0)} [{resolved}]" if resolved else match.group(0)

    return _PHRASE.sub(note, text)
