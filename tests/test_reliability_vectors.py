"""Vectors a store cannot search with are refused before they are written, on both stores.

Found by the reliability suite: a batch or an edit carrying an embedding of the wrong length (an embeddings server
that changed models) or with NaN was stored, and from then on every vector search of that user failed (SQLite:
``ValueError: cannot reshape array``; Neo4j: ``ClientError`` from ``vector.similarity.cosine``).
"""

from __future__ import annotations

import math

import pytest

from persona.errors import DuplicateError, ValidationError
from persona.models import NodeType
from tests.factories import EMBEDDER, day, entry_with_memories, write_entry

BAD_VECTORS = {
    "too-short": [0.5, 0.5],
    "too-long": [0.1] * (EMBEDDER.dimension + 1),
    "nan": [math.nan] * EMBEDDER.dimension,
    "inf": [math.inf] + [0.0] * (EMBEDDER.dimension - 1),
    "not-numbers": ["a"] * EMBEDDER.dimension,
}


@pytest.mark.parametrize("bad", [b for b in BAD_VECTORS if b != "not-numbers"])  # the model refuses those itself
def test_a_batch_with_a_bad_vector_is_refused_and_search_keeps_working(store, user, bad):
    _, first = write_entry(store, user, "Lunch with Sarah in Lisbon", day(0), people=("Sarah",))
    entry, batch = entry_with_memories(user, "Dinner with Tom", day(1))
    store.save_entry(entry)
    batch.goals[0].embedding = BAD_VECTORS[bad]
    before = store.export_user(user)
    with pytest.raises(ValidationError, match="embedding"):
        store.write_batch(user, batch)
    assert store.export_user(user) == before, "nothing of the refused batch is written"
    hits = store.vector_search(user, EMBEDDER.embed(["lunch with Sarah"])[0], k=5)
    assert hits and hits[0].id in {n.id for n in first.nodes()}


@pytest.mark.parametrize("bad", list(BAD_VECTORS))
def test_an_edit_with_a_bad_vector_is_refused(store, user, bad):
    _, batch = write_entry(store, user, "Lunch with Sarah in Lisbon", day(0))
    before = store.export_user(user)
    with pytest.raises(ValidationError, match="embedding"):
        store.update_node(user, batch.episodes[0].id, {"embedding": BAD_VECTORS[bad]})
    assert store.export_user(user) == before
    assert store.vector_search(user, EMBEDDER.embed(["lunch"])[0], k=3)


@pytest.mark.parametrize("bad", list(BAD_VECTORS))
def test_a_bad_query_vector_is_a_validation_error(store, user, bad):
    write_entry(store, user, "Lunch with Sarah in Lisbon", day(0))
    with pytest.raises(ValidationError):
        store.vector_search(user, BAD_VECTORS[bad], k=3, types=[NodeType.EPISODE])


def test_clearing_a_vector_is_still_allowed(store, user):
    _, batch = write_entry(store, user, "Lunch with Sarah in Lisbon", day(0))
    store.update_node(user, batch.psyche[0].id, {"embedding": None})
    hits = store.vector_search(user, EMBEDDER.embed(["likes lunch"])[0], k=10)
    assert batch.psyche[0].id not in {h.id for h in hits}


def test_renames_and_edits_that_collide_are_duplicate_errors_on_both_stores(store, user):
    """SQLite raised a bare ``sqlite3.IntegrityError`` here while Neo4j raised ``DuplicateError``."""
    first, batch = write_entry(store, user, "Lunch with Sarah", day(0), people=("Sarah", "Tom"))
    second, _ = write_entry(store, user, "Dinner alone", day(1))
    tom = next(e for e in batch.entities if e.name == "Tom")
    before = store.export_user(user)
    with pytest.raises(DuplicateError):
        store.update_node(user, tom.id, {"name": "SARAH"})
    with pytest.raises(DuplicateError):  # the same text on the same day (whitespace folded) is the same entry
        store.update_node(user, second.id, {"text": "Lunch  with Sarah", "occurred_at": first.occurred_at})
    assert store.export_user(user) == before
