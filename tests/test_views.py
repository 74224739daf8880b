"""The view functions the pages render (persona/views.py), called directly: times, the timeline, the graph view,
node details, density, import summaries and edits. Store-backed ones run on both stores."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

from persona.actions import GRAPH_TYPES
from persona.ingest import IngestResult
from persona.models import Entry, EntryStatus, Goal, GoalStatus, NodeType
from persona.views import (
    date_span,
    day_bounds,
    entry_datetime,
    entry_density,
    failed_entries,
    graph_view,
    group_by_month,
    memory_changes,
    node_details,
    node_label,
    on_this_day,
    recent_entries,
    share_text,
    summarise,
    timeline,
    timeline_item,
)
from tests.factories import day, entry_with_memories, write_entry

LISBON = timezone(timedelta(hours=1))


def test_entry_datetime_takes_the_time_given_else_now_today_else_noon():
    now = datetime(2024, 3, 10, 18, 30, tzinfo=LISBON)
    assert entry_datetime(date(2024, 3, 9), time(7, 5), now=now, tz=LISBON) == datetime(2024, 3, 9, 7, 5, tzinfo=LISBON)
    assert entry_datetime(date(2024, 3, 10), now=now, tz=LISBON) == now
    assert entry_datetime(date(2024, 3, 1), now=now, tz=LISBON) == datetime(2024, 3, 1, 12, tzinfo=LISBON)


def test_day_bounds_include_the_end_day():
    low, high = day_bounds(date(2024, 3, 1), date(2024, 3, 3), tz=UTC)
    assert (low, high) == (datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 4, tzinfo=UTC))
    assert day_bounds(None, None, tz=UTC) == (None, None)


def test_summaries_labels_shares_and_edits():
    done = Entry(user_id="ada", text="x", occurred_at=day(0), status=EntryStatus.DONE)
    failed = done.model_copy(update={"status": EntryStatus.FAILED, "error": "boom"})
    results = [IngestResult(entry=done), IngestResult(entry=done, duplicate=True), IngestResult(entry=failed)]
    summary = summarise(results)
    assert (summary.total, summary.done, summary.duplicates, summary.failed) == (3, 1, 1, 1)
    assert summary.errors == ["2024-03-01: boom"] and "1 failed" in summary.message()
    assert share_text({"vector": 0.46, "text": 0.31, "graph": 0.001}) == "vector 46% · text 31%"
    goal = Goal(user_id="ada", entry_id="e1", kind="task", title="Run", text="Run a half marathon", occurred_at=day(1))
    assert node_label(goal) == "Goal · 02 Mar 2024 · Run"
    assert memory_changes(goal, title=" Run ", text="Run a marathon", status="done") == {
        "text": "Run a marathon",
        "status": GoalStatus.DONE,
    }


def test_entries_span_density_recent_and_failed(store, user):
    write_entry(store, user, "Monday walk", day(3))  # 2024-03-04 is a Monday
    write_entry(store, user, "Tuesday swim", day(4))
    write_entry(store, user, "Next Monday", day(10))
    failed = store.save_entry(Entry(user_id=user, text="The model was down", occurred_at=day(11)))
    store.set_entry_status(user, failed.id, EntryStatus.FAILED, error="timeout")
    assert date_span(store, user) == (date(2024, 3, 4), date(2024, 3, 12))
    assert entry_density(store, user) == [
        {"week": date(2024, 3, 4), "entries": 2},
        {"week": date(2024, 3, 11), "entries": 2},
    ]
    assert [e.text for e in recent_entries(store, user, limit=2)] == ["The model was down", "Next Monday"]
    retry = failed_entries(store, user)  # the factory leaves its entries pending: a retry takes them too
    assert retry[0].id == failed.id and [e.status for e in retry[1:]] == [EntryStatus.PENDING] * 3


def test_timeline_follows_the_chain_with_what_hangs_off_each_episode(store, user):
    _, late = write_entry(store, user, "Second: dinner with Rui", day(40), people=("Rui",))
    _, early = write_entry(store, user, "First: hike with Rui", day(1), people=("Rui",))
    view = timeline(store, user)
    assert [i.episode.id for i in view.items] == [early.episodes[0].id, late.episodes[0].id]
    first, second = view.items
    assert first.next_id == second.episode.id and second.previous_id == first.episode.id
    assert [g.id for g in first.goals] == [early.goals[0].id] and [e.name for e in first.entities] == ["Rui"]
    assert first.entry is not None and first.entry.text.startswith("First")
    assert [heading for heading, _ in group_by_month(view.items)] == ["March 2024", "April 2024"]
    windowed = timeline(store, user, start=day(30), end=day(50))
    assert windowed.in_range == 1 and [i.episode.id for i in windowed.items] == [late.episodes[0].id]
    assert timeline_item(store, user, late.goals[0].id) is None
    assert timeline_item(store, user, late.episodes[0].id).previous_id == early.episodes[0].id  # type: ignore[union-attr]


def test_on_this_day_finds_other_years():
    _, batch = entry_with_memories("ada", "A year ago", day(0))
    episode = batch.episodes[0]
    assert on_this_day([episode], date(2025, 3, 1)) == [episode]
    assert on_this_day([episode], date(2024, 3, 1)) == []


def test_graph_view_and_node_details(store, provider, user):
    _, batch = write_entry(store, user, "Sailing with Nuno on the Tagus", day(2), people=("Nuno",))
    episode, entity = batch.episodes[0], batch.entities[0]
    recent = graph_view(store, provider, user)
    drawn = {n.id for n in recent.subgraph.nodes}
    assert {episode.id, entity.id} <= drawn and NodeType.ENTRY not in {n.type for n in recent.subgraph.nodes}
    focused = graph_view(store, provider, user, focus_id=entity.id)
    assert focused.centre_ids == [entity.id] and episode.id in {n.id for n in focused.subgraph.nodes}
    searched = graph_view(store, provider, user, search="sailing on the Tagus")
    assert episode.id in searched.centre_ids and searched.note.startswith("Centred on")
    assert {n.type for n in searched.subgraph.nodes} <= set(GRAPH_TYPES)  # a passage hit stands for its episode
    details = node_details(store, user, episode.id)
    assert details is not None and details.entry is not None and details.text == episode.summary
    assert {(lk.type, lk.direction, lk.other_id) for lk in details.links} >= {("MENTIONS", "→", entity.id)}
    assert node_details(store, user, "no-such-node") is None
