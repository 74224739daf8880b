"""The store contract, run against both stores (the ``store`` fixture is parametrized over sqlite and neo4j)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persona.errors import EmbedderMismatchError, NodeNotFoundError, UserNotFoundError, ValidationError
from persona.llm.embedding import HashEmbedder
from persona.models import (
    Entity,
    EntityKind,
    Entry,
    EntryStatus,
    GoalStatus,
    Link,
    LinkType,
    MemoryBatch,
    NodeType,
)
from tests.factories import EMBEDDER, day, entry_with_memories, write_entry
from tests.hostile import HOSTILE, HOSTILE_IDS


def test_round_trip_of_every_model(store, user):
    entry, batch = write_entry(store, user, "Walked with Sarah in Lisbon", day(0), people=("Sarah",))
    got_entry = store.get_node(user, entry.id)
    assert got_entry == entry
    for node in batch.nodes():
        got = store.get_node(user, node.id)
        assert got.model_dump(exclude={"embedding"}) == node.model_dump(exclude={"embedding"})
        assert type(got) is type(node)
    links = store.neighbours(user, [n.id for n in batch.nodes()])
    assert {(lk.type, lk.source_id, lk.target_id) for lk in batch.links} <= {
        (lk.type, lk.source_id, lk.target_id) for lk in links
    }


def test_entry_status_and_duplicate_hash(store, user):
    entry = Entry(user_id=user, text="Same words", occurred_at=day(1))
    assert store.save_entry(entry).id == entry.id
    again = Entry(user_id=user, text="  Same   words ", occurred_at=day(1))
    assert store.save_entry(again).id == entry.id  # same text, same day, same user: one entry
    other_day = Entry(user_id=user, text="Same words", occurred_at=day(2))
    assert store.save_entry(other_day).id == other_day.id  # the same words on another day: another entry
    store.delete_node(user, other_day.id)
    assert store.count_nodes(user, NodeType.ENTRY) == 1
    store.set_entry_status(user, entry.id, EntryStatus.FAILED, error="timeout")
    failed = store.list_nodes(user, NodeType.ENTRY, status="failed")
    assert [(e.id, e.error) for e in failed] == [(entry.id, "timeout")]
    assert store.find_entry_by_hash(user, entry.content_hash).id == entry.id


def test_entities_merge_by_canonical_name(store, user):
    write_entry(store, user, "Coffee with Sarah", day(0), people=("Sarah",))
    write_entry(store, user, "Dinner with sarah", day(1), people=(" sarah ",))
    entities = store.list_nodes(user, NodeType.ENTITY)
    assert len(entities) == 1
    mentions = store.neighbours(user, [entities[0].id], link_types=[LinkType.MENTIONS])
    assert len(mentions) == 2


def _assert_single_ordered_chain(store, user):
    chain = store.chain(user)
    episodes = store.list_nodes(user, NodeType.EPISODE, limit=10_000, newest_first=False)
    assert chain == [e.id for e in episodes], "the chain is one path ordered by occurred_at"
    next_links = store.neighbours(user, chain, link_types=[LinkType.NEXT])
    assert len(next_links) == max(0, len(chain) - 1)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(days=st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=8))
def test_chain_stays_one_ordered_path_after_out_of_order_inserts(store, days):
    user = f"u-{uuid.uuid4().hex[:10]}"
    try:
        for n, offset in enumerate(days):
            write_entry(store, user, f"entry number {n} on day {offset}", day(offset))
        _assert_single_ordered_chain(store, user)
    finally:
        store.delete_user(user)


def test_chain_repairs_after_delete_and_move(store, user):
    entries = [write_entry(store, user, f"day {n} happened", day(n)) for n in range(5)]
    middle_episode = entries[2][1].episodes[0]
    store.delete_node(user, entries[2][0].id)
    _assert_single_ordered_chain(store, user)
    assert middle_episode.id not in store.chain(user)
    first_episode = entries[0][1].episodes[0]
    store.update_node(user, first_episode.id, {"occurred_at": day(10)})
    _assert_single_ordered_chain(store, user)
    assert store.chain(user)[-1] == first_episode.id


def test_vector_search_returns_nearest_first(store, user):
    texts = ["hiking in the mountains", "baking sourdough bread", "meeting about the budget"]
    batches = [write_entry(store, user, t, day(i))[1] for i, t in enumerate(texts)]
    query = EMBEDDER.embed(["sourdough bread baking"])[0]
    hits = store.vector_search(user, query, k=3, types=[NodeType.EPISODE])
    assert hits[0].id == batches[1].episodes[0].id
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(h.type is NodeType.EPISODE for h in hits)


def test_text_search_finds_words(store, user):
    _, batch = write_entry(store, user, "The quarterly budget review went badly", day(0))
    write_entry(store, user, "A quiet walk by the river", day(1))
    hits = store.text_search(user, "budget", k=5)
    assert batch.episodes[0].id in {h.id for h in hits}
    assert all(h.id not in {batch.episodes[0].id} or h.score > 0 for h in hits)


@pytest.mark.parametrize("hostile", HOSTILE, ids=HOSTILE_IDS)
def test_text_search_with_hostile_strings_neither_raises_nor_leaks(store, user_ids, hostile):
    query = hostile.value
    mine, other = user_ids[0], user_ids[1]
    write_entry(store, mine, "draft of C++ notes AND more", day(0))
    _, theirs = write_entry(store, other, "secret draft title notes", day(0))
    before = store.stats(other)
    hits = store.text_search(mine, query, k=10)
    their_ids = {n.id for n in theirs.nodes()}
    assert not their_ids & {h.id for h in hits}
    assert store.stats(other) == before


def test_user_isolation(store, user_ids):
    alice, bob = user_ids[0], user_ids[1]
    alice_entry, alice_batch = write_entry(store, alice, "Alice went climbing", day(0), people=("Sarah",))
    bob_entry, bob_batch = write_entry(store, bob, "Bob went climbing", day(0), people=("Sarah",))
    bob_ids = {bob_entry.id} | {n.id for n in bob_batch.nodes()}
    query = EMBEDDER.embed(["went climbing"])[0]
    seen = set()
    seen |= {h.id for h in store.vector_search(alice, query, k=50)}
    seen |= {h.id for h in store.text_search(alice, "climbing Sarah", k=50)}
    seen |= {n.id for n in store.get_nodes(alice, list(bob_ids))}
    seen |= {lk.source_id for lk in store.neighbours(alice, list(bob_ids))}
    seen |= {n.id for n in store.subgraph(alice).nodes}
    for node_type in NodeType:
        seen |= {n.id for n in store.list_nodes(alice, node_type)}
    assert not seen & bob_ids
    with pytest.raises(NodeNotFoundError):
        store.get_node(alice, bob_entry.id)
    with pytest.raises(NodeNotFoundError):
        store.delete_node(alice, bob_entry.id)
    with pytest.raises(NodeNotFoundError):
        store.update_node(alice, bob_batch.goals[0].id, {"status": GoalStatus.DONE})
    assert store.get_node(bob, bob_batch.goals[0].id).status is GoalStatus.ACTIVE
    assert {n.id for n in store.list_nodes(alice, NodeType.ENTITY)} != {
        n.id for n in store.list_nodes(bob, NodeType.ENTITY)
    }
    assert alice_entry.id in {n.id for n in store.list_nodes(alice, NodeType.ENTRY)}


def test_links_to_another_users_nodes_are_refused(store, user_ids):
    alice, bob = user_ids[0], user_ids[1]
    _, bob_batch = write_entry(store, bob, "Bob's day", day(0))
    entry, batch = entry_with_memories(alice, "Alice's day", day(1))
    store.save_entry(entry)
    batch.links.append(
        Link(type=LinkType.DERIVED_FROM, source_id=batch.psyche[0].id, target_id=bob_batch.episodes[0].id)
    )
    with pytest.raises(ValidationError):
        store.write_batch(alice, batch)
    assert store.count_nodes(alice, NodeType.EPISODE) == 0  # nothing half-written
    assert store.count_nodes(bob, NodeType.EPISODE) == 1


def test_delete_user_cascades(store, user_ids):
    alice, bob = user_ids[0], user_ids[1]
    for n in range(3):
        write_entry(store, alice, f"Alice day {n}", day(n), people=("Sarah", "Lisbon"))
    write_entry(store, bob, "Bob day", day(0), people=("Sarah",))
    bob_before = store.stats(bob)
    removed = store.delete_user(alice)
    assert removed == 3 * 5 + 2
    after = store.stats(alice)
    assert sum(after[t.value] for t in NodeType) == 0 and after["links"] == 0 and after["users"] == 0
    assert store.stats(bob) == bob_before


def test_delete_entry_removes_what_belongs_to_it(store, user):
    keep_entry, keep = write_entry(store, user, "kept day with Sarah", day(0), people=("Sarah",))
    gone_entry, gone = write_entry(store, user, "deleted day with Sarah and Tom", day(1), people=("Sarah", "Tom"))
    removed = store.delete_node(user, gone_entry.id)
    assert removed == 6  # entry, episode, psyche, goal, passage, and Tom (no mentions left)
    names = {e.name for e in store.list_nodes(user, NodeType.ENTITY)}
    assert names == {"Sarah"}
    for node in gone.nodes():
        if node.type is not NodeType.ENTITY:
            with pytest.raises(NodeNotFoundError):
                store.get_node(user, node.id)
    assert store.get_node(user, keep.psyche[0].id)
    assert store.count_nodes(user, NodeType.EPISODE) == 1


def test_merge_entities(store, user):
    _, first = write_entry(store, user, "Lunch with Sam", day(0), people=("Sam",))
    _, second = write_entry(store, user, "Call with Samuel", day(1), people=("Samuel",))
    keep, drop = first.entities[0].id, second.entities[0].id
    merged = store.merge_entities(user, keep, drop)
    assert "Samuel" in merged.aliases
    assert len(store.neighbours(user, [keep], link_types=[LinkType.MENTIONS])) == 2
    with pytest.raises(NodeNotFoundError):
        store.get_node(user, drop)


def test_update_node_validates_and_persists(store, user):
    _, batch = write_entry(store, user, "Plan the trip", day(0))
    goal = batch.goals[0]
    store.update_node(user, goal.id, {"status": GoalStatus.DONE})
    assert store.get_node(user, goal.id).status is GoalStatus.DONE
    with pytest.raises(ValidationError, match="status"):  # a clear error naming the field, not pydantic's own
        store.update_node(user, goal.id, {"status": "exploded"})
    with pytest.raises(ValidationError):
        store.update_node(user, goal.id, {"user_id": "someone-else"})
    assert store.get_node(user, goal.id).status is GoalStatus.DONE


def test_write_batch_for_unknown_user_is_refused(store, user):
    _, batch = entry_with_memories(user, "no entry saved first", day(0))
    with pytest.raises(UserNotFoundError):
        store.write_batch(user, batch)


def test_bad_user_ids_are_refused(store):
    for bad in ["", "UPPER", "a b", "../etc", "x" * 80, "a'b", "n}) DETACH DELETE n"]:
        with pytest.raises(ValidationError):
            store.ensure_user(bad)
        with pytest.raises(ValidationError):
            store.list_nodes(bad, NodeType.EPISODE)


def test_subgraph_caps_and_says_so(store, user):
    for n in range(8):
        write_entry(store, user, f"Day {n} with friends", day(n), people=(f"Friend{n}",))
    graph = store.subgraph(user, limit=10)
    assert len(graph.nodes) == 10 and graph.truncated and graph.total_nodes >= 8 * 4
    ids = {n.id for n in graph.nodes}
    assert all(lk.source_id in ids and lk.target_id in ids for lk in graph.links)
    assert not {NodeType.PASSAGE, NodeType.ENTRY} & {n.type for n in graph.nodes}
    centre = store.list_nodes(user, NodeType.ENTITY, limit=1)[0]
    around = store.subgraph(user, center_ids=[centre.id], depth=2)
    assert around.nodes[0].id == centre.id and len(around.nodes) >= 4


def test_batch_with_next_links_or_foreign_nodes_is_refused(store, user_ids):
    alice, bob = user_ids[0], user_ids[1]
    entry, batch = entry_with_memories(alice, "x", day(0))
    store.save_entry(entry)
    bad = MemoryBatch(entities=[Entity(user_id=bob, name="Eve", kind=EntityKind.PERSON)])
    with pytest.raises(ValidationError):
        store.write_batch(alice, bad)
    batch.links.append(Link(type=LinkType.NEXT, source_id=batch.episodes[0].id, target_id=batch.episodes[0].id))
    with pytest.raises(ValidationError):
        store.write_batch(alice, batch)


def test_a_different_embedder_is_refused(store_kind, store, tmp_path, request):
    other = HashEmbedder(dimension=64)
    if store_kind == "sqlite":
        from persona.store.sqlite import SqliteStore

        path = tmp_path / "persona.sqlite3"
        with pytest.raises(EmbedderMismatchError, match="64 dimensions"):
            SqliteStore(path, embedder=other.info)
    else:
        factory = request.getfixturevalue("neo4j_store_factory")
        with pytest.raises(EmbedderMismatchError, match="64 dimensions"):
            factory(embedder_override=other)


def test_stats_count_by_type(store, user):
    write_entry(store, user, "counted", day(0), people=("Ann",))
    counts = store.stats(user)
    assert counts["Entry"] == counts["Episode"] == counts["Psyche"] == counts["Goal"] == 1
    assert counts["Entity"] == 1 and counts["Passage"] == 1 and counts["links"] == 5


def test_export_holds_every_node_and_link(store, user):
    entry, batch = write_entry(store, user, "exported day with Ann", day(0), people=("Ann",))
    data = store.export_user(user)
    assert {n["id"] for n in data["nodes"]} == {entry.id} | {n.id for n in batch.nodes()}
    assert len(data["links"]) == len(batch.links)
    assert data["embedder"]["dimension"] == EMBEDDER.info.dimension


@pytest.mark.parametrize("order", [(1, 2, 5), (5, 2, 1), (2, 5, 1)], ids=["ascending", "descending", "mixed"])
def test_several_episodes_in_one_batch_fill_the_same_gap(store, user, order):
    """An import of old entries into a journal that has newer ones: one batch, several episodes, one gap."""
    for offset in (0, 10):
        write_entry(store, user, f"day {offset}", day(offset))
    parts = [entry_with_memories(user, f"backdated day {offset}", day(offset)) for offset in order]
    for entry, _ in parts:
        store.save_entry(entry)
    store.write_batch(user, MemoryBatch.combine([b for _, b in parts]), done_entry_ids=[e.id for e, _ in parts])
    _assert_single_ordered_chain(store, user)
    assert len(store.chain(user)) == 5
