"""Limits: a 1 MB entry and a long import complete in bounded memory; input beyond the documented limits is refused
with a clear message before anything is written.

``bench/limits.py`` measures peak RSS for a 1 MB entry and a 10,000-entry import on each store (a table for the
report); these tests keep the properties that table depends on.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from persona.errors import ValidationError
from persona.importers import MAX_IMPORT_BYTES, detect_and_parse
from persona.ingest import ingest_entry, ingest_many
from persona.llm.offline import OfflineProvider
from persona.models import MAX_ENTRY_CHARS, LinkType, NodeType
from persona.retrieval import retrieve
from persona.store.base import Store
from persona.store.sqlite import SqliteStore
from persona.views import import_file
from tests.factories import day

ROOT = Path(__file__).resolve().parent.parent
PROVIDER = OfflineProvider()


def _long_entry(chars: int) -> str:
    """Journal-like text of exactly ``chars`` characters, a line break every few sentences, a marker at the end."""
    rng = random.Random(3)
    people = ["Sarah", "Tom", "Helena", "Ana"]
    lines, size = [], 0
    while size < chars:
        line = " ".join(
            f"I walked with {rng.choice(people)} and we talked about plan {rng.randrange(999)}." for _ in range(3)
        )
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)[: chars - 40] + "\nThe very last words: zanzibarquokka."


def _everything(store: Store) -> dict[str, int]:
    return store.stats()


def test_a_one_megabyte_entry_is_stored_whole_and_searchable(sqlite_store: SqliteStore) -> None:
    """SQLite here; on Neo4j the injection suite ingests its own 1 MB value (tests/hostile.py, ``long-1mb``)."""
    store, user = sqlite_store, "u-one-mb"
    text = _long_entry(2**20)
    result = ingest_entry(store, PROVIDER, user, text, occurred_at=day(0))
    assert result.ok, result.error
    assert store.get_node(user, result.entry.id).text == text
    passages = store.neighbours(user, [result.entry.id], link_types=[LinkType.PART_OF])
    assert len(passages) > 1_000, "the whole entry is cut into passages, none dropped"
    hits = store.text_search(user, "zanzibarquokka", types=[NodeType.PASSAGE])
    assert hits, "the last words of a 1 MB entry are found"
    assert retrieve(store, PROVIDER.embedder, user, "zanzibarquokka")


@pytest.mark.parametrize("where", ["alone", "in the middle of an import"])
def test_an_entry_over_the_limit_is_refused_before_anything_is_written(store: Store, user: str, where: str) -> None:
    too_long = "x" * (MAX_ENTRY_CHARS + 1)
    before = _everything(store)
    with pytest.raises(ValidationError, match=r"limit is 2,000,000") as refused:
        if where == "alone":
            ingest_entry(store, PROVIDER, user, too_long, occurred_at=day(0))
        else:
            items = [(f"Fine entry {n}.", day(n)) for n in range(30)]
            items.insert(17, (too_long, day(17)))
            ingest_many(store, PROVIDER, user, items)
    assert "Split it" in str(refused.value), "the message says what to do"
    assert _everything(store) == before, "nothing was written, not even the user"
    assert user not in {u.id for u in store.list_users()}


def test_an_entry_at_the_limit_is_accepted_by_validation() -> None:
    from persona.ingest import validate_entry_input

    text, _ = validate_entry_input("u-limit", "y " * (MAX_ENTRY_CHARS // 2), day(0))
    assert len(text) == MAX_ENTRY_CHARS


def test_a_file_over_the_import_limit_is_refused_before_it_is_read(store: Store, user: str) -> None:
    raw = b"## 2024-03-01\n" + b"a" * (MAX_IMPORT_BYTES + 1)
    before = _everything(store)
    with pytest.raises(ValidationError, match=r"the limit is \d+ MB"):
        detect_and_parse("journal.md", raw)
    with pytest.raises(ValidationError, match=r"the limit is \d+ MB"):
        import_file(store, PROVIDER, user, "journal.md", raw)
    assert _everything(store) == before


def test_a_file_holding_one_entry_over_the_limit_is_refused_whole(store: Store, user: str) -> None:
    entries = [f"## 2024-03-{n:02d}\nA fine day number {n}.\n" for n in range(1, 20)]
    entries.insert(7, "## 2024-02-01\n" + "word " * (MAX_ENTRY_CHARS // 5 + 10) + "\n")
    raw = "".join(entries).encode()
    assert len(raw) < MAX_IMPORT_BYTES
    before = _everything(store)
    with pytest.raises(ValidationError, match="2024-02-01"):
        import_file(store, PROVIDER, user, "journal.md", raw)
    assert _everything(store) == before


def test_an_import_keeps_no_vectors_in_its_results_and_little_memory(sqlite_store: SqliteStore) -> None:
    """Found by bench/limits.py: ingest_many returned every entry's batch with its embeddings, so a 10,000-entry
    import held tens of millions of Python floats (~900 MB peak RSS for 1.4 MB of text). Results now keep what a
    person reads; the vectors are in the store. (The store does not matter here; tracemalloc slows Neo4j's driver.)"""
    store, user = sqlite_store, "u-memory"
    rng = random.Random(9)
    items = [
        (f"Entry {n}: lunch with {rng.choice(['Sarah', 'Tom'])} about plan {n}.", day(n % 300)) for n in range(300)
    ]
    tracemalloc.start()
    try:
        results = ingest_many(store, PROVIDER, user, items)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert all(r.ok for r in results)
    assert all(node.embedding is None for r in results for node in r.batch.nodes())
    assert peak < 12 * 2**20, f"{peak / 2**20:.1f} MB of Python memory for 300 short entries"
    hits = store.vector_search(user, PROVIDER.embedder.embed(["lunch with Sarah"])[0], k=5)
    assert hits, "the vectors are in the store"


@pytest.mark.slow
def test_the_limits_benchmark_stays_within_bounds(tmp_path: Path) -> None:
    """bench/limits.py on SQLite: the 1 MB entry and a 10,000-entry import each peak under 400 MB RSS."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "limits.py"), "--stores", "sqlite"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    rows = [json.loads(line.split(": ", 1)[1].replace("'", '"')) for line in done.stderr.splitlines() if ": {" in line]
    print("\n" + done.stdout)
    assert len(rows) == 2
    assert all(row["peak RSS MB"] < 400 for row in rows), rows


def test_deleting_a_user_bigger_than_one_delete_batch(store: Store, user_ids: list[str], monkeypatch) -> None:
    """Found by bench/limits.py: Neo4j deleted a user in one transaction, and a 10,000-entry journal (~37,000
    nodes) hit the transaction memory limit, so that user could never be deleted (and the driver's TransientError
    leaked). Nodes now go in batches; a batch of 7 here makes a small journal take many."""
    import persona.store.neo4j as neo4j_store

    monkeypatch.setattr(neo4j_store, "DELETE_BATCH", 7)
    big, bystander = user_ids[0], user_ids[1]
    items = [(f"Entry {n} with Sarah and Tom in Lisbon.", day(n)) for n in range(12)]
    assert all(r.ok for r in ingest_many(store, PROVIDER, big, items))
    assert ingest_entry(store, PROVIDER, bystander, "Entry 0 with Sarah and Tom in Lisbon.", occurred_at=day(0)).ok
    kept = store.export_user(bystander)
    nodes = sum(store.stats(big)[t.value] for t in NodeType)
    assert nodes > 7 * 5
    assert store.delete_user(big) == nodes
    assert store.stats(big) == {t.value: 0 for t in NodeType} | {"links": 0, "users": 0}
    assert big not in {u.id for u in store.list_users()}
    assert store.export_user(bystander) == kept
    assert store.delete_user(big) == 0, "deleting again is a no-op"
