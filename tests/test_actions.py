"""The use cases and views the pages call (persona/actions.py, persona/views.py), on both stores."""

from __future__ import annotations

import json

import pytest

from persona import actions
from persona.errors import ValidationError
from persona.models import MEMORY_TYPES, GoalStatus, NodeType
from persona.store.common import node_sort_time
from persona.views import memory_rows
from tests.factories import day, write_entry


def test_find_node_sees_only_the_users_own_nodes(store, user_ids):
    mine, other = user_ids[0], user_ids[1]
    _, batch = write_entry(store, mine, "Coffee with Lea", day(1))
    episode = batch.episodes[0]
    assert actions.find_node(store, mine, episode.id).id == episode.id  # type: ignore[union-attr]
    assert actions.find_node(store, other, episode.id) is None
    assert actions.find_node(store, mine, None) is None
    assert actions.find_node(store, mine, "x" * 1000) is None


def test_delete_merge_and_summary(store, user):
    entry, batch = write_entry(store, user, "Lunch with Ana and Anna", day(1), people=("Ana", "Anna"))
    before = actions.store_summary(store, user)
    assert before.description == store.description and not before.empty
    assert before.counts["Entity"] == 2 and "users" not in before.counts
    keep, drop = batch.entities
    merged = actions.merge_entities(store, user, keep.id, drop.id)
    assert merged.aliases == ["Anna"] and actions.find_node(store, user, drop.id) is None
    removed = actions.delete_node(store, user, entry.id)
    assert removed == 6  # the entry, its episode, psyche, goal, passage, and the entity nothing mentions now
    assert actions.store_summary(store, user).empty


def test_export_json_reads_back_as_the_export(store, user):
    write_entry(store, user, "Museum day with Omar", day(2), people=("Omar",))
    assert json.loads(actions.export_json(store, user)) == json.loads(json.dumps(store.export_user(user)))


def test_personas_are_created_listed_and_deleted(store, user_ids):
    user = user_ids[0]
    with pytest.raises(ValidationError):
        actions.create_persona(store, "Not A Valid Id!")
    assert actions.create_persona(store, user).id == user
    assert user in actions.personas(store)
    write_entry(store, user, "A walk", day(3))
    assert actions.delete_persona(store, user) == 5
    assert user not in actions.personas(store)


def test_list_many_merges_types_in_date_order_and_pages(store, user):
    for n in range(4):
        write_entry(store, user, f"Day {n} at the lake", day(n))
    everything = store.list_many(user, MEMORY_TYPES, limit=100)
    assert len(everything) == 4 * 3  # an episode, a psyche and a goal per entry
    keys = [(node_sort_time(n), n.created_at, n.id) for n in everything]
    assert keys == sorted(keys, reverse=True)
    pages = [store.list_many(user, MEMORY_TYPES, limit=5, offset=o) for o in (0, 5, 10)]
    assert [n.id for page in pages for n in page] == [n.id for n in everything]
    oldest = store.list_many(user, [NodeType.EPISODE, NodeType.GOAL], limit=2, newest_first=False)
    assert {n.type for n in oldest} == {NodeType.EPISODE, NodeType.GOAL}
    assert all(n.occurred_at == day(0) for n in oldest)  # type: ignore[union-attr]


def test_memory_rows_filter_by_goal_status_and_text(store, user):
    _, first = write_entry(store, user, "Plan the garden", day(1))
    write_entry(store, user, "Paint the fence", day(2))
    store.update_node(user, first.goals[0].id, {"status": GoalStatus.DONE})
    done = memory_rows(store, user, status="done")
    assert [r["id"] for r in done] == [first.goals[0].id]
    fence = memory_rows(store, user, contains="FENCE")
    assert fence and all("fence" in f"{r['title']} {r['text']}".lower() for r in fence)
    assert len(memory_rows(store, user)) == 6
