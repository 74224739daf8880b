"""``persona.timeref``: relative time in a passage resolved against the entry's date (the temporal gain rests on it)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from persona.timeref import annotate, day_text, resolve

WRITTEN = date(2023, 5, 8)  # a Monday


@pytest.mark.parametrize(
    "phrase,expected",
    [
        ("yesterday", "7 May 2023"),
        ("Yesterday", "7 May 2023"),
        ("today", "8 May 2023"),
        ("tonight", "8 May 2023"),
        ("this morning", "8 May 2023"),
        ("tomorrow", "9 May 2023"),
        ("last night", "7 May 2023"),
        ("last friday", "5 May 2023"),
        ("last monday", "1 May 2023"),  # on a Monday, "last Monday" is a week ago, not today
        ("next monday", "15 May 2023"),
        ("next wednesday", "10 May 2023"),
        ("last month", "April 2023"),
        ("next month", "June 2023"),
        ("last year", "2022"),
        ("next year", "2024"),
        ("last week", "the week before 8 May 2023"),
        ("next weekend", "the weekend after 8 May 2023"),
        ("3 days ago", "5 May 2023"),
        ("a week ago", "the week of 1 May 2023"),
        ("two months ago", "March 2023"),
        ("five years ago", "2018"),
    ],
)
def test_each_phrase_resolves_against_the_written_day(phrase, expected):
    assert resolve(phrase, WRITTEN) == expected


def test_yesterday_is_the_day_before_across_month_and_year_ends():
    assert resolve("yesterday", date(2024, 3, 1)) == "29 February 2024"
    assert resolve("yesterday", date(2024, 1, 1)) == "31 December 2023"
    assert resolve("tomorrow", date(2023, 12, 31)) == "1 January 2024"
    assert resolve("last month", date(2024, 1, 15)) == "December 2023"


def test_annotate_adds_the_date_after_the_phrase_and_keeps_the_words():
    text = "I went to the support group yesterday. Tomorrow I call Ada; 2 weeks ago I moved."
    assert annotate(text, WRITTEN) == (
        "I went to the support group yesterday [7 May 2023]. Tomorrow [9 May 2023] I call Ada; "
        "2 weeks ago [the week of 24 April 2023] I moved."
    )


def test_annotate_uses_the_entrys_own_day_not_the_utc_day():
    late_in_tokyo = datetime(2023, 5, 8, 23, 30, tzinfo=timezone(timedelta(hours=9)))  # 14:30 UTC, same day
    assert annotate("yesterday", late_in_tokyo) == "yesterday [7 May 2023]"
    early_in_utc = datetime(2023, 5, 8, 0, 30, tzinfo=UTC)
    assert annotate("yesterday", early_in_utc) == "yesterday [7 May 2023]"


def test_words_that_only_look_like_phrases_are_left_alone():
    assert annotate("the yesterdays of todayness", WRITTEN) == "the yesterdays of todayness"
    assert annotate("no time words here", WRITTEN) == "no time words here"


def test_a_phrase_before_year_1_is_left_as_written():
    assert annotate("999999 days ago", date(2, 1, 1)) == "999999 days ago"
    assert annotate("yesterday", date(1, 1, 1)) == "yesterday"


def test_day_text():
    assert day_text(date(2023, 5, 7)) == "7 May 2023"
