"""Faults in the middle of a bulk import of 200 entries, on both stores: nothing is lost.

The LLM provider (over real HTTP to the fake OpenAI server) answers 500, 429, times out and sends garbage for
entries in the middle of the import; the embedder fails for a chunk; the store refuses a write. Every entry ends up
either done or stored as failed with its reason, exactly the entries that met a fault fail, ``retry_failed``
finishes the job once the faults clear, and the episode chain is one ordered path.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from persona.errors import ProviderError, StoreUnavailableError
from persona.ingest import IMPORT_CHUNK, OFFLINE_IMPORT_CHUNK, ingest_many, retry_failed
from persona.llm.embedding import HashEmbedder
from persona.llm.offline import OfflineProvider
from persona.models import EntryStatus, LinkType, NodeType
from persona.store.base import Store
from tests.factories import day
from tests.fake_openai import FakeOpenAI, Reply, _Handler
from tests.test_store_contract import _assert_single_ordered_chain

TOTAL = 200
PEOPLE = ["Sarah", "Tom", "Helena", "Ana", "Rui"]


@pytest.fixture(autouse=True)
def no_nagle(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake server writes a response's headers and body separately; with Nagle's algorithm on, each request then
    waits ~40 ms for a delayed ACK (10 s for 200 entries). TCP_NODELAY, as real servers set it."""
    monkeypatch.setattr(_Handler, "disable_nagle_algorithm", True)


def journal(total: int = TOTAL, *, seed: int = 7) -> list[tuple[str, Any]]:
    """Distinct entries mentioning the same few people, dated out of order (backdated entries land mid-chain)."""
    rng = random.Random(seed)
    items = []
    for number in range(total):
        who = PEOPLE[number % len(PEOPLE)]
        text = f"Entry {number}: had coffee with {who} in Lisbon and talked about the garden plan number {number}."
        items.append((text, day(rng.randrange(0, 365)) + timedelta(minutes=number)))
    return items


class FlakyEmbedder(HashEmbedder):
    """The store's embedder, failing on the calls numbered in ``fail_calls`` (1-based)."""

    def __init__(self, fail_calls: set[int]) -> None:
        super().__init__()
        self.fail_calls = fail_calls
        self.calls = 0

    def embed(self, texts):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls in self.fail_calls:
            raise ProviderError(f"embeddings: injected failure on call {self.calls}")
        return super().embed(texts)


class FlakyStore:
    """A store whose ``write_batch`` fails on the calls numbered in ``fail_calls`` (the database went away)."""

    def __init__(self, store: Store, fail_calls: set[int]) -> None:
        self._store = store
        self.fail_calls = fail_calls
        self.writes = 0

    def write_batch(self, *args: Any, **kwargs: Any) -> dict[str, str]:
        self.writes += 1
        if self.writes in self.fail_calls:
            raise StoreUnavailableError(f"injected: the store went away on write {self.writes}")
        return self._store.write_batch(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


# What each entry's extraction gets from the fake server, by entry number (the rest get the default answer). The
# provider runs with max_retries=1, so one error is retried by the SDK (the entry succeeds) and two in a row fail.
GARBAGE = "{this is not json"
BAD_SCHEMA = '{"title": "x", "summary": "y", "importance": 7, "entities": [], "psyche": [], "goals": []}'
CHAT_FAULTS: dict[int, tuple[str, list[Reply], bool]] = {
    # entry: (kind, replies it consumes, whether the entry fails)
    40: ("http-500 once (retried)", [Reply(status=500, error="boom", headers={"retry-after-ms": "1"})], False),
    41: ("http-500 twice", [Reply(status=500, error="boom", headers={"retry-after-ms": "1"})] * 2, True),
    42: ("http-429 twice", [Reply(status=429, error="slow down", headers={"retry-after-ms": "1"})] * 2, True),
    43: ("http-429 once (retried)", [Reply(status=429, error="slow down", headers={"retry-after-ms": "1"})], False),
    44: ("timeout twice", [Reply(delay=1.2)] * 2, True),
    45: ("garbage twice", [Reply(content=GARBAGE)] * 2, True),
    46: ("garbage, repaired", [Reply(content=GARBAGE)], False),
    47: ("schema-invalid twice", [Reply(content=BAD_SCHEMA)] * 2, True),
    120: ("http-503 twice", [Reply(status=503, error="maintenance", headers={"retry-after-ms": "1"})] * 2, True),
    121: ("http-500 twice", [Reply(status=500, error="boom", headers={"retry-after-ms": "1"})] * 2, True),
    122: ("http-400 (not retried)", [Reply(status=400, error="bad request")], True),
    123: ("cut-off JSON twice", [Reply(content='{"title": "Coffee", "summ', finish_reason="length")] * 2, True),
}


def queue_chat_faults(fake: FakeOpenAI, faults: dict[int, tuple[str, list[Reply], bool]]) -> None:
    """Queue default answers up to each faulty entry, then its faults: entries are extracted in order."""
    position = 0
    for entry in sorted(faults):
        for _ in range(entry - position):
            fake.queue(Reply())
        _, replies, _ = faults[entry]
        for reply in replies:
            fake.queue(reply)
        if not faults[entry][2] and len(replies) and replies[-1].status == 200 and replies[-1].content == GARBAGE:
            fake.queue(Reply())  # the repair call gets a good answer
        elif not faults[entry][2] and replies and replies[-1].status >= 400:
            fake.queue(Reply())  # the SDK's retry gets a good answer
        position = entry + 1


def check_nothing_lost(store: Store, user: str, items: list[tuple[str, Any]], results: list) -> dict[str, int]:
    """Every item is one stored entry, done or failed with its reason, as its result says."""
    assert len(results) == len(items)
    entries = store.list_nodes(user, NodeType.ENTRY, limit=10_000, newest_first=False)
    by_text = {e.text: e for e in entries}
    assert len(entries) == len(items) and set(by_text) == {text for text, _ in items}, "an entry was lost"
    for (text, _), result in zip(items, results, strict=True):
        stored = by_text[text]
        assert result.entry.id == stored.id
        assert stored.status is result.entry.status, (
            f"{text[:20]}: result {result.entry.status}, stored {stored.status}"
        )
        if stored.status is EntryStatus.FAILED:
            assert stored.error and len(stored.error) > 5, "a failed entry needs its reason"
        else:
            assert stored.status is EntryStatus.DONE
    done = [e for e in entries if e.status is EntryStatus.DONE]
    with_memories = {
        lk.target_id for lk in store.neighbours(user, [e.id for e in done], link_types=[LinkType.FROM_ENTRY])
    }
    assert with_memories == {e.id for e in done}, "a done entry has no episode"
    failed = [e for e in entries if e.status is EntryStatus.FAILED]
    half_written = store.neighbours(user, [e.id for e in failed], link_types=[LinkType.FROM_ENTRY, LinkType.PART_OF])
    assert not half_written, "a failed entry has memories"
    return Counter(e.status.value for e in entries)


def check_finished(store: Store, user: str, items: list[tuple[str, Any]]) -> None:
    entries = store.list_nodes(user, NodeType.ENTRY, limit=10_000)
    assert len(entries) == len(items) and all(e.status is EntryStatus.DONE for e in entries)
    assert store.count_nodes(user, NodeType.EPISODE) == len(items)
    _assert_single_ordered_chain(store, user)
    names = [e.canonical for e in store.list_nodes(user, NodeType.ENTITY, limit=10_000)]
    assert len(names) == len(set(names)), "one node per canonical name"


def test_a_chunk_with_interleaved_dates_keeps_one_ordered_chain(store: Store, user: str) -> None:
    """Found by the fault tests: a chunk of 16 entries is one transaction, and its episodes were all stored before
    any was placed, so a placement could pick a stored-but-unplaced sibling as its neighbour and fork the chain
    (two NEXT links out of one episode) as soon as an import's dates were not in order."""
    items = journal(3 * OFFLINE_IMPORT_CHUNK + 5, seed=1)
    results = ingest_many(store, OfflineProvider(), user, items)
    assert all(r.ok for r in results)
    _assert_single_ordered_chain(store, user)


def _provider(fake: FakeOpenAI, embedder: HashEmbedder | None = None):
    provider = fake.provider(timeout=0.5, max_retries=1)
    provider.embedder = embedder or HashEmbedder()  # the store's vectors (one Neo4j index serves every test)
    return provider


def test_llm_faults_mid_import_lose_nothing_and_retry_finishes(store: Store, user: str, fake_openai) -> None:
    items = journal()
    queue_chat_faults(fake_openai, CHAT_FAULTS)
    progress: list[tuple[int, int]] = []
    results = ingest_many(
        store, _provider(fake_openai), user, items, on_progress=lambda n, total, _: progress.append((n, total))
    )
    counts = check_nothing_lost(store, user, items, results)
    failed = {n for n, r in enumerate(results) if not r.ok}
    assert failed == {n for n, (_, _, fails) in CHAT_FAULTS.items() if fails}, "exactly the faulty entries fail"
    assert counts == {"done": TOTAL - len(failed), "failed": len(failed)}
    assert progress == [(n, TOTAL) for n in range(1, TOTAL + 1)], "progress is reported for every entry"
    reasons = {n: results[n].error.lower() for n in failed}
    assert "500" in reasons[41] and "429" in reasons[42] and "timed out" in reasons[44]
    assert "schema" in reasons[45] or "json" in reasons[45]
    # the faults clear: one retry finishes the job
    retried = retry_failed(store, _provider(fake_openai), user)
    assert len(retried) == len(failed) and all(r.ok for r in retried)
    check_finished(store, user, items)


def test_embedder_and_store_faults_mid_import_lose_nothing(store: Store, user: str) -> None:
    """The embedder fails for a whole chunk and then for two entries of it; later the store refuses a chunk's write
    and then one entry's write. Entries of a chunk that fails as a whole are written one by one."""
    items = journal(seed=11)
    # embeddings: one call per chunk; a failed chunk is retried entry by entry (one call each)
    embedder = FlakyEmbedder(fail_calls={4, 5, 6})  # chunk 4 fails, then its first two entries
    flaky = FlakyStore(store, fail_calls={8 + IMPORT_CHUNK, 8 + IMPORT_CHUNK + 1})
    results = ingest_many(flaky, OfflineProvider(embedder), user, items, chunk_size=IMPORT_CHUNK)  # type: ignore[arg-type]
    check_nothing_lost(store, user, items, results)
    failed = sorted(n for n, r in enumerate(results) if not r.ok)
    assert len(failed) == 3, failed  # two entries whose embeddings failed, one whose write failed
    assert all("injected" in results[n].error for n in failed)
    assert {"ProviderError", "StoreUnavailableError"} == {results[n].error.split(":")[0] for n in failed}
    retried = retry_failed(store, OfflineProvider(), user)
    assert len(retried) == 3 and all(r.ok for r in retried)
    check_finished(store, user, items)


def test_reimporting_the_same_file_after_faults_is_a_resume_not_a_duplicate(store: Store, user: str, fake_openai):
    """Running the same import again (what a person does after an error) finishes the failed entries and adds
    nothing twice."""
    items = journal(40, seed=3)
    queue_chat_faults(fake_openai, {n: CHAT_FAULTS[k] for n, k in ((10, 41), (11, 44), (30, 45))})
    first = ingest_many(store, _provider(fake_openai), user, items)
    assert sum(not r.ok for r in first) == 3
    again = ingest_many(store, _provider(fake_openai), user, items)
    assert all(r.ok for r in again)
    assert sum(not r.duplicate for r in again) == 3, "only the failed entries were processed again"
    check_finished(store, user, items)


FAULT_KINDS: Callable[[], list[str]] = lambda: sorted({kind for kind, _, _ in CHAT_FAULTS.values()})  # noqa: E731


def test_the_fault_table_covers_the_kinds_the_issue_names() -> None:
    kinds = " ".join(FAULT_KINDS())
    for needed in ("500", "429", "timeout", "garbage", "schema"):
        assert needed in kinds
    assert len(CHAT_FAULTS) >= 10


@pytest.mark.slow
def test_random_faults_over_a_long_import(store: Store, user: str, fake_openai) -> None:
    """1,000 entries, a fault every ~15 entries, of a random kind."""
    rng = random.Random(99)
    items = journal(1_000, seed=5)
    kinds = list(CHAT_FAULTS.values())
    faults = {n: rng.choice(kinds) for n in range(5, 1_000, 15)}
    queue_chat_faults(fake_openai, faults)
    results = ingest_many(store, _provider(fake_openai), user, items)
    check_nothing_lost(store, user, items, results)
    assert {n for n, r in enumerate(results) if not r.ok} == {n for n, f in faults.items() if f[2]}
    assert all(r.ok for r in retry_failed(store, _provider(fake_openai), user))
    check_finished(store, user, items)
