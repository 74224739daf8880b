"""One maximum-size entry must not stall everyone: its passages are bounded, and a big batch of passages is written
in short transactions before the entry's memories, which still arrive with the ``done`` mark in one (issue 16)."""

from __future__ import annotations

import pytest

from persona import ingest
from persona.ingest import bound_passages, chunk_passages, ingest_entry, retry_failed
from persona.llm.offline import OfflineProvider
from persona.models import MAX_ENTRY_CHARS, EntryStatus, LinkType, NodeType
from tests.factories import day


@pytest.fixture(scope="module")
def provider() -> OfflineProvider:
    return OfflineProvider()


def _short_lines(chars: int) -> str:
    lines = [f"short line number {n:07d} here" for n in range(chars // 30 + 1)]
    return "\n".join(lines)[:chars]


def test_a_maximum_size_entry_of_short_lines_gives_bounded_passages_and_keeps_every_word():
    text = _short_lines(MAX_ENTRY_CHARS)
    unbounded = chunk_passages(text)
    assert len(unbounded) > 20_000  # what the entry gave before: tens of thousands of passages
    passages = bound_passages(unbounded)
    assert len(passages) <= ingest.MAX_PASSAGES
    assert " ".join(passages).split() == " ".join(unbounded).split()  # joined, in order, nothing dropped
    assert max(len(p) for p in passages) < 2_000  # still quotable, and within the embedder's window


def test_bound_passages_leaves_a_normal_entry_alone():
    passages = [f"passage {n}" for n in range(10)]
    assert bound_passages(passages, limit=10) == passages
    assert bound_passages(passages, limit=3) == [
        "passage 0\npassage 1\npassage 2\npassage 3",
        *["\n".join(f"passage {n}" for n in range(s, min(s + 4, 10))) for s in (4, 8)],
    ]


@pytest.fixture
def small_limits(monkeypatch):
    monkeypatch.setattr(ingest, "MAX_PASSAGES", 60)
    monkeypatch.setattr(ingest, "PASSAGE_WRITE_CHUNK", 20)


def _long_entry(lines: int) -> str:
    return "\n".join(
        f"On line {n} I wrote about the garden, the bikes and the long walk home again." for n in range(lines)
    )


def test_a_big_entry_is_written_in_chunks_and_ends_done_with_every_passage(store, provider, user, small_limits):
    writes = []
    real = store.write_batch

    def counting(user_id, batch, *, done_entry_ids=(), **more):
        writes.append((len(batch.passages), list(done_entry_ids)))
        return real(user_id, batch, done_entry_ids=done_entry_ids, **more)

    store.write_batch = counting
    result = ingest_entry(store, provider, user, _long_entry(240), occurred_at=day(0))
    assert result.ok
    assert [n for n, _ in writes] == [20, 20, 20] and [d for _, d in writes][:2] == [[], []]
    assert writes[-1][1] == [result.entry.id]  # the done mark comes with the last chunk and the memories
    assert store.count_nodes(user, NodeType.PASSAGE) == 60
    part_of = store.neighbours(user, [result.entry.id], link_types=[LinkType.PART_OF])
    assert len(part_of) == 60


def test_a_crash_between_passage_chunks_is_retried_without_doubles(store, provider, user, small_limits):
    real = store.write_batch
    calls = {"n": 0}

    def crash_on_the_final_write(user_id, batch, *, done_entry_ids=(), **more):
        calls["n"] += 1
        if done_entry_ids:
            raise ConnectionError("the store went away")
        return real(user_id, batch, done_entry_ids=done_entry_ids, **more)

    store.write_batch = crash_on_the_final_write
    result = ingest_entry(store, provider, user, _long_entry(240), occurred_at=day(0))
    assert not result.ok and calls["n"] == 3
    assert store.count_nodes(user, NodeType.PASSAGE) == 40  # two chunks landed before the crash
    assert store.count_nodes(user, NodeType.EPISODE) == 0
    store.write_batch = real
    retried = retry_failed(store, provider, user)
    assert [r.ok for r in retried] == [True]
    assert store.count_nodes(user, NodeType.PASSAGE) == 60  # each passage once
    assert store.get_node(user, result.entry.id).status is EntryStatus.DONE
    assert store.count_nodes(user, NodeType.EPISODE) == 1
