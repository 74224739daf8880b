"""Warming a fresh Neo4j server (``persona.store.warmup``): the work runs for real on the server, inside one
transaction that is rolled back, so the database is left as it was; the app and the API start it in the background
and a failure never reaches the person."""

from __future__ import annotations

import logging
import threading
import uuid

import pytest

from persona.actions import export_json
from persona.config import Settings
from persona.ingest import ingest_entry
from persona.llm.offline import OfflineProvider
from persona.models import NodeType
from persona.runtime import open_store
from persona.store import warmup
from persona.store.neo4j import Neo4jStore
from tests.factories import day

pytestmark = pytest.mark.neo4j


@pytest.fixture
def neo4j_store(neo4j_store_factory) -> Neo4jStore:
    return neo4j_store_factory()


def _warm_up_user_exists(store: Neo4jStore) -> bool:
    return any(user.id == warmup.WARM_UP_USER for user in store.list_users())


def test_the_warm_up_imports_for_real_and_leaves_the_database_as_it_was(neo4j_store, provider):
    """Every warm-up entry is processed by the server (the import's results say so), yet afterwards no warm-up user,
    entry or memory exists, and a person's data is byte for byte what it was."""
    person = f"u-{uuid.uuid4().hex[:10]}"
    neo4j_store.ensure_user(person)
    text = "Lunch with Sam in Lisbon. I want to learn the cello."
    ingest_entry(neo4j_store, provider, person, text, occurred_at=day(1))
    before = export_json(neo4j_store, person)

    assert warmup.warm_up(neo4j_store) == warmup.WARM_UP_ENTRIES
    assert warmup.warm_up(neo4j_store) == warmup.WARM_UP_ENTRIES  # again: nothing of the first one was left behind

    assert not _warm_up_user_exists(neo4j_store)
    assert export_json(neo4j_store, person) == before
    neo4j_store.delete_user(person)


def test_a_rolled_back_store_sees_its_own_writes_and_commits_none(neo4j_store, provider):
    user = f"u-{uuid.uuid4().hex[:10]}"
    with neo4j_store.rolled_back() as scratch:
        scratch.ensure_user(user)
        result = ingest_entry(scratch, provider, user, "Coffee with Priya at the studio.", occurred_at=day(2))
        assert result.ok
        assert [e.id for e in scratch.list_nodes(user, NodeType.ENTRY)] == [result.entry.id]  # its reads see its writes
        assert user in {u.id for u in scratch.list_users()}
        assert user not in {u.id for u in neo4j_store.list_users()}  # nobody else does
    assert user not in {u.id for u in neo4j_store.list_users()}
    assert neo4j_store.find_entry_by_hash(user, result.entry.content_hash) is None


def test_the_app_and_api_warm_a_neo4j_store_in_the_background(neo4j_server, monkeypatch, caplog):
    """``open_store(warm_up=True)`` returns at once, with the warm-up running beside it; the store is usable
    meanwhile, and the warm-up reports its end in the log. Without the flag (the CLI, tests) nothing is started."""
    monkeypatch.setenv("PERSONA_STORE", "neo4j")
    monkeypatch.setenv("NEO4J_URI", neo4j_server.uri)
    monkeypatch.delenv("NEO4J_PASSWORD", raising=False)
    monkeypatch.delenv("NEO4J_DATABASE", raising=False)
    provider = OfflineProvider(embedder=_session_embedder())
    caplog.set_level(logging.INFO, logger="persona.store.warmup")

    plain = open_store(provider, Settings(_env_file=None))
    assert not _warm_up_threads()
    plain.close()

    store = open_store(provider, Settings(_env_file=None), warm_up=True)
    try:
        threads = _warm_up_threads()
        assert len(threads) == 1
        person = f"u-{uuid.uuid4().hex[:10]}"
        store.ensure_user(person)
        # Meanwhile, the store works as usual.
        assert ingest_entry(store, provider, person, "A walk by the river with Tom.", occurred_at=day(3)).ok
        threads[0].join(timeout=120)
        assert not threads[0].is_alive()
        assert any("Neo4j warmed up" in r.getMessage() for r in caplog.records), caplog.text
        assert [e.text for e in store.list_nodes(person, NodeType.ENTRY)] == ["A walk by the river with Tom."]
        assert not _warm_up_user_exists(store)
        store.delete_user(person)
    finally:
        store.close()


def test_a_failing_warm_up_is_logged_and_never_raised(neo4j_store_factory, caplog):
    """A store closed under the warm-up (the app shutting down, the server gone) ends it with a log line."""
    store = neo4j_store_factory()
    store.close()
    caplog.set_level(logging.INFO, logger="persona.store.warmup")
    warmup.start_warm_up(store).join(timeout=60)
    assert any("warm-up stopped early" in r.getMessage() for r in caplog.records), caplog.text


def _warm_up_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "persona-neo4j-warm-up"]


def _session_embedder():
    """The embedder the session's Neo4j was first opened with (a store refuses another one)."""
    from persona.llm.embedding import HashEmbedder

    return HashEmbedder()
