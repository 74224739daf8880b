"""Ingestion on both stores with the offline provider: the pipeline, the chain, duplicates, bad input, round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from persona.errors import ValidationError
from persona.ingest import chunk_passages, ingest_entry, ingest_many, retry_failed
from persona.llm.offline import OfflineProvider
from persona.models import MAX_ENTRY_CHARS, EntryStatus, LinkType, NodeType
from persona.transfer import restore_export
from tests.factories import day


def _chain_dates(store, user):
    episodes = {e.id: e for e in store.list_nodes(user, NodeType.EPISODE, limit=10_000)}
    return [episodes[i].occurred_at for i in store.chain(user)]


def test_entry_becomes_memories_with_provenance(store, provider, user):
    text = (
        "Had lunch with Sarah at Café Andorinha in Lisbon. I love long lunches. "
        "I want to finish the garden plan by Friday."
    )
    result = ingest_entry(store, provider, user, text, occurred_at=day(0))
    assert result.ok and result.entry.status is EntryStatus.DONE
    stored_entry = store.get_node(user, result.entry.id)
    assert stored_entry.status is EntryStatus.DONE and stored_entry.text == text
    episode = store.list_nodes(user, NodeType.EPISODE)[0]
    assert episode.entry_id == result.entry.id
    goals = store.list_nodes(user, NodeType.GOAL)
    assert goals and goals[0].due is not None and goals[0].source_sentence
    assert any("love" in p.text.lower() or "lunch" in p.text.lower() for p in store.list_nodes(user, NodeType.PSYCHE))
    names = {e.canonical for e in store.list_nodes(user, NodeType.ENTITY)}
    assert "sarah" in names
    passages = store.list_nodes(user, NodeType.PASSAGE, limit=100)
    assert " ".join(p.text for p in sorted(passages, key=lambda p: p.position)).split() == text.split()
    links = store.neighbours(user, [episode.id], link_types=[LinkType.FROM_ENTRY, LinkType.MENTIONS])
    assert {lk.type for lk in links} == {LinkType.FROM_ENTRY, LinkType.MENTIONS}


def test_backdated_entries_land_in_the_right_place(store, provider, user):
    for offset in (10, 20, 5, 30, 15, 0):
        ingest_entry(store, provider, user, f"Walked by the river on day {offset}.", occurred_at=day(offset))
    dates = _chain_dates(store, user)
    assert dates == sorted(dates) and len(dates) == 6
    assert [d.day for d in dates] == [day(o).day for o in (0, 5, 10, 15, 20, 30)]


def test_duplicate_ingest_is_a_no_op(store, provider, user):
    first = ingest_entry(store, provider, user, "A quiet Sunday with Tom.", occurred_at=day(1))
    before = store.stats(user)
    again = ingest_entry(store, provider, user, "A quiet  Sunday with Tom. ", occurred_at=day(1) + timedelta(hours=3))
    assert again.duplicate and again.entry.id == first.entry.id
    assert store.stats(user) == before


@pytest.mark.parametrize(
    ("text", "when", "message"),
    [
        ("", day(0), "empty"),
        ("   \n\t ", day(0), "empty"),
        ("\x00\x00", day(0), "empty"),
        ("fine text", datetime(2024, 1, 1), "timezone"),
        ("x" * (MAX_ENTRY_CHARS + 1), day(0), "limit"),
    ],
    ids=["empty", "whitespace", "nul-only", "naive-date", "too-long"],
)
def test_bad_input_is_refused_before_anything_is_written(store, provider, user, text, when, message):
    ingest_entry(store, provider, user, "Something already stored.", occurred_at=day(0))
    before = store.export_user(user)
    with pytest.raises(ValidationError, match=message):
        ingest_entry(store, provider, user, text, occurred_at=when)
    assert store.export_user(user) == before


def test_bad_user_id_is_refused(store, provider):
    with pytest.raises(ValidationError):
        ingest_entry(store, provider, "Robert'); DROP TABLE nodes;--", "hello", occurred_at=day(0))


def test_unusual_text_is_kept_exactly(store, provider, user):
    text = 'Emoji 🙂 and right-to-left: مرحبا بالعالم, with <b>tags</b> & "quotes". NUL\x00 removed.'
    result = ingest_entry(store, provider, user, text, occurred_at=day(0))
    assert result.ok
    assert store.get_node(user, result.entry.id).text == text.replace("\x00", "")


def test_a_long_entry_is_chunked_not_truncated(store, provider, user):
    words = [f"word{n}" for n in range(20_000)]
    text = ". ".join(" ".join(words[i : i + 12]) for i in range(0, len(words), 12)) + "."
    result = ingest_entry(store, provider, user, text, occurred_at=day(0))
    assert result.ok
    passages = store.list_nodes(user, NodeType.PASSAGE, limit=100_000)
    joined = " ".join(p.text for p in sorted(passages, key=lambda p: p.position))
    assert joined.split() == text.split()


def test_chunk_passages_splits_run_on_sentences():
    text = " ".join(["word"] * 95)
    chunks = chunk_passages(text, max_words=40)
    assert [len(c.split()) for c in chunks] == [40, 40, 15]


def test_failure_leaves_the_entry_failed_and_retry_finishes(store, provider, user):
    class FailingProvider(OfflineProvider):
        def extract(self, text, *, occurred_at):  # a provider fault, as a network error would be
            raise TimeoutError("the model did not answer in 60 s")

    result = ingest_entry(store, FailingProvider(), user, "Saved even though extraction fails.", occurred_at=day(0))
    assert not result.ok and "did not answer" in result.error
    entry = store.get_node(user, result.entry.id)
    assert entry.status is EntryStatus.FAILED and "did not answer" in entry.error
    assert store.count_nodes(user, NodeType.EPISODE) == 0  # nothing half-written
    retried = retry_failed(store, provider, user)
    assert [r.ok for r in retried] == [True]
    assert store.get_node(user, result.entry.id).status is EntryStatus.DONE
    assert store.count_nodes(user, NodeType.EPISODE) == 1


def test_ingest_many_reports_progress_and_keeps_order(store, provider, user):
    seen = []
    items = [(f"Day {n} at the studio with Jonas.", day(n)) for n in range(5)]
    results = ingest_many(store, provider, user, items, on_progress=lambda n, total, r: seen.append((n, total)))
    assert seen == [(n, 5) for n in range(1, 6)]
    assert all(r.ok for r in results)
    assert len(store.list_nodes(user, NodeType.ENTITY, limit=100)) >= 1


def test_export_then_import_gives_the_same_graph(store, provider, user_ids):
    source, target = user_ids[0], user_ids[1]
    for n in range(4):
        text = f"Met Priya at the park on day {n}. I love the park. I need to call Ada by Friday."
        ingest_entry(store, provider, source, text, occurred_at=day(n * 3))
    exported = store.export_user(source)
    report = restore_export(store, provider.embedder, exported, user_id=target)
    assert report.entries == 4
    again = store.export_user(target)

    def shape(data):
        by_id = {n["id"]: n for n in data["nodes"]}
        nodes = sorted(
            (n["type"], n.get("text") or n.get("title") or n.get("name"), n.get("occurred_at")) for n in data["nodes"]
        )
        links = sorted(
            (lk["type"], by_id[lk["source_id"]]["type"], by_id[lk["target_id"]]["type"]) for lk in data["links"]
        )
        return nodes, links

    assert shape(again) == shape(exported)
    assert _chain_dates(store, target) == _chain_dates(store, source)


def test_import_is_idempotent(store, provider, user):
    ingest_entry(store, provider, user, "Only once.", occurred_at=day(0))
    exported = store.export_user(user)
    report = restore_export(store, provider.embedder, exported, user_id=user)
    assert report.entries == 0 and report.skipped_duplicates == 1


def test_dates_in_other_time_zones_order_by_instant(store, provider, user):
    east = datetime(2024, 3, 2, 1, 0, tzinfo=UTC) + timedelta(hours=0)
    ingest_entry(store, provider, user, "Late night in Tokyo.", occurred_at=east.astimezone(UTC))
    from zoneinfo import ZoneInfo

    west = datetime(2024, 3, 1, 18, 0, tzinfo=ZoneInfo("America/New_York"))  # 23:00 UTC, before the first
    ingest_entry(store, provider, user, "Evening in New York.", occurred_at=west)
    dates = _chain_dates(store, user)
    assert dates == sorted(dates)


@pytest.mark.parametrize(
    "when",
    [
        datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=5))),
        datetime(9999, 12, 31, 23, 0, tzinfo=timezone(-timedelta(hours=5))),
    ],
    ids=["year-1", "year-9999"],
)
def test_dates_at_the_edge_of_time_are_refused(store, provider, user, when):
    with pytest.raises(ValidationError, match="between the years"):
        ingest_entry(store, provider, user, "edge of time", occurred_at=when)
    assert store.count_nodes(user, NodeType.ENTRY) == 0


def test_a_closed_store_says_it_is_unavailable(tmp_path, provider):
    from persona.errors import StoreUnavailableError
    from persona.store.sqlite import SqliteStore

    closed = SqliteStore(tmp_path / "closed.sqlite3", embedder=provider.embedder.info)
    closed.close()
    with pytest.raises(StoreUnavailableError, match="cannot be used"):
        ingest_entry(closed, provider, "someone", "text", occurred_at=day(0))


def test_an_entry_processed_twice_at_once_gets_memories_once(store, provider, user):
    """Two tabs retry the same pending entry: the second write finds it done and writes nothing."""
    from persona.ingest import process_entry
    from persona.models import Entry

    entry = store.save_entry(Entry(user_id=user, text="Pending while its model call runs.", occurred_at=day(0)))
    first = process_entry(store, provider, entry, fresh=True)
    second = process_entry(store, provider, entry, fresh=True)  # as if it had started before the first finished
    assert first.ok and second.duplicate
    assert store.count_nodes(user, NodeType.EPISODE) == 1


def test_a_restore_that_fails_half_way_leaves_entries_retryable(store, provider, user_ids):
    source, target = user_ids[0], user_ids[1]
    for n in range(3):
        ingest_entry(store, provider, source, f"Restorable day {n} with Ada.", occurred_at=day(n))
    exported = store.export_user(source)

    class BrokenEmbedder(type(provider.embedder)):
        calls = 0

        def embed(self, texts):
            BrokenEmbedder.calls += 1
            if BrokenEmbedder.calls == 2:
                raise TimeoutError("embedder went away")
            return super().embed(texts)

    with pytest.raises(TimeoutError):
        restore_export(store, BrokenEmbedder(), exported, user_id=target)
    statuses = [e.status for e in store.list_nodes(target, NodeType.ENTRY, newest_first=False)]
    assert statuses == [EntryStatus.DONE, EntryStatus.PENDING]  # never "done" without memories
    assert all(r.ok for r in retry_failed(store, provider, target))
    assert store.count_nodes(target, NodeType.EPISODE) == 2


def test_a_memory_cannot_move_to_another_entry(store, provider, user):
    result = ingest_entry(store, provider, user, "Provenance is fixed.", occurred_at=day(0))
    episode = store.list_nodes(user, NodeType.EPISODE)[0]
    with pytest.raises(ValidationError, match="entry_id"):
        store.update_node(user, episode.id, {"entry_id": "someone-else"})
    assert store.get_node(user, episode.id).entry_id == result.entry.id
