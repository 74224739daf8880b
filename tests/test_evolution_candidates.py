"""Which earlier memories an entry may change, read in one store call (both stores), and an entry's changes written in
the same transaction as its memories: one user's candidates never include another's, a later entry's or the entry's
own; a chunk's entries change each other in date order; a write that fails leaves neither memories nor changes."""

from __future__ import annotations

import sqlite3

import pytest

from persona.errors import ValidationError
from persona.ingest import ingest_entry, ingest_many, retry_failed
from persona.models import Entry, EntryStatus, Goal, GoalStatus, LinkType, MemoryBatch, NodeType, Psyche, PsycheKind
from persona.store import migrations
from persona.store.base import EvolutionProbe, Store
from tests.factories import EMBEDDER, day, write_entry

FIRST = "I want to learn the cello this year. I love coffee."
CHANGING = "I have given up on the cello. I quit coffee, it's green tea now."


def _probe(entry_id: str, when: int, text: str = CHANGING) -> EvolutionProbe:
    return EvolutionProbe(entry_id, day(when), text, EMBEDDER.embed([text, "cello coffee"]))


def _ids(nodes) -> set[str]:
    return {n.id for n in nodes}


def _memories(store: Store, user: str) -> dict[str, Goal | Psyche]:
    nodes = store.list_many(user, [NodeType.GOAL, NodeType.PSYCHE], limit=1000)
    return {(n.title if isinstance(n, Goal) else n.text): n for n in nodes}  # type: ignore[misc]


def test_candidates_are_the_users_own_earlier_current_goals_and_psyche(store: Store, user_ids, provider):
    me, other = user_ids[0], user_ids[1]
    first = ingest_entry(store, provider, me, FIRST, occurred_at=day(1))
    theirs = ingest_entry(store, provider, other, "I want to learn the cello. I love coffee.", occurred_at=day(1))
    later = ingest_entry(
        store, provider, me, "I want to learn the cello duet. I love coffee beans.", occurred_at=day(60)
    )
    mine_early = _ids([*first.batch.goals, *first.batch.psyche])
    assert mine_early and all(r.ok for r in (first, theirs, later))

    found = store.evolution_candidates(me, [_probe("entry-x", 40), _probe(first.entry.id, 70)])

    assert len(found) == 2
    at_40, at_70 = _ids(found[0]), _ids(found[1])
    assert at_40 == mine_early  # the cello goal and the coffee belief, found by words and by meaning
    assert not at_40 & _ids([*theirs.batch.goals, *theirs.batch.psyche])  # never another user's
    assert not at_40 & _ids([*later.batch.goals, *later.batch.psyche])  # never a later entry's
    # The second probe is the first entry itself, at day 70: its own memories are not candidates, later ones are.
    assert not at_70 & mine_early
    assert at_70 == _ids([*later.batch.goals, *later.batch.psyche])
    assert store.evolution_candidates(other, [_probe("entry-y", 0)]) == [[]]  # nothing happened before day 0


def test_changed_memories_are_no_longer_candidates(store: Store, user: str, provider):
    ingest_entry(store, provider, user, FIRST, occurred_at=day(1))
    ingest_entry(store, provider, user, CHANGING, occurred_at=day(40))
    memories = _memories(store, user)
    assert memories["Learn the cello"].status is GoalStatus.DROPPED and not memories["I love coffee"].current

    found = _ids(store.evolution_candidates(user, [_probe("entry-x", 80)])[0])

    assert memories["Learn the cello"].id not in found and memories["I love coffee"].id not in found
    assert all(n.current for n in store.evolution_candidates(user, [_probe("entry-x", 80)])[0])


def test_a_chunk_changes_its_own_earlier_entries_in_date_order(store: Store, user: str, provider):
    # Given in the wrong order, in one chunk: the goal and the belief are written in the same transaction as the
    # entry that changes them, and the change is found against the earlier entry (by date) of the same chunk.
    results = ingest_many(store, provider, user, [(CHANGING, day(40)), (FIRST, day(1))])
    assert all(r.ok for r in results)
    changer = results[0].entry
    memories = _memories(store, user)
    cello, coffee = memories["Learn the cello"], memories["I love coffee"]
    assert isinstance(cello, Goal) and cello.status is GoalStatus.DROPPED and cello.valid_until == day(40)
    assert [r.entry_id for r in cello.revisions] == [changer.id]
    assert not coffee.current and [r.change for r in coffee.revisions] == ["superseded"]
    links = store.neighbours(user, [cello.id, coffee.id], link_types=[LinkType.CHANGED_BY, LinkType.SUPERSEDES])
    assert {(lk.type, lk.target_id) for lk in links if lk.type is LinkType.CHANGED_BY} == {
        (LinkType.CHANGED_BY, changer.id)
    }
    assert any(lk.type is LinkType.SUPERSEDES and lk.target_id == coffee.id for lk in links)


def test_a_chunk_changes_stored_memories_with_its_own(store: Store, user: str, provider):
    ingest_entry(store, provider, user, FIRST, occurred_at=day(1))
    results = ingest_many(store, provider, user, [("A quiet walk by the river.", day(30)), (CHANGING, day(40))])
    assert all(r.ok for r in results)
    memories = _memories(store, user)
    assert memories["Learn the cello"].status is GoalStatus.DROPPED
    assert [r.entry_id for r in memories["Learn the cello"].revisions] == [results[1].entry.id]
    assert not memories["I love coffee"].current


def test_a_failing_change_write_keeps_neither_memories_nor_changes(store: Store, user: str, provider):
    first = ingest_entry(store, provider, user, FIRST, occurred_at=day(1))
    goal = first.batch.goals[0]

    def delete_the_goal_meanwhile(step: str) -> None:
        # Another writer deletes the goal after the change was planned: the joint write finds it gone and fails.
        if step == "Writing to the graph":
            store.delete_node(user, goal.id)

    result = ingest_entry(store, provider, user, CHANGING, occurred_at=day(40), on_step=delete_the_goal_meanwhile)

    assert result.entry.status is EntryStatus.FAILED and "NodeNotFound" in (result.error or "")
    stored = store.get_node(user, result.entry.id)
    assert stored.status is EntryStatus.FAILED  # the entry is kept, marked, and can be processed again
    assert store.neighbours(user, [result.entry.id]) == []  # no episode, no passage: none of its memories
    coffee = _memories(store, user)["I love coffee"]
    assert coffee.current and coffee.revisions == []  # and none of its changes (the belief was to be replaced)
    retried = retry_failed(store, provider, user)
    assert [r.ok for r in retried] == [True]
    assert not _memories(store, user)["I love coffee"].current  # found again on the retry


def test_probes_are_checked(store: Store, user: str):
    write_entry(store, user, "cello practice", day(1))
    wrong_size = EvolutionProbe("entry-x", day(5), "cello", [[0.1, 0.2]])
    with pytest.raises(ValidationError, match="probe vector"):
        store.evolution_candidates(user, [wrong_size])
    assert store.evolution_candidates(user, []) == []


def test_save_entries_stores_a_chunk_at_once_and_finds_the_ones_already_there(store: Store, user: str):
    before = store.save_entry(Entry(user_id=user, text="already here", occurred_at=day(1)))
    texts = ("already here", "new one", "new one", "other")
    given = [Entry(user_id=user, text=t, occurred_at=day(1)) for t in texts]  # same text and date: same entry

    saved = store.save_entries(given)

    assert [s.id for s in saved] == [before.id, given[1].id, given[1].id, given[3].id]
    assert store.count_nodes(user, NodeType.ENTRY) == 3
    assert all(s.status is EntryStatus.PENDING for s in saved)


def test_save_entries_of_two_users_is_refused_and_stores_nothing(store: Store, user_ids):
    mixed = [Entry(user_id=user_ids[0], text="mine", occurred_at=day(1))]
    mixed.append(Entry(user_id=user_ids[1], text="theirs", occurred_at=day(1)))
    with pytest.raises(ValidationError, match="one user"):
        store.save_entries(mixed)
    store.ensure_user(user_ids[0])
    assert store.count_nodes(user_ids[0], NodeType.ENTRY) == 0


def test_superseded_beliefs_never_crowd_out_a_current_one(store: Store, user: str):
    # More superseded copies of a belief than the store returns, each ranked before the current one (same words,
    # same vector, earlier): the current belief is still among the candidates.
    entry = Entry(user_id=user, text="I love coffee.", occurred_at=day(1))
    store.save_entry(entry)
    [vector] = EMBEDDER.embed(["I love coffee"])
    common = {"user_id": user, "entry_id": entry.id, "kind": PsycheKind.PREFERENCE, "text": "I love coffee"}
    superseded = [Psyche(occurred_at=day(1), valid_until=day(2 + i), embedding=vector, **common) for i in range(6)]
    current = Psyche(occurred_at=day(2), embedding=vector, **common)
    store.write_batch(user, MemoryBatch(psyche=[*superseded, current]))
    probe = EvolutionProbe("entry-x", day(40), "I quit coffee", EMBEDDER.embed(["I quit coffee"]))

    [found] = store.evolution_candidates(user, [probe], k_text=3, k_vector=2)

    assert _ids(found) == {current.id}


def test_a_store_migrated_to_superseded_statuses_skips_superseded_beliefs(sqlite_store):
    user = "u-migrated"
    entry = Entry(user_id=user, text="I love coffee.", occurred_at=day(1))
    sqlite_store.save_entry(entry)
    common = {"user_id": user, "entry_id": entry.id, "kind": PsycheKind.PREFERENCE, "occurred_at": day(1)}
    old = Psyche(text="I love coffee", valid_until=day(2), **common)
    sqlite_store.write_batch(user, MemoryBatch(psyche=[old, Psyche(text="I love tea", **common)]))
    conn = sqlite3.connect(sqlite_store.path)
    with conn:  # as the release before the status column said which beliefs are superseded left them
        conn.execute("UPDATE nodes SET status = NULL WHERE type = 'Psyche'")
        migrations._sqlite_superseded_status(conn)
    statuses = dict(conn.execute("SELECT id, status FROM nodes WHERE type = 'Psyche'").fetchall())
    conn.close()
    assert statuses[old.id] == "superseded" and list(statuses.values()).count(None) == 1
