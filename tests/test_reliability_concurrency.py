"""Concurrency: 8 threads ingest 50 entries each for ONE user, on each store, all mentioning the same few people.

Half the threads ingest entry by entry, half import in chunks; their dates interleave, so every write places
episodes in the middle of a chain other threads are changing. Afterwards: 400 entries, all done, none lost or
doubled; one entity per canonical name; one ordered chain. Run twice per store: threads sharing one store object,
and threads each opening their own (separate SQLite connections to one file, like separate processes; separate
Neo4j drivers).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest

from persona.ingest import IngestResult, ingest_entry, ingest_many
from persona.llm.offline import OfflineProvider
from persona.models import EntryStatus, LinkType, NodeType
from persona.store.base import Store
from persona.store.sqlite import SqliteStore
from tests.factories import EMBEDDER, day
from tests.test_store_contract import _assert_single_ordered_chain

THREADS, PER_THREAD = 8, 50
PEOPLE = ["Sarah", "Tom", "Helena"]
PLACES = ["Lisbon", "Porto"]


def _items(thread: int) -> list[tuple[str, object]]:
    rng = random.Random(thread)
    return [
        (
            f"Thread {thread} entry {n}: coffee with {PEOPLE[n % 3]} and {PEOPLE[(n + thread) % 3]} in "
            f"{PLACES[n % 2]}. I want to plan the trip to {PLACES[(n + 1) % 2]}.",
            day(rng.randrange(0, 200)) + timedelta(seconds=thread * 1000 + n),
        )
        for n in range(PER_THREAD)
    ]


def _hammer(stores: Callable[[int], Store], user: str) -> tuple[list[IngestResult], list[BaseException]]:
    results: list[IngestResult] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def work(thread: int) -> None:
        store, provider = stores(thread), OfflineProvider()
        try:
            start.wait()
            if thread % 2:
                done = ingest_many(store, provider, user, _items(thread))
            else:
                done = [ingest_entry(store, provider, user, text, occurred_at=when) for text, when in _items(thread)]
            with lock:
                results.extend(done)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,), name=f"ingest-{n}") for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return results, errors


def _check(store: Store, user: str, results: list[IngestResult], errors: list[BaseException]) -> dict[str, int]:
    assert not errors, [f"{type(e).__name__}: {e}" for e in errors[:3]]
    failed = [r.error for r in results if not r.ok]
    assert not failed, failed[:3]
    assert len(results) == THREADS * PER_THREAD
    entries = store.list_nodes(user, NodeType.ENTRY, limit=10_000)
    expected = {text for thread in range(THREADS) for text, _ in _items(thread)}
    assert len(entries) == len(expected) and {e.text for e in entries} == expected, "an entry was lost or doubled"
    assert all(e.status is EntryStatus.DONE for e in entries)
    episodes = store.count_nodes(user, NodeType.EPISODE)
    assert episodes == len(expected), f"{episodes} episodes for {len(expected)} entries"
    from_entry = store.neighbours(user, [e.id for e in entries], link_types=[LinkType.FROM_ENTRY])
    assert Counter(lk.target_id for lk in from_entry) == Counter({e.id: 1 for e in entries}), "one episode each"
    entities = store.list_nodes(user, NodeType.ENTITY, limit=10_000)
    canonicals = Counter(e.canonical for e in entities)
    assert all(n == 1 for n in canonicals.values()), f"duplicate entities: {canonicals.most_common(3)}"
    assert {p.lower() for p in PEOPLE + PLACES} <= set(canonicals)
    _assert_single_ordered_chain(store, user)
    return {"entries": len(entries), "episodes": episodes, "entities": len(entities)}


def test_eight_threads_one_user_one_store_object(store: Store, user: str) -> None:
    results, errors = _hammer(lambda _: store, user)
    print(f"\nconcurrency, one shared store object: {_check(store, user, results, errors)}")


@pytest.fixture
def own_stores(store_kind: str, store: Store, request: pytest.FixtureRequest):
    """A factory of separate store objects on the same database (closed afterwards)."""
    opened: list[Store] = []

    def make(_: int) -> Store:
        if store_kind == "sqlite":
            assert isinstance(store, SqliteStore)
            made: Store = SqliteStore(store.path, embedder=EMBEDDER.info)
        else:
            made = request.getfixturevalue("neo4j_store_factory")()
        opened.append(made)
        return made

    yield make
    for made in opened:
        if store_kind == "sqlite":
            made.close()


@pytest.mark.slow_on_neo4j  # 8 drivers; the shared-object test covers Neo4j quickly
def test_eight_threads_one_user_a_store_object_each(store: Store, user: str, own_stores, store_kind: str) -> None:
    # Fixtures are resolved in the main thread: open the stores first, then start the threads.
    stores = [own_stores(n) for n in range(THREADS)]
    results, errors = _hammer(lambda n: stores[n], user)
    print(f"\nconcurrency, a store object per thread: {_check(store, user, results, errors)}")
