"""Schema versions and migrations: a store made by release e557b58 (tests/fixtures) opens with nothing lost, a store
from a newer release is refused untouched, a failing migration changes nothing, unknown fields survive a rewrite."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from persona.errors import MigrationError, PersonaError, SchemaTooNewError
from persona.llm.embedding import HashEmbedder
from persona.models import NodeType, node_text
from persona.store import migrations
from persona.store.base import Store
from persona.store.migrations import Migration
from persona.store.sqlite import SqliteStore
from persona.transfer import restore_export
from tests.factories import day, write_entry

FIXTURES = Path(__file__).parent / "fixtures"
RELEASE = "e557b58"
FIXTURE_DB = FIXTURES / f"{RELEASE}.sqlite3"
FIXTURE_EXPORT = json.loads((FIXTURES / f"{RELEASE}.export.json").read_text())


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _raw_rows(path: Path) -> dict[str, Any]:
    """What the file holds, read with plain sqlite3: node rows (with vectors), links, users, and its schema state."""
    with sqlite3.connect(path) as conn:
        state = migrations.sqlite_state(conn)
        nodes = {r[0]: r[1:] for r in conn.execute("SELECT id, type, user_id, body, embedding FROM nodes")}
        links = sorted(conn.execute("SELECT user_id, type, source_id, target_id FROM links"))
        users = sorted(conn.execute("SELECT id, body FROM users"))
    conn.close()
    return {"state": state, "nodes": nodes, "links": links, "users": users}


def _sorted_export(export: dict[str, Any]) -> dict[str, Any]:
    return export | {"nodes": sorted(export["nodes"], key=lambda n: n["id"])}


def _as_this_release(export: dict[str, Any]) -> dict[str, Any]:
    """The release's export as this code reads it: migration 002 gives Psyche and Goal their time fields (true
    since they happened, current, learned when stored, no revisions); entities gain an empty relation and merge
    history. Nothing else differs."""
    nodes = []
    for node in export["nodes"]:
        if node["type"] in ("Psyche", "Goal"):
            node = migrations.with_validity(node)
        elif node["type"] == "Entity":
            node = node | {"relation": None, "merges": [], "facts": [], "matches": []}
        nodes.append(node)
    return _sorted_export(export | {"nodes": nodes})


def _validity_removed(nodes: dict[str, Any]) -> dict[str, Any]:
    """Raw node rows with the fields migration 002 added taken out of the bodies (compared as data, not bytes)."""
    added = ("valid_from", "valid_until", "learned_at", "revisions", "facts", "matches")
    rows = {}
    for node_id, (kind, user_id, body, embedding) in nodes.items():
        data = json.loads(body)
        rows[node_id] = (kind, user_id, {k: v for k, v in data.items() if k not in added}, embedding)
    return rows


@pytest.fixture
def release_copy(tmp_path: Path) -> Path:
    """A copy of the store release e557b58 wrote (the committed file itself is never opened for writing)."""
    copy = tmp_path / "persona.sqlite3"
    shutil.copyfile(FIXTURE_DB, copy)
    return copy


def test_release_fixture_opens_migrated_with_nothing_lost(release_copy: Path):
    before = _raw_rows(release_copy)
    assert before["state"] == ([], 0, True)  # e557b58 recorded no schema version
    store = SqliteStore(release_copy, embedder=HashEmbedder().info)
    try:
        backup = store.backup_path
        assert backup is not None and backup.parent == release_copy.parent and backup.exists()
        assert _raw_rows(backup) == before  # the backup is the store as the release left it
        for user_id, exported in FIXTURE_EXPORT["users"].items():
            assert _sorted_export(store.export_user(user_id)) == _as_this_release(exported)  # field by field
            episodes = store.count_nodes(user_id, NodeType.EPISODE)
            assert len(store.chain(user_id)) == episodes > 0
        assert store.stats() == {
            "Entry": 9, "Episode": 7, "Psyche": 3, "Goal": 3, "Entity": 10, "Passage": 7, "links": 37, "users": 2
        }  # fmt: skip
        hits = store.vector_search("ada", HashEmbedder().embed(["hiking with Maria in the Alps"])[0], k=3)
        assert "hiking" in node_text(store.get_node("ada", hits[0].id)).lower()
    finally:
        store.close()
    after = _raw_rows(release_copy)
    changed = {i for i, row in before["nodes"].items() if row[0] in ("Psyche", "Goal", "Entity")}
    assert {i: r for i, r in after["nodes"].items() if i not in changed} == {
        i: r for i, r in before["nodes"].items() if i not in changed
    }  # every other body and every vector byte for byte
    assert _validity_removed(after["nodes"]) == _validity_removed(before["nodes"])  # only fields added
    assert after["links"] == before["links"] and after["users"] == before["users"]
    assert after["state"] == ([s.name for s in migrations.SQLITE.steps], migrations.SQLITE.version, True)
    reopened = SqliteStore(release_copy, embedder=HashEmbedder().info)
    assert reopened.backup_path is None  # up to date: no migration, no new copy
    reopened.close()


def test_release_fixture_restores_into_neo4j_field_by_field(neo4j_store_factory):
    store = neo4j_store_factory()
    users = list(FIXTURE_EXPORT["users"])
    for user_id in users:
        store.delete_user(user_id)
    try:
        for user_id, exported in FIXTURE_EXPORT["users"].items():
            restore_export(store, HashEmbedder(), exported)
            assert _sorted_export(store.export_user(user_id)) == _as_this_release(exported)
            assert len(store.chain(user_id)) == store.count_nodes(user_id, NodeType.EPISODE) > 0
            with sqlite3.connect(FIXTURE_DB) as conn:
                vectors = conn.execute(
                    "SELECT count(*) FROM nodes WHERE user_id = ? AND embedding IS NOT NULL", (user_id,)
                ).fetchone()[0]
            conn.close()
            with store._driver.session(database=store.database) as session:
                stored = session.run("MATCH (n:Embedded {user_id: $u}) RETURN count(n) AS n", u=user_id).single()["n"]
            assert stored == vectors > 0
    finally:
        for user_id in users:
            store.delete_user(user_id)


def test_neo4j_without_a_schema_version_is_recognised_and_recorded(neo4j_store_factory):
    """A database e557b58 made has no schema node: opening it applies the (idempotent) baseline and records it."""
    store = neo4j_store_factory()
    with store._driver.session(database=store.database) as session:
        session.run("MATCH (m:PersonaMeta {key: 'schema'}) DELETE m").consume()
    reopened = neo4j_store_factory()
    assert reopened.applied_migrations == [s.name for s in migrations.NEO4J.steps]
    with store._driver.session(database=store.database) as session:
        assert migrations.neo4j_state(session) == (reopened.applied_migrations, migrations.NEO4J.version)


def test_sqlite_from_a_newer_release_is_refused_and_not_changed(tmp_path: Path):
    path = tmp_path / "persona.sqlite3"
    store = SqliteStore(path, embedder=HashEmbedder().info)
    write_entry(store, "ada", "A day at the lake", day(1))
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES ('900_from_the_future', 900, '2030-01-01')")
        conn.execute("PRAGMA user_version = 900")
    conn.close()
    digest, files = _digest(path), sorted(tmp_path.iterdir())
    with pytest.raises(SchemaTooNewError, match="newer than this Persona understands") as caught:
        SqliteStore(path, embedder=HashEmbedder().info)
    assert isinstance(caught.value, PersonaError) and "900_from_the_future" in str(caught.value)
    assert _digest(path) == digest
    assert sorted(p for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == files  # no backup


def test_neo4j_from_a_newer_release_is_refused_and_not_changed(neo4j_store_factory):
    store = neo4j_store_factory()
    with store._driver.session(database=store.database) as session:
        applied, version = migrations.neo4j_state(session)
        (history,) = session.run("MATCH (m:PersonaMeta {key: 'schema'}) RETURN m.history").single()
        session.execute_write(migrations._record_neo4j, "900_future", 900)
        try:
            with pytest.raises(SchemaTooNewError, match="version 900"):
                neo4j_store_factory()
            assert migrations.neo4j_state(session) == ([*applied, "900_future"], 900)
        finally:
            session.run(
                "MATCH (m:PersonaMeta {key: 'schema'}) SET m.version = $v, m.history = $h", v=version, h=history
            ).consume()


def _break_the_store(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE half_done (x)")
    conn.execute("UPDATE nodes SET body = '{}'")
    raise RuntimeError("this migration fails on purpose")


def test_failed_sqlite_migration_leaves_the_store_as_it_was(release_copy: Path, monkeypatch):
    SqliteStore(release_copy, embedder=HashEmbedder().info).close()
    before = _raw_rows(release_copy)
    steps = [*migrations.SQLITE.steps, Migration("002_fails_on_purpose", _break_the_store)]
    monkeypatch.setattr(migrations.SQLITE, "steps", steps)
    with pytest.raises(MigrationError, match="002_fails_on_purpose"):
        SqliteStore(release_copy, embedder=HashEmbedder().info)
    assert _raw_rows(release_copy) == before
    with sqlite3.connect(release_copy) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchone() is None
    conn.close()
    monkeypatch.undo()
    SqliteStore(release_copy, embedder=HashEmbedder().info).close()  # the code that knows no such step still opens it


def test_a_new_sqlite_migration_runs_once_and_older_code_then_refuses(release_copy: Path, monkeypatch):
    """The life of a real migration: applied on open, recorded with the version, then the store is too new for the
    code that lacks it."""
    added = Migration("002_note_column", lambda conn: conn.execute("ALTER TABLE users ADD COLUMN note TEXT"))
    monkeypatch.setattr(migrations.SQLITE, "steps", [*migrations.SQLITE.steps, added])
    store = SqliteStore(release_copy, embedder=HashEmbedder().info)
    assert store.backup_path is not None
    store.close()
    state = _raw_rows(release_copy)["state"]
    known = [step.name for step in migrations.SQLITE.steps]  # the list with the added step (still patched)
    assert state == (known, len(known), True) and known[-1] == "002_note_column"
    monkeypatch.undo()
    with pytest.raises(SchemaTooNewError, match="002_note_column"):
        SqliteStore(release_copy, embedder=HashEmbedder().info)


def test_failed_neo4j_migration_is_not_recorded_and_writes_nothing(neo4j_store_factory, monkeypatch):
    store = neo4j_store_factory()

    def fails(session) -> None:
        def work(tx) -> None:
            tx.run("CREATE (:FailedMigrationMarker)").consume()
            raise RuntimeError("this migration fails on purpose")

        session.execute_write(work)

    monkeypatch.setattr(migrations.NEO4J, "steps", [*migrations.NEO4J.steps, Migration("900_fails", fails)])
    with store._driver.session(database=store.database) as session:
        state = migrations.neo4j_state(session)
        with pytest.raises(MigrationError, match="900_fails"):
            neo4j_store_factory()
        assert migrations.neo4j_state(session) == state
        assert session.run("MATCH (m:FailedMigrationMarker) RETURN count(m) AS n").single()["n"] == 0


def _edit_stored_body(store: Store, node_id: str, extra: dict[str, Any]) -> None:
    """Add fields to a node's stored body, as a newer release would write them."""
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as conn:
            (body,) = conn.execute("SELECT body FROM nodes WHERE id = ?", (node_id,)).fetchone()
            conn.execute("UPDATE nodes SET body = ? WHERE id = ?", (json.dumps(json.loads(body) | extra), node_id))
        conn.close()
        return
    with store._driver.session(database=store.database) as session:
        body = session.run("MATCH (n:Node {id: $id}) RETURN n.body AS b", id=node_id).single()["b"]
        session.run("MATCH (n:Node {id: $id}) SET n.body = $b", id=node_id, b=json.dumps(json.loads(body) | extra))


def _stored_body(store: Store, node_id: str) -> dict[str, Any]:
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as conn:
            (body,) = conn.execute("SELECT body FROM nodes WHERE id = ?", (node_id,)).fetchone()
        conn.close()
        return json.loads(body)
    with store._driver.session(database=store.database) as session:
        return json.loads(session.run("MATCH (n:Node {id: $id}) RETURN n.body AS b", id=node_id).single()["b"])


def test_fields_a_newer_release_wrote_survive_a_read_modify_write(store: Store, user: str):
    entry, batch = write_entry(store, user, "Walked to the harbour with Ines", day(2), people=("Ines",))
    psyche, episode = batch.psyche[0], batch.episodes[0]
    future = {"reviewed_at": "2024-03-01T00:00:00Z", "mood": {"label": "calm", "score": 0.8}}
    for node_id in (psyche.id, episode.id, entry.id):
        _edit_stored_body(store, node_id, future)
    read = store.get_node(user, psyche.id)
    assert read.stored_extras == future
    store.update_node(user, psyche.id, {"text": "likes harbours"})
    store.update_node(user, episode.id, {"occurred_at": day(5)})  # moves it in the chain too
    store.set_entry_status(user, entry.id, "failed", error="simulated")
    for node_id in (psyche.id, episode.id, entry.id):
        assert _stored_body(store, node_id).items() >= future.items()
    assert _stored_body(store, psyche.id)["text"] == "likes harbours"
    exported = {n["id"]: n for n in store.export_user(user)["nodes"]}
    assert exported[psyche.id].items() >= future.items()


def test_cli_says_where_the_backup_is(tmp_path: Path):
    """A store made by release e557b58 (no recorded version) is migrated by the CLI, which names the copy it kept;
    a new store needs no copy."""
    fresh, old = tmp_path / "fresh", tmp_path / "old"
    old.mkdir()
    shutil.copyfile(FIXTURES / "e557b58.sqlite3", old / "persona.sqlite3")
    cli = [sys.executable, "-m", "persona.cli", "stats", "--user", "ada"]

    def run(home: Path) -> subprocess.CompletedProcess:
        env = os.environ | {"PERSONA_HOME": str(home), "PERSONA_PROVIDER": "offline", "PERSONA_EMBEDDER": "hash"}
        return subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)

    first = run(fresh)  # an unknown user on a new store: exit 2, and nothing to keep a copy of
    assert first.returncode == 2 and "copy" not in first.stderr
    second = run(old)
    backups = list(old.glob("persona.sqlite3.backup-v0-*"))
    assert second.returncode == 0, second.stderr
    assert len(backups) == 1 and str(backups[0]) in second.stderr


def test_neo4j_history_kept_as_a_list_by_a_pre_release_build_is_read_and_replaced(neo4j_store_factory):
    store = neo4j_store_factory()
    names, version = [s.name for s in migrations.NEO4J.steps], migrations.NEO4J.version
    read_meta = "MATCH (m:PersonaMeta {key: 'schema'}) RETURN m.migrations AS legacy, m.history AS history"
    with store._driver.session(database=store.database) as session:
        (history,) = session.run("MATCH (m:PersonaMeta {key: 'schema'}) RETURN m.history").single()
        session.run(
            "MATCH (m:PersonaMeta {key: 'schema'}) SET m.migrations = $names, m.applied_at = ['then'] REMOVE m.history",
            names=names,
        ).consume()
        try:
            assert migrations.neo4j_state(session) == (names, version)
            assert neo4j_store_factory().applied_migrations == []  # recognised: nothing runs again
            session.execute_write(migrations._record_neo4j, "900_probe", version)  # the next record replaces it
            row = session.run(read_meta).single()
            assert row["legacy"] is None
            assert [item["name"] for item in json.loads(row["history"])] == [*names, "900_probe"]
        finally:
            session.run(
                "MATCH (m:PersonaMeta {key: 'schema'}) SET m.history = $h, m.version = $v REMOVE m.migrations, "
                "m.applied_at",
                h=history,
                v=version,
            ).consume()


def test_release_fixture_memories_gain_their_time_fields_on_both_stores(release_copy: Path, neo4j_store_factory):
    """Migration 002: every Psyche and Goal the release stored is true since it happened, current, learned when it
    was stored, in the stored body itself (SQLite file) and in Neo4j after the migration runs on a release body."""
    store = SqliteStore(release_copy, embedder=HashEmbedder().info)
    store.close()
    with sqlite3.connect(release_copy) as conn:
        bodies = [json.loads(b) for (b,) in conn.execute("SELECT body FROM nodes WHERE type IN ('Psyche', 'Goal')")]
    conn.close()
    assert len(bodies) == 6
    for body in bodies:
        assert body["valid_from"] == body["occurred_at"] and body["learned_at"] == body["created_at"]
        assert body["valid_until"] is None and body["revisions"] == []

    neo4j = neo4j_store_factory()
    user_id = "ada"
    neo4j.delete_user(user_id)
    try:
        restore_export(neo4j, HashEmbedder(), FIXTURE_EXPORT["users"][user_id])
        goal_ids = [g.id for g in neo4j.list_nodes(user_id, NodeType.GOAL)]
        with neo4j._driver.session(database=neo4j.database) as session:
            # Put back the release's bodies (no time fields), as a database e557b58 wrote holds them, then migrate.
            release = {n["id"]: n for n in FIXTURE_EXPORT["users"][user_id]["nodes"]}
            rows = [
                {"id": i, "body": json.dumps({k: v for k, v in release[i].items() if k != "type"})} for i in goal_ids
            ]
            session.run("UNWIND $rows AS row MATCH (n:Node {id: row.id}) SET n.body = row.body", rows=rows).consume()
            assert all(
                '"valid_from"' not in r["body"]
                for r in session.run("MATCH (n:Goal {user_id: $u}) RETURN n.body AS body", u=user_id).data()
            )
            assert "002_memory_validity" in migrations.neo4j_state(session)[0]
            [validity] = [step for step in migrations.NEO4J.steps if step.name == "002_memory_validity"]
            validity.apply(session)
            bodies = [
                json.loads(r["body"])
                for r in session.run("MATCH (n:Goal {user_id: $u}) RETURN n.body AS body", u=user_id).data()
            ]
        assert bodies and all(b["valid_from"] == b["occurred_at"] and b["valid_until"] is None for b in bodies)
    finally:
        neo4j.delete_user(user_id)


def test_release_fixture_entities_gain_dated_facts_on_both_stores(release_copy: Path, neo4j_store_factory):
    """SQLite 004 / Neo4j 003: every Entity body gains ``facts`` and ``matches``; a relation kept undated (as the
    release after 003 stored "my sister Layla") becomes a current fact, true and learned since the entity was
    stored."""
    with sqlite3.connect(release_copy) as conn:
        entity_id, body = conn.execute("SELECT id, body FROM nodes WHERE type = 'Entity' ORDER BY id").fetchone()
        conn.execute(
            "UPDATE nodes SET body = ? WHERE id = ?", (json.dumps(json.loads(body) | {"relation": "sister"}), entity_id)
        )
    conn.close()
    SqliteStore(release_copy, embedder=HashEmbedder().info).close()
    with sqlite3.connect(release_copy) as conn:
        bodies = {i: json.loads(b) for i, b in conn.execute("SELECT id, body FROM nodes WHERE type = 'Entity'")}
    conn.close()
    assert len(bodies) == 10 and all(b["matches"] == [] for b in bodies.values())
    [fact] = bodies[entity_id]["facts"]
    created = bodies[entity_id]["created_at"]
    assert (fact["kind"], fact["value"], fact["valid_from"], fact["valid_until"], fact["learned_at"]) == (
        "relation", "sister", created, None, created
    )  # fmt: skip
    assert all(b["facts"] == [] for i, b in bodies.items() if i != entity_id)
    store = SqliteStore(release_copy, embedder=HashEmbedder().info)
    try:
        [entity] = store.get_nodes(bodies[entity_id]["user_id"], [entity_id])
        assert entity.relation == "sister" and entity.facts[0].current
    finally:
        store.close()

    neo4j = neo4j_store_factory()
    user_id = "ada"
    neo4j.delete_user(user_id)
    try:
        restore_export(neo4j, HashEmbedder(), FIXTURE_EXPORT["users"][user_id])
        entity_ids = [e.id for e in neo4j.list_nodes(user_id, NodeType.ENTITY)]
        release = {n["id"]: n for n in FIXTURE_EXPORT["users"][user_id]["nodes"]}
        with neo4j._driver.session(database=neo4j.database) as session:
            # Put back bodies as the release before this migration held them (a relation, no facts), then migrate.
            rows = [
                {
                    "id": i,
                    "body": json.dumps({k: v for k, v in release[i].items() if k != "type"} | {"relation": "boss"}),
                }
                for i in entity_ids
            ]
            session.run("UNWIND $rows AS row MATCH (n:Node {id: row.id}) SET n.body = row.body", rows=rows).consume()
            assert "003_entity_facts" in migrations.neo4j_state(session)[0]
            [step] = [s for s in migrations.NEO4J.steps if s.name == "003_entity_facts"]
            step.apply(session)
            step.apply(session)  # idempotent: facts already there are kept as they are
        entities = neo4j.list_nodes(user_id, NodeType.ENTITY)
        assert entities and all(
            [(f.value, f.valid_from, f.current) for f in e.facts] == [("boss", e.created_at, True)] for e in entities
        )
    finally:
        neo4j.delete_user(user_id)
