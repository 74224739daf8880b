"""Memory evolution in a store (both stores): a later entry finishes a goal or replaces a belief, linked to the
entry that caused it and to the memory that replaces it, with nothing deleted; every change can be undone exactly;
one person under many names; a split undoes a merge exactly."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from persona.actions import delete_node, undo_name_match
from persona.api import create_app
from persona.chat import build_messages, user_context_xml
from persona.context import format_context
from persona.dates import day_text
from persona.errors import ChangedMeanwhileError, ChangeNotFoundError, ValidationError
from persona.ingest import build_batch, edit_memory, embed_batch, ingest_entry, write_memories
from persona.llm.offline import OfflineProvider
from persona.models import Entry, Goal, GoalStatus, LinkType, NodeType, Psyche
from persona.retrieval import RetrievalQuery, retrieve
from persona.revisions import changes_of, confirm_change, evolve, plan_chunk, thread, undo_change
from persona.store.base import Store
from persona.transfer import restore_export
from persona.views import name_match_rows
from tests.factories import day
from tests.test_api import AUTH, SETTINGS


def _export(store: Store, user: str) -> dict[str, Any]:
    data = store.export_user(user)
    return data | {"nodes": sorted(data["nodes"], key=lambda n: n["id"])}


def _ingest(store: Store, provider: OfflineProvider, user: str, text: str, n: int):
    result = ingest_entry(store, provider, user, text, occurred_at=day(n))
    assert result.ok, result.error
    return result


def _journal(store: Store, provider: OfflineProvider, user: str):
    first = _ingest(store, provider, user, "I want to learn the cello this year. I love coffee. I value honesty.", 1)
    second = _ingest(store, provider, user, "I have given up on the cello. I quit coffee, it's green tea now.", 40)
    return first, second


def _by_text(store: Store, user: str) -> dict[str, Goal | Psyche]:
    nodes = store.list_many(user, [NodeType.GOAL, NodeType.PSYCHE], limit=100)
    return {(n.title if isinstance(n, Goal) else n.text): n for n in nodes}  # type: ignore[misc]


def test_a_later_entry_changes_goal_and_belief_linked_and_nothing_deleted(store: Store, user: str, provider):
    first, second = _journal(store, provider, user)
    ids_after_first = {n.id for n in first.batch.nodes()} | {first.entry.id}
    memories = _by_text(store, user)
    cello, coffee, honesty = memories["Learn the cello"], memories["I love coffee"], memories["I value honesty"]
    assert isinstance(cello, Goal) and cello.status is GoalStatus.DROPPED
    assert cello.valid_until == day(40) and cello.valid_from == day(1)
    assert [r.change for r in cello.revisions] == ["dropped"] and cello.revisions[0].entry_id == second.entry.id
    assert coffee.valid_until == day(40) and not coffee.current
    assert honesty.current and honesty.revisions == []  # a stable value stays current
    links = store.neighbours(user, [cello.id, coffee.id], link_types=[LinkType.CHANGED_BY, LinkType.SUPERSEDES])
    pairs = {(lk.type, lk.source_id, lk.target_id) for lk in links}
    replacement = coffee.revisions[0].by_id
    assert replacement is not None and "quit coffee" in store.get_node(user, replacement).text
    assert pairs == {
        (LinkType.CHANGED_BY, cello.id, second.entry.id),
        (LinkType.CHANGED_BY, coffee.id, second.entry.id),
        (LinkType.SUPERSEDES, replacement, coffee.id),
    }
    assert {n.id for n in store.get_nodes(user, list(ids_after_first))} == ids_after_first  # nothing deleted
    assert [r.change for _, r in changes_of(store, user)] in (["dropped", "superseded"], ["superseded", "dropped"])


def test_undo_restores_the_export_exactly(store: Store, user: str, provider):
    _first, second = _journal(store, provider, user)
    for node, revision in changes_of(store, user):
        undo_change(store, user, node.id, revision.id)
    before = _export(store, user)
    assert all(n.get("revisions") in (None, []) for n in before["nodes"])
    assert not any(lk["type"] in ("CHANGED_BY", "SUPERSEDES") for lk in before["links"])
    changed = evolve(store, provider.embedder, second.entry, second.batch)  # the same entry, the same decisions
    assert len(changed) == 2 and _export(store, user) != before
    for node, revision in changes_of(store, user):
        confirm_change(store, user, node.id, revision.id)
    assert all(r.confirmed for _, r in changes_of(store, user))
    for node, revision in changes_of(store, user):
        undo_change(store, user, node.id, revision.id)
    assert _export(store, user) == before


def test_distractors_change_nothing(store: Store, user: str, provider):
    _ingest(store, provider, user, "I want to read War and Peace. I love coffee.", 1)
    before = _export(store, user)
    before_ids = {n["id"] for n in before["nodes"]}
    _ingest(store, provider, user, "I did not finish the book this week. My neighbour quit coffee.", 5)
    after = [n for n in _export(store, user)["nodes"] if n["id"] in before_ids]
    assert after == before["nodes"]


def test_postponed_goal_moves_its_due_date_and_stays_active(store: Store, user: str, provider):
    _ingest(store, provider, user, "I want to launch my podcast in May.", 1)
    _ingest(store, provider, user, "The podcast launch moved to September.", 30)
    [goal] = store.list_nodes(user, NodeType.GOAL)
    assert goal.status is GoalStatus.ACTIVE and goal.due is not None and goal.due.month == 9
    assert goal.revisions[0].change == "postponed" and goal.revisions[0].before["due"].startswith("2024-05")


def test_titles_first_names_and_relations_land_on_one_entity(store: Store, user: str, provider):
    _ingest(store, provider, user, "Lunch with Professor Okonkwo and my sister Layla. Dr. Amir Haddad joined.", 1)
    _ingest(store, provider, user, "Prof. Okonkwo liked chapter two. Okonkwo is strict. Amir called.", 2)
    entities = {e.name: e for e in store.list_nodes(user, NodeType.ENTITY)}
    assert set(entities) >= {"Professor Okonkwo", "Layla", "Dr. Amir Haddad"}
    assert not {"Prof. Okonkwo", "Okonkwo", "Amir"} & set(entities)
    assert {"Prof. Okonkwo", "Okonkwo"} <= set(entities["Professor Okonkwo"].aliases)
    assert "Amir" in entities["Dr. Amir Haddad"].aliases
    assert entities["Layla"].relation == "sister"
    mentions = store.neighbours(user, [entities["Dr. Amir Haddad"].id], link_types=[LinkType.MENTIONS])
    assert len({lk.source_id for lk in mentions}) >= 2  # mentioned from both entries' episodes


def test_a_merge_teaches_an_alias_and_a_split_undoes_it_exactly(store: Store, user: str, provider):
    _ingest(store, provider, user, "Robert Hale helped me move the sofa.", 1)
    _ingest(store, provider, user, "Coffee with Bobby Vance in town.", 2)
    before = _export(store, user)
    people = {e.name: e for e in store.list_nodes(user, NodeType.ENTITY)}
    robert, bobby = people["Robert Hale"], people["Bobby Vance"]
    store.merge_entities(user, robert.id, bobby.id)
    assert _export(store, user) != before
    kept, restored = store.split_entity(user, robert.id, embedding=provider.embedder.embed(["Bobby Vance"])[0])
    assert restored.id == bobby.id and kept.merges == []
    assert _export(store, user) == before
    store.merge_entities(user, robert.id, bobby.id)
    _ingest(store, provider, user, "Bobby Vance lent me his van.", 3)
    assert [e.name for e in store.list_nodes(user, NodeType.ENTITY)] == ["Robert Hale"]


def test_superseded_memories_rank_below_current_ones_and_as_of_sees_the_past(store: Store, user: str, provider):
    _journal(store, provider, user)
    query = RetrievalQuery(text="coffee", types=(NodeType.PSYCHE,), limit=5)
    ranked = [m.node for m in retrieve(store, provider.embedder, user, query, now=day(60))]
    texts = [n.text for n in ranked]
    assert texts.index("I quit coffee, it's green tea now") < texts.index("I love coffee")
    context = format_context(retrieve(store, provider.embedder, user, query, now=day(60)), today=day(60))
    assert f'status_note="no longer true since {day_text(day(40))}"' in context
    then = retrieve(store, provider.embedder, user, replace(query, as_of=day(10)))
    then_texts = [m.node.text for m in then]
    assert then_texts[0] == "I love coffee" and not any("quit" in t for t in then_texts)  # true then; nothing later
    assert "status_note" not in format_context(then, today=day(10))


def test_user_context_holds_current_psyche_and_active_goals(store: Store, user: str, provider):
    _ingest(store, provider, user, "I want to learn the cello. I need to renew my passport by 5 March. I love tea.", 1)
    _ingest(store, provider, user, "I have given up on the cello. I value honesty.", 3)
    with TestClient(create_app(store=store, provider=provider, settings=SETTINGS), headers=AUTH) as client:
        reply = client.get(f"/api/v1/users/{user}/context")
        missing = client.get("/api/v1/users/nobody-here/context")
    assert reply.status_code == 200 and missing.status_code == 404
    body = reply.json()
    assert [g["title"] for g in body["goals"]] == ["Renew my passport"]  # the dropped cello is not current
    assert {p["text"] for p in body["psyche"]} == {"I love tea", "I value honesty"}
    assert body["overdue"] == [body["goals"][0]["id"]]  # due 5 March 2024, long past
    assert 'overdue="true"' in body["xml"] and "cello" not in body["xml"]
    messages = build_messages("tea?", [], today=day(4), user_context=user_context_xml(store, user, today=day(4)))
    assert "<user " in messages[-1]["content"] and "Renew my passport" in messages[-1]["content"]


def test_an_export_with_changes_restores_into_another_user(store: Store, user: str, provider):
    _journal(store, provider, user)
    copy = f"{user}-copy"
    try:
        restore_export(store, provider.embedder, store.export_user(user), user_id=copy)
        entries = {e.id for e in store.list_nodes(copy, NodeType.ENTRY)}
        [goal] = store.list_nodes(copy, NodeType.GOAL)
        assert goal.status is GoalStatus.DROPPED and goal.revisions[0].entry_id in entries  # ids of the copy
        changed = [n for n in store.list_nodes(copy, NodeType.PSYCHE) if n.revisions]
        [coffee] = changed
        links = store.neighbours(copy, [coffee.id, goal.id], link_types=[LinkType.SUPERSEDES, LinkType.CHANGED_BY])
        assert len(links) == 3 and coffee.revisions[0].by_id in {lk.source_id for lk in links}
    finally:
        store.delete_user(copy)


def test_deleting_the_entry_that_caused_a_change_undoes_it(store: Store, user: str, provider):
    first, second = _journal(store, provider, user)
    assert delete_node(store, user, second.entry.id) > 0
    memories = _by_text(store, user)
    assert set(memories) == {"Learn the cello", "I love coffee", "I value honesty"}
    assert all(m.current and m.revisions == [] for m in memories.values())
    assert memories["Learn the cello"].status is GoalStatus.ACTIVE
    links = store.neighbours(
        user, [m.id for m in memories.values()], link_types=[LinkType.CHANGED_BY, LinkType.SUPERSEDES]
    )
    assert links == []


def test_what_happened_to_a_goal_or_a_person_in_time_order(store: Store, user: str, provider):
    first, second = _journal(store, provider, user)
    cello = _by_text(store, user)["Learn the cello"]
    assert [e.id for e in thread(store, user, cello.id)] == [first.entry.id, second.entry.id]
    one = _ingest(store, provider, user, "Lunch with Professor Okonkwo.", 50)
    _ingest(store, provider, user, "A quiet day at home.", 51)
    two = _ingest(store, provider, user, "Prof. Okonkwo approved my plan.", 52)
    [okonkwo] = [e for e in store.list_nodes(user, NodeType.ENTITY) if e.name == "Professor Okonkwo"]
    assert [e.id for e in thread(store, user, okonkwo.id)] == [one.entry.id, two.entry.id]


def _without_entry(export: dict[str, Any], entry_id: str, extra_ids: set[str]) -> dict[str, Any]:
    """An export without one entry's nodes (and ``extra_ids``) and the links touching them."""
    gone = {n["id"] for n in export["nodes"] if n["id"] == entry_id or n.get("entry_id") == entry_id} | extra_ids
    return export | {
        "nodes": [n for n in export["nodes"] if n["id"] not in gone],
        "links": [lk for lk in export["links"] if lk["source_id"] not in gone and lk["target_id"] not in gone],
    }


def test_an_automatic_name_match_is_recorded_and_undone_exactly(store: Store, user: str, provider):
    _ingest(store, provider, user, "Lunch with Dr. Amir Haddad and my boss Tom Baker.", 1)
    before = _export(store, user)
    second = _ingest(store, provider, user, "Amir called about the grant. My ex-boss Tom wrote too.", 5)
    people = {e.name: e for e in store.list_nodes(user, NodeType.ENTITY)}
    assert not {"Amir", "Tom"} & set(people)
    amir, tom = people["Dr. Amir Haddad"], people["Tom Baker"]
    [match] = amir.matches
    assert (match["name"], match["rule"], match["entry_id"]) == ("Amir", "first name", second.entry.id)
    assert tom.matches[0]["rule"] == "first name (relation)" and tom.relation == "ex-boss"
    episode = second.batch.episodes[0].id
    rows = {row["name"]: row for row in name_match_rows(store, user)}
    assert rows["Amir"]["entity"] == "Dr. Amir Haddad" and rows["Amir"]["undoable"] is True

    restored = undo_name_match(store, provider.embedder, user, amir.id, match["id"])
    restored_tom = undo_name_match(store, provider.embedder, user, tom.id, tom.matches[0]["id"])
    assert (restored.name, restored_tom.name, restored_tom.relation) == ("Amir", "Tom", "ex-boss")
    for entity in (restored, restored_tom):
        mentions = store.neighbours(user, [entity.id], link_types=[LinkType.MENTIONS])
        assert {lk.source_id for lk in mentions} == {episode}
    assert not [
        lk
        for lk in store.neighbours(user, [amir.id, tom.id], link_types=[LinkType.MENTIONS])
        if lk.source_id == episode
    ]
    after = _export(store, user)
    # The export before the entry's match == the export after the undo, but for the entry and the mentions it made.
    assert _without_entry(after, second.entry.id, {restored.id, restored_tom.id}) == before
    assert name_match_rows(store, user) == []


def test_only_the_latest_name_match_can_be_undone_and_a_refusal_changes_nothing(store: Store, user: str, provider):
    _ingest(store, provider, user, "Lunch with Dr. Amir Haddad.", 1)
    _ingest(store, provider, user, "Haddad called.", 2)
    _ingest(store, provider, user, "Amir wrote back.", 3)
    [amir] = [e for e in store.list_nodes(user, NodeType.ENTITY) if e.name == "Dr. Amir Haddad"]
    assert [m["name"] for m in amir.matches] == ["Haddad", "Amir"]
    before = _export(store, user)
    with pytest.raises(ValidationError, match="only the latest"):
        undo_name_match(store, provider.embedder, user, amir.id, amir.matches[0]["id"])
    with pytest.raises(ChangeNotFoundError, match="no name match"):
        undo_name_match(store, provider.embedder, user, amir.id, "not-a-match")
    assert _export(store, user) == before
    rows = {row["name"]: row["undoable"] for row in name_match_rows(store, user)}
    assert rows == {"Haddad": False, "Amir": True}


def test_a_changed_relation_closes_the_old_fact_and_keeps_it(store: Store, user: str, provider):
    first = _ingest(store, provider, user, "Dinner with my boss Tom Baker.", 1)
    second = _ingest(store, provider, user, "My ex-boss Tom Baker called today.", 30)
    [tom] = [e for e in store.list_nodes(user, NodeType.ENTITY) if e.name == "Tom Baker"]
    boss, ex_boss = tom.facts
    assert (boss.value, boss.valid_from, boss.valid_until, boss.entry_id) == ("boss", day(1), day(30), first.entry.id)
    assert (ex_boss.value, ex_boss.valid_from, ex_boss.current, ex_boss.entry_id) == (
        "ex-boss", day(30), True, second.entry.id
    )  # fmt: skip
    assert boss.learned_at <= ex_boss.learned_at and tom.relation == "ex-boss"
    _ingest(store, provider, user, "Saw my ex-boss Tom Baker again.", 40)  # the same relation again: kept once
    [tom] = [e for e in store.list_nodes(user, NodeType.ENTITY) if e.name == "Tom Baker"]
    assert [f.value for f in tom.facts] == ["boss", "ex-boss"]


def test_deleting_an_entry_undoes_its_name_matches_exactly(store: Store, user: str, provider):
    _ingest(store, provider, user, "Lunch with Dr. Amir Haddad and my boss Tom Baker.", 1)
    before = _export(store, user)
    second = _ingest(store, provider, user, "Amir called. My ex-boss Tom wrote too.", 5)
    assert _export(store, user) != before
    delete_node(store, user, second.entry.id)
    assert _export(store, user) == before  # no alias, fact or match of the deleted entry is left behind


def test_a_stated_nickname_lands_later_mentions_on_the_person_and_can_be_undone(store: Store, user: str, provider):
    _ingest(store, provider, user, "Met Ines Duarte at the fair; everyone calls her Nessa.", 1)
    _ingest(store, provider, user, "Nessa sent me the photos from the fair.", 3)
    _ingest(store, provider, user, "Margaret, or Peggy as the choir calls her, sang the solo.", 5)
    _ingest(store, provider, user, "Peggy brought cake to rehearsal.", 7)
    people = {e.name: e for e in store.list_nodes(user, NodeType.ENTITY)}
    assert not {"Nessa", "Peggy"} & set(people)
    for full, nick in (("Ines Duarte", "Nessa"), ("Margaret", "Peggy")):
        assert nick in people[full].aliases
        mentions = store.neighbours(user, [people[full].id], link_types=[LinkType.MENTIONS])
        assert len({lk.source_id for lk in mentions}) == 2  # both entries' episodes
    ines = people["Ines Duarte"]
    # The statement is the match; the later "Nessa" is an ordinary mention of a known name (not recorded again).
    [match] = ines.matches
    assert (match["name"], match["rule"]) == ("Nessa", "stated nickname")
    undo_name_match(store, provider.embedder, user, ines.id, match["id"])
    people = {e.name: e for e in store.list_nodes(user, NodeType.ENTITY)}
    assert "Nessa" in people and "Nessa" not in people["Ines Duarte"].aliases


def test_a_first_name_sister_is_not_joined_with_a_stranger_of_that_name(store: Store, user: str, provider):
    _ingest(store, provider, user, "My sister Emma is starting uni next week.", 1)
    _ingest(store, provider, user, "Emma Clarke, the new intern at work, seems nervous but bright.", 4)
    _ingest(store, provider, user, "Phoned my sister Anna tonight.", 6)
    _ingest(store, provider, user, "Anna Whitfield is officially a doctor! So proud of my little sister.", 9)
    people = {e.name: e for e in store.list_nodes(user, NodeType.ENTITY)}
    assert {"Emma", "Emma Clarke", "Anna"} <= set(people) and "Anna Whitfield" not in people
    assert people["Emma"].relation == "sister" and people["Emma Clarke"].relation is None
    assert "Anna Whitfield" in people["Anna"].aliases


def test_a_name_match_restored_into_another_user_is_undone_there_only(store: Store, user: str, provider):
    _ingest(store, provider, user, "Lunch with Dr. Amir Haddad.", 1)
    second = _ingest(store, provider, user, "Amir called about the grant.", 4)
    copy = f"{user}-copy"
    restore_export(store, provider.embedder, store.export_user(user), user_id=copy)
    original = _export(store, user)
    [amir] = [e for e in store.list_nodes(copy, NodeType.ENTITY) if e.name == "Dr. Amir Haddad"]
    [match] = amir.matches
    assert match["entry_id"] != second.entry.id  # the copy's own entry
    restored = undo_name_match(store, provider.embedder, copy, amir.id, match["id"])
    assert restored.user_id == copy and restored.name == "Amir"
    [episode] = [n for n in store.list_nodes(copy, NodeType.EPISODE) if n.entry_id == match["entry_id"]]
    mentions = store.neighbours(copy, [restored.id], link_types=[LinkType.MENTIONS])
    assert {lk.source_id for lk in mentions} == {episode.id}
    assert _export(store, user) == original  # the original user is untouched


def _edit_after_the_planning_read(store: Store, edit) -> list[int]:
    """Make ``edit`` (another client's change) happen right after the store's first read of an entry's candidate
    memories, before the planned changes are written; returns the list counting the candidate reads."""
    read = store.evolution_candidates
    calls: list[int] = []

    def read_then_edit(*args: Any, **kwargs: Any) -> Any:
        found = read(*args, **kwargs)
        calls.append(len(calls))
        if len(calls) == 1:
            edit()
        return found

    store.evolution_candidates = read_then_edit  # type: ignore[method-assign]
    return calls


def test_an_edit_made_while_an_entry_is_planned_survives_and_the_entry_is_planned_again(
    store: Store, user: str, provider
):
    _ingest(store, provider, user, "I want to learn the cello this year. I love coffee. I value honesty.", 1)
    first = _by_text(store, user)
    cello, coffee = first["Learn the cello"], first["I love coffee"]

    def edit() -> None:  # meanwhile: the user finishes the goal by hand and rewords the belief
        edit_memory(store, provider, user, cello.id, {"status": GoalStatus.DONE})
        edit_memory(store, provider, user, coffee.id, {"text": "I love strong coffee"})

    reads = _edit_after_the_planning_read(store, edit)
    second = _ingest(store, provider, user, "I have given up on the cello. I quit coffee, it's green tea now.", 40)
    cello, coffee = store.get_node(user, cello.id), store.get_node(user, coffee.id)
    assert isinstance(cello, Goal) and cello.status is GoalStatus.DONE and cello.revisions == []  # the edit stays
    assert isinstance(coffee, Psyche) and coffee.text == "I love strong coffee"  # the edit stays
    assert coffee.valid_until == day(40) and [r.entry_id for r in coffee.revisions] == [second.entry.id]
    assert coffee.revisions[0].before == {"valid_until": None}
    assert coffee.id in [h.id for h in store.text_search(user, "strong")]  # the search index has the edit too
    assert len(reads) == 2  # planned, found changed meanwhile, planned again


def test_planned_changes_written_after_a_memory_changed_are_refused_and_write_nothing(
    store: Store, user: str, provider
):
    _ingest(store, provider, user, "I want to learn the cello this year.", 1)
    [cello] = store.list_nodes(user, NodeType.GOAL)
    entry = store.save_entry(Entry(user_id=user, text="I have given up on the cello.", occurred_at=day(40)))
    batch = build_batch(entry, provider.extract(entry.text, occurred_at=entry.occurred_at))
    embed_batch(provider, batch)
    changes = plan_chunk(store, provider.embedder, [(entry, batch)])
    assert [n.id for n in changes.stored.values()] == [cello.id]  # the entry drops the goal...
    edit_memory(store, provider, user, cello.id, {"title": "Learn the cello, slowly"})  # ...edited meanwhile
    before = _export(store, user)
    with pytest.raises(ChangedMeanwhileError):
        write_memories(
            store, user, changes.apply_to(batch), done_entry_ids=[entry.id], revised=list(changes.stored.values())
        )
    assert _export(store, user) == before


def _amir(store: Store, user: str):
    [amir] = [e for e in store.list_nodes(user, NodeType.ENTITY) if e.name == "Amir Haddad"]
    return amir


def test_undoing_a_name_match_keeps_what_a_later_exact_name_entry_added(store: Store, user: str, provider):
    _ingest(store, provider, user, "Lunch with Amir Haddad.", 1)
    _ingest(store, provider, user, "Amir called about the grant.", 3)
    later = _ingest(store, provider, user, "My brother Amir Haddad visited.", 5)
    amir = _amir(store, user)
    [match] = amir.matches  # the exact name made no match record of its own
    assert amir.relation == "brother" and [(f.value, f.entry_id) for f in amir.facts] == [("brother", later.entry.id)]
    undo_name_match(store, provider.embedder, user, amir.id, match["id"])
    amir = _amir(store, user)
    assert "Amir" not in amir.aliases and amir.matches == []
    # The later entry is still stored: its fact and the relation it states stay.
    assert amir.relation == "brother" and [(f.value, f.entry_id) for f in amir.facts] == [("brother", later.entry.id)]


def test_deleting_an_exact_name_entry_takes_its_relation_fact_with_it(store: Store, user: str, provider):
    _ingest(store, provider, user, "Dinner with my boss Tom Baker.", 1)
    _ingest(store, provider, user, "Lunch with Amir Haddad.", 2)
    before = _export(store, user)
    later = _ingest(store, provider, user, "My brother Amir Haddad and my ex-boss Tom Baker visited.", 5)
    assert (_amir(store, user).relation, _export(store, user) != before) == ("brother", True)
    delete_node(store, user, later.entry.id)
    people = {e.name: e for e in store.list_nodes(user, NodeType.ENTITY)}
    assert people["Amir Haddad"].facts == [] and people["Amir Haddad"].relation is None
    assert people["Tom Baker"].relation == "boss" and people["Tom Baker"].facts[0].current
    assert _export(store, user) == before  # no fact or relation of the deleted entry is left behind


def test_incomplete_name_match_records_break_neither_the_changes_list_nor_a_delete(store: Store, user: str, provider):
    _ingest(store, provider, user, "Lunch with Dr. Amir Haddad and my boss Tom Baker.", 1)
    second = _ingest(store, provider, user, "Amir called. My ex-boss Tom wrote too.", 5)
    people = {e.name: e for e in store.list_nodes(user, NodeType.ENTITY)}
    # As a hand-edited export can leave them (``matches`` is an unchecked list): no "before"; no dates.
    amir, tom = people["Dr. Amir Haddad"], people["Tom Baker"]
    no_before = {k: v for k, v in amir.matches[0].items() if k != "before"}
    no_dates = {k: v for k, v in tom.matches[0].items() if k not in ("at", "learned_at")}
    store.update_node(user, amir.id, {"matches": [no_before]})
    store.update_node(user, tom.id, {"matches": [no_dates]})
    rows = name_match_rows(store, user)
    assert [(row["name"], row["undoable"]) for row in rows] == [("Amir", False)]  # Tom's record has no date
    with pytest.raises(ValidationError, match="incomplete record"):
        undo_name_match(store, provider.embedder, user, amir.id, no_before["id"])
    delete_node(store, user, second.entry.id)  # no KeyError: the incomplete records are left as they are
    assert second.entry.id not in {n.id for n in store.list_nodes(user, NodeType.ENTRY)}
