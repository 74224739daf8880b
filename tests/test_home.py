"""persona.home: goals sorted by urgency, on this day, and the home view on both stores."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from persona.home import days_text, goals_due, home_view
from persona.ingest import ingest_entry
from persona.models import Goal, GoalKind, GoalStatus

TODAY = date(2026, 6, 10)


def goal(title: str, due: date | None, status: GoalStatus = GoalStatus.ACTIVE) -> Goal:
    when = datetime(2026, 6, 1, tzinfo=UTC)
    return Goal(
        user_id="u", entry_id="e", occurred_at=when, kind=GoalKind.TASK, title=title, text=title, due=due, status=status
    )


def test_goals_are_sorted_into_overdue_due_soon_and_later() -> None:
    goals = [
        goal("later", date(2026, 9, 1)),
        goal("undated", None),
        goal("soon", date(2026, 6, 20)),
        goal("today", TODAY),
        goal("late", date(2026, 6, 1)),
        goal("done late", date(2026, 6, 1), GoalStatus.DONE),
    ]
    due = goals_due(goals, TODAY)
    assert [g.title for g in due.overdue] == ["late"]
    assert [g.title for g in due.due_soon] == ["today", "soon"]
    assert [g.title for g in due.later] == ["later", "undated"], "dated before undated; done goals left out"
    assert due.count == 5


def test_days_text_reads_naturally() -> None:
    assert days_text(TODAY, TODAY) == "due today"
    assert days_text(date(2026, 6, 11), TODAY) == "due in 1 day"
    assert days_text(date(2026, 6, 7), TODAY) == "3 days overdue"


def test_home_view_on_both_stores(store, provider, user_ids) -> None:
    alice, bob, carol = user_ids  # fresh ids: the Neo4j server is shared by the whole session
    ingest_entry(
        store,
        provider,
        alice,
        "Ran by the river. I want to finish the report by 2026-06-12.",
        occurred_at=datetime(2025, 6, 10, 9, tzinfo=UTC),
    )
    ingest_entry(store, provider, alice, "Coffee with Tom in Porto.", occurred_at=datetime(2026, 6, 2, 9, tzinfo=UTC))
    ingest_entry(store, provider, bob, "Bob's own day, 10 June.", occurred_at=datetime(2024, 6, 10, 9, tzinfo=UTC))
    view = home_view(store, alice, today=TODAY)
    assert [e.text[:6] for e in view.recent] == ["Coffee", "Ran by"]
    assert [e.occurred_at.year for e in view.on_this_day] == [2025], "other years' 10 June, only alice's"
    assert sum(w["entries"] for w in view.weekly) == 2
    assert view.counts["Entry"] == 2 and not view.empty
    assert home_view(store, carol, today=TODAY).empty


def test_timeline_band_rows_threads_and_nearest_episode() -> None:
    from persona.models import Entity, EntityKind, Episode
    from persona.timeline_band import band_rows, follow_thread, nearest_episode, thread_options
    from persona.views import TimelineItem

    def episode(day: int) -> Episode:
        when = datetime(2026, 6, day, 9, tzinfo=UTC)
        return Episode(user_id="u", entry_id="e", title=f"Day {day}", summary="s", occurred_at=when, importance=0.5)

    sarah = Entity(user_id="u", name="Sarah", kind=EntityKind.PERSON)
    items = [
        TimelineItem(episode(1), goals=[goal("Run", None)], entities=[sarah]),
        TimelineItem(episode(5)),
        TimelineItem(episode(9), entities=[sarah]),
    ]
    rows = band_rows(items)
    assert [r["lane"] for r in rows] == ["Episodes", "Goals", "Episodes", "Episodes"]
    assert thread_options(items)[sarah.id] == "Sarah (person, 2)"
    assert [i.episode.title for i in follow_thread(items, sarah.id)] == ["Day 1", "Day 9"]
    assert follow_thread(items, None) == items
    assert nearest_episode([i.episode for i in items], date(2026, 6, 7)).title == "Day 5", "a tie goes earlier"
    assert nearest_episode([], date(2026, 6, 7)) is None


GOAL_JOURNALS = [
    ("I want to learn the cello this year.", "I have given up on the cello. My fingers hurt too much."),
    ("My goal is to submit the thesis by June.", "Finally submitted the thesis today!"),
    ("I need to book a dentist appointment.", "The dentist appointment is done, no cavities."),
    ("I plan to repaint the kitchen.", "Finished repainting the kitchen this weekend, it looks great."),
    ("I need to renew my passport by March.", "Renewed my passport this morning."),
    ("I love coffee, it gets me going.", "I quit coffee last month, green tea now."),
    ("I want to run a marathon.", "I gave up on the marathon, my knee will not take it."),
]


def test_home_view_reads_only_what_it_shows_and_shows_the_same(store, provider, user) -> None:
    """A journal of many years where the changes lie behind pages of newer entries: the bounded reads (this day
    per year, the newest entries' changes) give what reading every episode, goal and belief gave."""
    from persona.home import CHANGE_PAGE, recent_change_rows
    from persona.models import NodeType
    from persona.views import change_rows, on_this_day
    from tests.factories import write_entry

    start = datetime(2019, 1, 3, 8, tzinfo=UTC)
    for number, (before, after) in enumerate(GOAL_JOURNALS):  # changes from 2019 on, every ~40 days
        when = start + timedelta(days=40 * number)
        for offset, text in ((0, before), (20, after)):
            assert ingest_entry(store, provider, user, text, occurred_at=when + timedelta(days=offset)).ok
    for day in range(0, 7 * 365, 9):  # newer filler entries: more than a page after the last change
        write_entry(
            store, user, f"An ordinary day number {day}.", datetime(2020, 1, 1, 23, tzinfo=UTC) + timedelta(days=day)
        )
    for year in range(2019, 2027):  # this day at the edges of the day, and the days around it
        for when in (datetime(year, 6, 9, 23, 59, tzinfo=UTC), datetime(year, 6, 10, 0, 0, tzinfo=UTC)):
            write_entry(store, user, f"Around the tenth of June {year}, {when:%H:%M}.", when)
        write_entry(store, user, f"The eleventh of June {year}.", datetime(year, 6, 11, 0, 1, tzinfo=UTC))
    assert store.count_nodes(user, NodeType.ENTRY) > 2 * CHANGE_PAGE

    view = home_view(store, user, today=TODAY)
    every_episode = store.list_nodes(user, NodeType.EPISODE, limit=100_000)
    assert [e.id for e in view.on_this_day] == [e.id for e in on_this_day(every_episode, TODAY)]
    assert {e.occurred_at.year for e in view.on_this_day} == set(range(2019, 2026)), "earlier years, not this one"
    assert view.changes == change_rows(store, user, limit=5) and len(view.changes) == 5
    assert {row["change"] for row in view.changes} >= {"done", "dropped", "superseded"}
    assert recent_change_rows(store, user, limit=50) == change_rows(store, user, limit=50), "all of them, in order"
