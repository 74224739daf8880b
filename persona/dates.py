"""Calendar helpers in one place: weekday names, month arithmetic and how a date is written for people.

(Times themselves are pydantic-validated, timezone-aware datetimes in ``persona.models``; parsing due dates from
English is ``persona.llm.dates``, relative phrases in passages ``persona.timeref``.)"""

from __future__ import annotations

import calendar
from datetime import date

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
"""Weekday names, lowercase, Monday first (``date.weekday()`` indexes them)."""


def add_months(day: date, months: int) -> date:
    """``day`` plus whole calendar months, clamped to the last day of the target month (31 Jan + 1 -> 29 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def month_start(day: date, months: int = 0) -> date:
    """The first day of ``day``'s month, shifted by ``months`` whole months."""
    return add_months(day.replace(day=1), months)


def month_end(year: int, month: int) -> date:
    """The last day of a month."""
    return date(year, month, calendar.monthrange(year, month)[1])


def day_text(value: date) -> str:
    """A date as people write it: ``7 May 2023`` (the words answers and passage notes use)."""
    return f"{value.day} {value:%B %Y}"


def month_text(value: date) -> str:
    """A month as people write it: ``May 2023``."""
    return f"{value:%B %Y}"
