"""Due dates from plain English, relative to the day an entry was written (never to the wall clock).

``parse_due("I need to buy shoes by Friday", today=date(2024, 3, 12))`` is ``date(2024, 3, 15)``. The rules are
deliberately few and documented, so a user can predict them:

- ``today``, ``tonight``, ``this evening`` -> today; ``tomorrow`` -> +1 day; ``the day after tomorrow`` -> +2 days.
- A weekday (``Friday``, ``by Friday``, ``on Friday``, ``next Friday``) -> the first such day *after* today;
  ``this Friday`` may be today. "next Friday" is read like "Friday" (the coming one): people use it both ways, and
  the nearer date is the safer reminder. Plurals and ``every Friday`` are habits, not due dates: no date.
- ``this weekend`` / ``by the weekend`` -> the coming Saturday (today if it is Saturday); ``next weekend`` -> the
  Saturday after that.
- ``next week`` -> today + 7 days; ``this week`` / ``by the end of the week`` -> the coming Sunday.
- ``this month`` / ``by the end of the month`` -> the last day of this month; ``next month`` -> the **1st** of next
  month (the earliest day "next month" can mean; a due date is a deadline to look at, not a guess at a day);
  ``the end of next month`` -> its last day. Years work the same way (``next year`` -> 1 January).
- ``in 3 days``, ``in two weeks``, ``in a month``, ``within 10 days``, ``in a fortnight`` -> today plus that much
  (months are calendar months, clamped to the month's last day).
- Explicit dates: ISO ``2024-03-12``, ``12 March``, ``12th of March``, ``March 12``, ``Mar 12, 2025``; without a year,
  the next such day on or after today. ``by March`` / ``before March`` -> 1 March; ``in March`` / ``end of March``
  -> 31 March (the next March not yet over).
- Ambiguous numeric dates (``12/03``, ``03.12``) are ignored on purpose: day-first and month-first readers disagree.

When a text holds several expressions, the most specific wins (an explicit date, then a day, then a week or month
end, then "next month/year"); among equals, the first one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta

from persona.dates import WEEKDAYS, add_months, month_end

__all__ = ["WEEKDAYS", "add_months", "find_due", "parse_due"]

_MONTH_NAMES = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4, "may": 5,
    "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9, "sept": 9, "sep": 9,
    "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
}  # fmt: skip
_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "a couple": 2, "couple of": 2, "a few": 3,
    "few": 3,
}  # fmt: skip

_MONTH = r"(?P<month>" + "|".join(sorted(_MONTH_NAMES, key=len, reverse=True)) + r")\.?"
_WEEKDAY = r"(?P<weekday>" + "|".join(WEEKDAYS) + r")"
_NUMBER = r"(?P<n>\d{1,3}|" + "|".join(sorted(map(re.escape, _NUMBERS), key=len, reverse=True)) + r")"
_LEAD = r"(?:\b(?:by|on|before|until|till|due|no later than)\s+)?"  # kept in the span so titles can drop it

Handler = Callable[[re.Match[str], date], date | None]
_DIGITS = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")
_MONTH_PREFIXES = tuple(sorted({name[:3] for name in _MONTH_NAMES}))


def _needs(words: tuple[str, ...]) -> frozenset[str]:
    return frozenset(words)


def _next_weekday(today: date, weekday: int, *, include_today: bool) -> date:
    delta = (weekday - today.weekday()) % 7
    if delta == 0 and not include_today:
        delta = 7
    return today + timedelta(days=delta)


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _upcoming(today: date, month: int, day: int, year: str | None) -> date | None:
    """The given day-month in the given year, or (no year) the next one on or after today."""
    if year:
        return _safe_date(int(year), month, day)
    found = _safe_date(today.year, month, day)
    if found is not None and found >= today:
        return found
    return _safe_date(today.year + 1, month, day)


def _iso(m: re.Match[str], today: date) -> date | None:
    return _safe_date(int(m["y"]), int(m["mo"]), int(m["d"]))


def _day_month(m: re.Match[str], today: date) -> date | None:
    return _upcoming(today, _MONTH_NAMES[m["month"].lower()], int(m["d"]), m["year"])


def _month_day(m: re.Match[str], today: date) -> date | None:
    if m["month"] == "may":  # lowercase "may 5" is far more often the verb than the month
        return None
    return _upcoming(today, _MONTH_NAMES[m["month"].lower()], int(m["d"]), m["year"])


def _ordinal_day(m: re.Match[str], today: date) -> date | None:
    day = int(m["d"])
    for months in range(3):  # the next month that has this day (the 31st skips short months)
        month_start = add_months(today.replace(day=1), months)
        found = _safe_date(month_start.year, month_start.month, day)
        if found is not None and found >= today:
            return found
    return None


def _relative_day(m: re.Match[str], today: date) -> date | None:
    word = m["word"].lower()
    if word.startswith("the day after"):
        return today + timedelta(days=2)
    return today + timedelta(days=1) if word == "tomorrow" else today


def _weekday(m: re.Match[str], today: date) -> date | None:
    include_today = (m["which"] or "").lower() == "this"
    return _next_weekday(today, WEEKDAYS.index(m["weekday"].lower()), include_today=include_today)


def _weekend(m: re.Match[str], today: date) -> date | None:
    saturday = today + timedelta(days=6) if today.weekday() == 6 else _next_weekday(today, 5, include_today=True)
    return saturday + timedelta(days=7) if (m["which"] or "").lower() == "next" else saturday


def _in_units(m: re.Match[str], today: date) -> date | None:
    raw = m["n"].lower()
    count = int(raw) if raw.isdigit() else _NUMBERS[" ".join(raw.split())]
    unit = m["unit"].lower()
    if unit.startswith("day"):
        return today + timedelta(days=count)
    if unit.startswith("week"):
        return today + timedelta(weeks=count)
    if unit.startswith("fortnight"):
        return today + timedelta(weeks=2 * count)
    if unit.startswith("month"):
        return add_months(today, count)
    return add_months(today, 12 * count)


def _fortnight(m: re.Match[str], today: date) -> date | None:
    return today + timedelta(weeks=2)


def _period_end(m: re.Match[str], today: date) -> date | None:
    """The last day of this (or next) week, month or year. Weeks end on Sunday."""
    unit, later = m["unit"].lower(), (m["which"] or "").lower() == "next"
    if unit == "week":
        return today + timedelta(days=6 - today.weekday() + (7 if later else 0))
    if unit == "month":
        first = add_months(today.replace(day=1), 1 if later else 0)
        return month_end(first.year, first.month)
    return date(today.year + (1 if later else 0), 12, 31)


def _next_week(m: re.Match[str], today: date) -> date | None:
    return today + timedelta(days=7)


def _next_period_start(m: re.Match[str], today: date) -> date | None:
    if m["unit"].lower() == "month":
        return add_months(today.replace(day=1), 1)
    return date(today.year + 1, 1, 1)


def _month_only(m: re.Match[str], today: date) -> date | None:
    """``by March`` -> 1 March; ``in March`` / ``end of March`` -> 31 March; the next such March not yet over."""
    month = _MONTH_NAMES[m["month"].lower()]
    prep = m["prep"].lower()
    starts = "end" not in prep and prep.split()[0] in ("by", "before", "until", "till")
    if m["year"]:
        year = int(m["year"])
    elif starts:
        year = today.year if month > today.month else today.year + 1
    else:
        year = today.year if month >= today.month else today.year + 1
    return date(year, month, 1) if starts else month_end(year, month)


def _rule(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# (rank, needs, pattern, handler): a lower rank is more specific; a rule runs only when the lowercased text
# contains one of its ``needs`` (see ``_HINTS``: one scan before any real pattern).
_RULES: list[tuple[int, frozenset[str], re.Pattern[str], Handler]] = [
    (0, _needs(_DIGITS), _rule(_LEAD + r"\b(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})\b"), _iso),
    (
        0,
        _needs(_DIGITS),
        _rule(
            _LEAD + r"\b(?:the\s+)?(?P<d>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH + r"(?![a-z])"
            r"(?:,?\s+(?P<year>\d{4})\b)?"
        ),
        _day_month,
    ),
    (
        0,
        _needs(_DIGITS),
        _rule(
            _LEAD + r"\b" + _MONTH + r"\s+(?:the\s+)?(?P<d>\d{1,2})(?:st|nd|rd|th)?\b(?![:.]\d)"
            r"(?:,?\s+(?P<year>\d{4})\b)?"
        ),
        _month_day,
    ),
    (
        0,
        _needs(_DIGITS),
        _rule(_LEAD + r"\bthe\s+(?P<d>\d{1,2})(?:st|nd|rd|th)\b(?!\s+(?:of\s+)?" + _MONTH + ")"),
        _ordinal_day,
    ),
    (
        1,
        _needs(("tomorrow", "today", "tonight", "evening")),
        _rule(_LEAD + r"\b(?P<word>the\s+day\s+after\s+tomorrow|tomorrow|today|tonight|this\s+evening)\b"),
        _relative_day,
    ),
    (
        1,
        _needs(WEEKDAYS),
        _rule(
            r"(?<!every )(?<!each )" + _LEAD + r"\b(?:(?P<which>this|next|coming|this\s+coming)\s+)?" + _WEEKDAY + r"\b"
        ),
        _weekday,
    ),
    (
        1,
        _needs(("weekend",)),
        _rule(r"(?<!every )" + _LEAD + r"\b(?:(?:the|at\s+the|over\s+the|(?P<which>this|next))\s+)?weekend\b"),
        _weekend,
    ),
    (
        1,
        _needs(("day", "week", "fortnight", "month", "year")),
        _rule(r"\b(?:in|within|after)\s+" + _NUMBER + r"\s+(?P<unit>days?|weeks?|fortnights?|months?|years?)\b"),
        _in_units,
    ),
    (
        1,
        _needs(("day", "week", "month")),
        _rule(r"\b" + _NUMBER + r"\s+(?P<unit>days?|weeks?|months?)\s+from\s+now\b"),
        _in_units,
    ),
    (1, _needs(("fortnight",)), _rule(r"\b(?:in|within)\s+a\s+fortnight\b"), _fortnight),
    (
        2,
        _needs(("week", "month", "year")),
        _rule(_LEAD + r"\b(?:the\s+)?end\s+of\s+(?:the\s+)?(?P<which>this|next)?\s*(?P<unit>week|month|year)\b"),
        _period_end,
    ),
    (
        2,
        _needs(("week", "month", "year")),
        _rule(_LEAD + r"\b(?P<which>this)\s+(?P<unit>week|month|year)\b"),
        _period_end,
    ),
    (2, _needs(("week",)), _rule(_LEAD + r"\bnext\s+week\b"), _next_week),
    (3, _needs(("month", "year")), _rule(_LEAD + r"\bnext\s+(?P<unit>month|year)\b"), _next_period_start),
    (
        2,
        _needs(_MONTH_PREFIXES),
        _rule(
            r"\b(?P<prep>by|before|until|till|in|during|(?:by\s+)?(?:the\s+)?end\s+of)\s+"
            + _MONTH
            + r"(?![a-z])(?!\s*\d{1,2}\b)(?:\s+(?P<year>\d{4})\b)?"
        ),
        _month_only,
    ),
]


# Every ``needs`` word in one alternation, longest first: a single scan tells which rules can match at all.
_HINTS = re.compile(
    "|".join(sorted({re.escape(w) for _r, needs, _p, _h in _RULES for w in needs}, key=len, reverse=True))
)


def find_due(text: str, *, today: date) -> tuple[date, int, int] | None:
    """The due date ``text`` names and the span of the words that name it, or None.

    The span lets a caller cut "by Friday" out of a goal's title. See the module docstring for the rules.
    """
    best: tuple[int, int, int, date] | None = None
    present = set(_HINTS.findall(text.lower()))
    if not present:
        return None
    for rank, needs, pattern, handler in _RULES:
        if needs.isdisjoint(present):
            continue
        for match in pattern.finditer(text):
            found = handler(match, today)
            if found is None:
                continue
            key = (rank, match.start(), match.end(), found)
            if best is None or key[:2] < best[:2]:
                best = key
            break  # the first valid match of a rule is its earliest
    if best is None:
        return None
    return best[3], best[1], best[2]


def parse_due(phrase_or_sentence: str, *, today: date) -> date | None:
    """The due date a phrase or sentence gives ("by Friday", "in two weeks", "on 12 March"), relative to ``today``.

    ``today`` is the day the entry was written (its ``occurred_at``), never the wall clock. None when the text names
    no date or only an ambiguous one (``12/03``).
    """
    if not phrase_or_sentence:
        return None
    found = find_due(phrase_or_sentence, today=today)
    return found[0] if found else None
