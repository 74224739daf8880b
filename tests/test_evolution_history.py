"""What the app's change views stand on, on both stores: correcting a detected goal change (``edit_change``) keeps
undo exact and refuses bad input without writing; a memory's history; the timeline's change rows and the "changes
only" filter (``persona.views``)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from persona.errors import PersonaError, ValidationError
from persona.ingest import ingest_entry
from persona.llm.offline import OfflineProvider
from persona.models import Goal, GoalStatus, NodeType, Psyche
from persona.revisions import confirm_change, edit_change, undo_change
from persona.store.base import Store
from persona.views import change_marks, memory_history, memory_rows, timeline, timeline_rows
from tests.factories import day

JOURNAL = [
    (1, "I want to learn the cello. I love coffee."),
    (5, "Lunch with Tom at the harbour, we talked about boats."),
    (9, "I have given up on the cello. I quit coffee, it's green tea now."),
]


def _journal(store: Store, provider: OfflineProvider, user: str) -> tuple[Goal, Psyche]:
    for n, text in JOURNAL:
        assert ingest_entry(store, provider, user, text, occurred_at=day(n)).ok
    nodes = store.list_many(user, [NodeType.GOAL, NodeType.PSYCHE], limit=100)
    cello = next(n for n in nodes if isinstance(n, Goal) and n.title == "Learn the cello")
    coffee = next(n for n in nodes if isinstance(n, Psyche) and n.text == "I love coffee")
    return cello, coffee


def _export(store: Store, user: str) -> dict[str, Any]:
    data = store.export_user(user)
    return data | {"nodes": sorted(data["nodes"], key=lambda n: n["id"])}


def test_a_corrected_goal_change_is_kept_and_undo_still_restores_exactly(store: Store, user: str, provider):
    cello, _coffee = _journal(store, provider, user)
    revision = cello.revisions[-1]
    undo_change(store, user, cello.id, revision.id)
    before = _export(store, user)
    undone = store.get_node(user, cello.id)
    assert isinstance(undone, Goal) and undone.status is GoalStatus.ACTIVE
    # The same change again (as ingest made it), then corrected twice: done, then postponed to a date.
    store.revise(user, [cello])
    done = edit_change(store, user, cello.id, revision.id, change="done")
    assert done.status is GoalStatus.DONE and done.valid_until == day(9)
    assert done.revisions[-1].change == "done" and done.revisions[-1].confirmed and not done.revisions[-1].automatic
    assert store.get_node(user, cello.id) == done
    later = edit_change(store, user, cello.id, revision.id, change="postponed", due=date(2024, 9, 1))
    assert later.status is GoalStatus.ACTIVE and later.current and later.due == date(2024, 9, 1)
    assert [r.id for r in later.revisions] == [revision.id], "a correction edits the change, it adds none"
    undo_change(store, user, cello.id, revision.id)
    assert _export(store, user) == before


@pytest.mark.parametrize(
    ("change", "due", "message"),
    [
        ("active", None, "not a goal change"),
        ("finished!", None, "not a goal change"),
        ("postponed", None, "due date"),
        ("done", date(2024, 9, 1), "due date"),
    ],
)
def test_a_bad_correction_is_refused_and_writes_nothing(store, user, provider, change, due, message):
    cello, _coffee = _journal(store, provider, user)
    before = _export(store, user)
    with pytest.raises(ValidationError, match=message):
        edit_change(store, user, cello.id, cello.revisions[-1].id, change=change, due=due)
    assert _export(store, user) == before


def test_unknown_changes_and_belief_edits_are_refused_and_write_nothing(store: Store, user: str, provider):
    cello, coffee = _journal(store, provider, user)
    before = _export(store, user)
    for action in (undo_change, confirm_change):
        with pytest.raises(ValidationError, match="has no change"):
            action(store, user, cello.id, "no-such-change")
    with pytest.raises(ValidationError, match="has no change"):
        edit_change(store, user, cello.id, "no-such-change", change="done")
    with pytest.raises(ValidationError, match="only a goal's change can be edited"):
        edit_change(store, user, coffee.id, coffee.revisions[-1].id, change="done")
    with pytest.raises(PersonaError):
        undo_change(store, user, "no-such-memory", cello.revisions[-1].id)
    assert _export(store, user) == before


def test_memory_history_tells_when_it_was_true_and_what_replaced_it(store: Store, user: str, provider):
    cello, coffee = _journal(store, provider, user)
    goal = memory_history(store, user, cello.id)
    assert goal is not None and goal.became_true == day(1) and goal.stopped == day(9)
    [step] = goal.steps
    assert (step.label, step.what, step.at, step.latest) == ("Goal dropped", "Learn the cello", day(9), True)
    assert step.sentence == "I have given up on the cello."
    old = memory_history(store, user, coffee.id)
    assert old is not None and old.stopped == day(9)
    assert [s.what.startswith("I love coffee → I quit coffee") for s in old.steps] == [True]
    assert len(old.replaced_by) == 1 and "I quit coffee" in old.replaced_by[0]
    new = memory_history(store, user, coffee.revisions[-1].by_id or "")
    assert new is not None and new.stopped is None and new.steps == [] and "I love coffee" in new.replaces[0]
    episode = store.list_nodes(user, NodeType.EPISODE, limit=1)[0]
    assert memory_history(store, user, episode.id) is None and memory_history(store, user, "gone") is None


def test_timeline_rows_place_changes_after_their_entry_and_filter_to_changes(store: Store, user: str, provider):
    cello, _coffee = _journal(store, provider, user)
    items = timeline(store, user).items
    marks = change_marks(store, user)
    assert {m.label for m in marks} == {"Goal dropped", "Changed your mind"}
    rows = timeline_rows(items, marks)
    kinds = ["change" if r.change else r.item.episode.occurred_at.day for r in rows]  # type: ignore[union-attr]
    assert kinds == [day(1).day, day(5).day, day(9).day, "change", "change"]
    newest = timeline_rows(items, marks, newest_first=True)
    assert [r.change is not None for r in newest] == [False, True, True, False, False], "a change follows its entry"
    only = timeline_rows(items, marks, changes_only=True)
    assert len(only) == 2 and all(r.change is not None and r.item is None for r in only)
    assert change_marks(store, user, start=day(1), end=day(8)) == []
    cello_thread = [it for it in items if any(g.id == cello.id for g in it.goals)]
    followed = timeline_rows(cello_thread, marks, changes_only=True, thread=cello.id)
    assert [r.change.what for r in followed] == ["Learn the cello"]  # type: ignore[union-attr]


def test_memory_rows_say_until_when_a_memory_was_true(store: Store, user: str, provider):
    cello, coffee = _journal(store, provider, user)
    until = {row["id"]: row["until"] for row in memory_rows(store, user)}
    assert until[cello.id] == day(9) and until[coffee.id] == day(9)
    assert until[coffee.revisions[-1].by_id] is None  # the belief that replaced it is still true
    episode = store.list_nodes(user, NodeType.EPISODE, limit=1)[0]
    assert until[episode.id] is None
