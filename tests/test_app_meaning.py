"""Meaning you can see, through AppTest with the sentence model: after saving an entry the Journal shows the earlier
entries it resembles (with their dates), and Chat says which sources matched by meaning rather than by words."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import streamlit as st

from persona.config import get_settings
from persona.ingest import ingest_entry
from persona.llm.neural import NeuralEmbedder
from persona.llm.offline import OfflineProvider
from persona.store.sqlite import SqliteStore
from tests.test_app import button, page_test, run, texts

EARLIER = [
    (datetime(2026, 6, 3, 8, tzinfo=UTC), "Ada and I walked along the river to the old lighthouse and back."),
    (datetime(2026, 6, 5, 8, tzinfo=UTC), "Paid the electricity bill and sorted the tax papers."),
    (datetime(2026, 6, 7, 8, tzinfo=UTC), "I was so stressed before the presentation that I could not sleep."),
]


@pytest.fixture
def neural_store(app_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SqliteStore]:
    """The app's SQLite file on the sentence model (the suite's default is the hashing embedder), seeded."""
    monkeypatch.setenv("PERSONA_EMBEDDER", "neural")
    get_settings.cache_clear()
    st.cache_resource.clear()
    provider = OfflineProvider(embedder=NeuralEmbedder())
    store = SqliteStore(app_home / "persona.sqlite3", embedder=provider.embedder.info)
    for when, text in EARLIER:
        assert ingest_entry(store, provider, "demo", text, occurred_at=when).ok
    yield store
    store.close()


def test_journal_shows_earlier_entries_similar_in_meaning(neural_store: SqliteStore) -> None:
    at = run(page_test("journal"))
    at.text_area(key="journal_text").input("Went for a long hike in the hills with my sister today.")
    button(at, "Save entry").click()
    run(at)
    assert "You wrote something similar" in [h.value for h in at.subheader]
    similar = [m.value for m in at.markdown if ":material/history:" in m.value]
    assert similar and "Wed 03 Jun 2026" in similar[0] and "walked along the river" in similar[0]
    assert not any("electricity" in m for m in similar), "an unrelated entry is not offered as similar"


def test_chat_sources_say_when_they_matched_by_meaning(neural_store: SqliteStore) -> None:
    at = run(page_test("chat"))
    at.chat_input[0].set_value("When did I feel anxious?")
    run(at)
    sources = at.session_state["chat_history"]["demo"][-1]["sources"]
    assert "stressed" in sources[0]["title"] + sources[0]["text"]
    assert sources[0]["reason"].startswith("matched by meaning")
    assert "Why: matched by meaning" in texts(at)


def test_a_store_from_another_embedder_says_why_and_is_reembedded_from_settings(
    app_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from persona.llm.embedding import HashEmbedder

    hashing = OfflineProvider(embedder=HashEmbedder(dimension=64))
    with SqliteStore(app_home / "persona.sqlite3", embedder=hashing.embedder.info) as old:
        walk = ingest_entry(old, hashing, "demo", EARLIER[0][1], occurred_at=EARLIER[0][0]).entry.id
        for when, text in EARLIER[1:]:
            ingest_entry(old, hashing, "demo", text, occurred_at=when)
        before = old.export_user("demo")["nodes"]
    monkeypatch.setenv("PERSONA_EMBEDDER", "neural")
    get_settings.cache_clear()
    st.cache_resource.clear()

    at = run(page_test("settings"))  # opened, not refused: a warning says why search by meaning is off
    warning = " ".join(w.value for w in at.warning).replace("\\", "")  # markdown escapes removed
    assert "Search by meaning is off" in warning and "persona-hash-v1-64" in warning and "persona reembed" in warning
    button(at, "Re-embed all memories").click()
    run(at)
    assert not any("Search by meaning is off" in w.value for w in at.warning)
    with SqliteStore(app_home / "persona.sqlite3", embedder=NeuralEmbedder().info) as moved:  # strict open: no mismatch
        assert moved.export_user("demo")["nodes"] == before
        hits = moved.vector_search("demo", NeuralEmbedder().embed(["Who did I go hiking with?"])[0], k=2)
        assert walk in [getattr(n, "entry_id", None) for n in moved.get_nodes("demo", [h.id for h in hits])]
