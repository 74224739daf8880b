"""Warming a fresh Neo4j server (``persona.warmup``): the work runs for real on the server, inside one transaction
that is rolled back, so the database is left as it was; the app and the API start it in the background (the rest of
the suite runs with ``NEO4J_WARM_UP=false``) and a failure never reaches the person."""

from __future__ import annotations

import logging
import uuid

import pytest

import app_support
from persona import warmup
from persona.actions import export_json
from persona.api import Clients
from persona.config import Settings
from persona.errors import StoreError
from persona.ingest import ingest_entry
from persona.models import NodeType
from persona.store.neo4j import Neo4jStore
from tests.factories import day

pytestmark = pytest.mark.neo4j


@pytest.fixture
def neo4j_store(neo4j_store_factory) -> Neo4jStore:
    return neo4j_store_factory()


@pytest.fixture
def neo4j_env(app_home, neo4j_server, monkeypatch):
    """The settings the app and the API read (a fresh home, no cached settings), pointed at the session's Neo4j,
    with the warm-up on."""
    from persona.config import get_settings

    monkeypatch.setenv("PERSONA_STORE", "neo4j")
    monkeypatch.setenv("NEO4J_URI", neo4j_server.uri)
    monkeypatch.setenv("NEO4J_WARM_UP", "true")
    monkeypatch.delenv("NEO4J_PASSWORD", raising=False)
    monkeypatch.delenv("NEO4J_DATABASE", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _warm_up_users(store: Neo4jStore) -> list[str]:
    return [user.id for user in store.list_users() if user.id.startswith(warmup.WARM_UP_USER_PREFIX)]


def _warm_up_nodes(store: Neo4jStore) -> int:
    """Nodes of any warm-up user, with or without a User node (a path around the transaction would leave these)."""
    with store._driver.session(database=store.database) as session:
        query = "MATCH (n) WHERE n.user_id STARTS WITH $prefix RETURN count(n) AS n"
        return session.run(query, prefix=warmup.WARM_UP_USER_PREFIX).single()["n"]


def test_the_warm_up_imports_for_real_and_leaves_the_database_as_it_was(neo4j_store, provider):
    """Every warm-up entry is processed by the server (the import's results say so), yet afterwards no warm-up user,
    entry or memory exists, and a person's data is what it was."""
    person = f"u-{uuid.uuid4().hex[:10]}"
    neo4j_store.ensure_user(person)
    text = "Lunch with Sam in Lisbon. I want to learn the cello."
    ingest_entry(neo4j_store, provider, person, text, occurred_at=day(1))
    before = export_json(neo4j_store, person)

    assert warmup.warm_up(neo4j_store) == warmup.WARM_UP_ENTRIES
    assert warmup.warm_up(neo4j_store) == warmup.WARM_UP_ENTRIES  # again: nothing of the first one was left behind

    assert _warm_up_users(neo4j_store) == [] and _warm_up_nodes(neo4j_store) == 0
    assert export_json(neo4j_store, person) == before
    neo4j_store.delete_user(person)


def test_a_rolled_back_store_sees_its_own_writes_and_commits_none(neo4j_store, provider):
    user = f"u-{uuid.uuid4().hex[:10]}"
    with neo4j_store.rolled_back() as scratch:
        scratch.ensure_user(user)
        result = ingest_entry(scratch, provider, user, "Coffee with Priya at the studio.", occurred_at=day(2))
        assert result.ok
        assert [e.id for e in scratch.list_nodes(user, NodeType.ENTRY)] == [result.entry.id]  # it sees its writes
        assert user in {u.id for u in scratch.list_users()}
        assert user not in {u.id for u in neo4j_store.list_users()}  # nobody else does
    assert user not in {u.id for u in neo4j_store.list_users()}
    assert neo4j_store.find_entry_by_hash(user, result.entry.content_hash) is None


def test_a_rolled_back_store_stops_at_its_first_error_and_refuses_schema_changes(neo4j_store):
    """A failed statement ends the server's transaction, and a write that failed midway would leave its half in it:
    after the first error every call fails, so nothing builds on a half. A schema change cannot be rolled back."""
    user = f"u-{uuid.uuid4().hex[:10]}"
    with neo4j_store.rolled_back() as scratch:
        scratch.ensure_user(user)
        with pytest.raises(StoreError, match="refused a query"):
            scratch._read("RETURN 1 / 0 AS broken")
        with pytest.raises(StoreError, match="stopped at an earlier error"):
            scratch.list_users()
        with pytest.raises(StoreError, match="cannot change the store's embedder"):
            scratch.adopt_embedder()
    assert user not in {u.id for u in neo4j_store.list_users()}
    assert neo4j_store.list_users() is not None  # the store itself is unharmed


def test_the_app_warms_its_neo4j_store_in_the_background(neo4j_env, caplog):
    """The app's store opens at once, with the warm-up running beside it; the store is usable meanwhile, and the
    warm-up reports its end in the log."""
    caplog.set_level(logging.INFO, logger="persona.warmup")
    app_support._open_clients.clear()
    clients = app_support._open_clients()
    store = clients.store
    try:
        assert store.warming is not None
        person = f"u-{uuid.uuid4().hex[:10]}"
        store.ensure_user(person)
        # Meanwhile, the store works as usual.
        result = ingest_entry(store, clients.provider, person, "A walk by the river with Tom.", occurred_at=day(3))
        assert result.ok
        store.warming.join(timeout=120)
        assert not store.warming.is_alive()
        assert any("Neo4j warmed up" in r.getMessage() for r in caplog.records), caplog.text
        assert [e.text for e in store.list_nodes(person, NodeType.ENTRY)] == ["A walk by the river with Tom."]
        assert _warm_up_users(store) == []
        store.delete_user(person)
    finally:
        app_support._open_clients.clear()
        store.close()


def test_the_api_warms_its_store_and_the_setting_turns_it_off(neo4j_env, monkeypatch):
    from persona.config import get_settings

    clients = Clients(Settings(_env_file=None), None, None)
    try:
        assert clients.store.warming is not None
        clients.store.warming.join(timeout=120)
    finally:
        clients.store.close()
    monkeypatch.setenv("NEO4J_WARM_UP", "false")
    get_settings.cache_clear()
    quiet = Clients(Settings(_env_file=None), None, None)
    try:
        assert quiet.store.warming is None
    finally:
        quiet.store.close()


def test_a_store_waiting_for_its_re_embed_is_not_warmed(neo4j_env):
    """Its vector index holds the old model's dimension, which the warm-up's vectors would not fit."""
    from persona.llm.embedding import HashEmbedder
    from persona.llm.offline import OfflineProvider
    from persona.runtime import open_store

    store = open_store(OfflineProvider(embedder=HashEmbedder(128)), warm_up=True)
    try:
        assert store.stale_embedder is not None
        assert store.warming is None
    finally:
        store.close()


def test_a_failing_warm_up_is_logged_and_never_raised(neo4j_store_factory, caplog):
    """A store closed under the warm-up (the app shutting down, the server gone) ends it with a log line."""
    store = neo4j_store_factory()
    store.close()
    caplog.set_level(logging.INFO, logger="persona.warmup")
    warmup.start_warm_up(store).join(timeout=60)
    assert any("warm-up stopped early" in r.getMessage() for r in caplog.records), caplog.text
