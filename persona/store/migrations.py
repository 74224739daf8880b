"""Schema versions and the ordered migrations of both stores.

A store records which migrations it has (SQLite: the ``schema_migrations`` table and ``PRAGMA user_version``; Neo4j:
the ``:PersonaMeta {key: 'schema'}`` node's ``history`` and ``version``). Opening a store runs the migrations it
lacks, in order; a store that records a migration this code does not know, or a higher version, was written by a
newer release and is refused (``SchemaTooNewError``) without being changed.

Writing a migration: add a small function at the end of the store's list (``@SQLITE.migration(name)`` takes a
``sqlite3.Connection`` inside the migration's transaction; ``@NEO4J.migration(name)`` takes a ``neo4j.Session`` and runs
its own transactions, with its Cypher in ``cypher.py``). Never edit or reorder one that has shipped: its name is
recorded in users' stores. Add a test that opens the release fixture (``tests/fixtures``) and finds the change.

The first migration of each list is the baseline: the schema of release e557b58, which recorded no version. It is
idempotent (``IF NOT EXISTS``), so a store made by that release is recognised and brought forward by it.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from persona.errors import MigrationError, SchemaTooNewError
from persona.store import cypher
from persona.store.common import SUPERSEDED

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    """One named step of a store's schema history."""

    name: str
    apply: Callable[[Any], None]


@dataclass
class Migrations:
    """An ordered list of migrations; a store's schema version is how many of them it has applied."""

    store: str
    steps: list[Migration] = field(default_factory=list)

    def migration(self, name: str) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
        """Decorator: append the function to the list as the migration ``name`` (recorded in stores: never
        rename one that has shipped)."""

        def register(function: Callable[[Any], None]) -> Callable[[Any], None]:
            if any(step.name == name for step in self.steps):
                raise ValueError(f"a {self.store} migration named {name!r} exists already")
            self.steps.append(Migration(name, function))
            return function

        return register

    @property
    def version(self) -> int:
        """The schema version this code writes: the number of migrations it knows."""
        return len(self.steps)

    def pending(self, applied: Sequence[str], stored_version: int, *, where: str) -> list[Migration]:
        """The migrations a store still needs, given the names it has applied. Refuses a store from a newer release:
        one that applied a migration this code does not know, or records a higher version."""
        known = [step.name for step in self.steps]
        unknown = [name for name in applied if name not in known]
        if unknown or stored_version > self.version or len(applied) > self.version:
            raise SchemaTooNewError(where, max(stored_version, len(applied)), self.version, unknown)
        done = set(applied)
        return [step for step in self.steps if step.name not in done]


SQLITE = Migrations("SQLite")
NEO4J = Migrations("Neo4j")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- SQLite ----------------------------------------------------------------------------------------------------------
_SQLITE_HISTORY = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name TEXT PRIMARY KEY, version INTEGER NOT NULL, applied_at TEXT NOT NULL
)
"""


def sqlite_state(conn: sqlite3.Connection) -> tuple[list[str], int, bool]:
    """What an open SQLite file records: applied migration names (in order), ``user_version``, and whether it holds
    any Persona table (an empty file needs no backup). Reads only."""
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    applied: list[str] = []
    if "schema_migrations" in tables:
        applied = [name for (name,) in conn.execute("SELECT name FROM schema_migrations ORDER BY version")]
    return applied, version, bool(tables & {"nodes", "users", "meta"})


def backup_sqlite(conn: sqlite3.Connection, path: Path, version: int) -> Path:
    """Copy the whole database beside ``path`` (SQLite's online backup: consistent even in WAL mode)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.backup-v{version}-{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = path.with_name(f"{path.name}.backup-v{version}-{stamp}-{number}")
    with sqlite3.connect(target) as copy:
        conn.backup(copy)
    copy.close()
    return target


def migrate_sqlite(conn: sqlite3.Connection, path: Path | str, migrations: Migrations | None = None) -> Path | None:
    """Bring an open SQLite store up to date; return the backup copy made first (``None`` when nothing ran or the
    store was empty or in memory). All pending migrations run in one transaction: if one fails, none is kept."""
    migrations = migrations or SQLITE
    where = f"the SQLite store at {path}"
    applied, version, has_data = sqlite_state(conn)
    if not migrations.pending(applied, version, where=where):
        return None
    backup = backup_sqlite(conn, path, version) if has_data and isinstance(path, Path) else None
    if backup is not None:
        log.warning("Persona: migrating %s from schema version %s; a copy of it is at %s", path, version, backup)
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Read again under the write lock: another process may have migrated the file meanwhile.
        applied, version, _ = sqlite_state(conn)
        conn.execute(_SQLITE_HISTORY)
        for step in migrations.pending(applied, version, where=where):
            _apply_sqlite(conn, step, migrations.steps.index(step) + 1)
        conn.execute(f"PRAGMA user_version = {int(migrations.version)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return backup


def _apply_sqlite(conn: sqlite3.Connection, step: Migration, version: int) -> None:
    try:
        step.apply(conn)
    except Exception as exc:
        raise MigrationError(f"the SQLite migration {step.name!r} failed, nothing was changed: {exc}") from exc
    conn.execute(
        "INSERT INTO schema_migrations (name, version, applied_at) VALUES (?, ?, ?)", (step.name, version, _now())
    )


# The schema of release e557b58. Lookups by id write ``+user_id`` in queries: the unary plus keeps SQLite from
# choosing the (user_id, ...) index over the unique index on id.
_E557B58_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS users (
        id TEXT PRIMARY KEY, display_name TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL, body TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS nodes (
        pk INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        user_id TEXT NOT NULL REFERENCES users(id),
        type TEXT NOT NULL,
        sort_time TEXT NOT NULL,      -- occurred_at in UTC (created_at for entities), sortable text
        created_at TEXT NOT NULL,
        status TEXT,                  -- entries and goals
        canonical TEXT,               -- entities
        content_hash TEXT,            -- entries
        entry_id TEXT,                -- memories and passages: provenance
        body TEXT NOT NULL,           -- the model as JSON, without its embedding
        embedding BLOB                -- float32, unit length
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS nodes_entity_key ON nodes(user_id, canonical) WHERE type = 'Entity'",
    "CREATE UNIQUE INDEX IF NOT EXISTS nodes_entry_hash ON nodes(user_id, content_hash) WHERE type = 'Entry'",
    "CREATE INDEX IF NOT EXISTS nodes_user_type_time ON nodes(user_id, type, sort_time, created_at, id)",
    "CREATE INDEX IF NOT EXISTS nodes_user_entry ON nodes(user_id, entry_id)",
    """CREATE TABLE IF NOT EXISTS links (
        user_id TEXT NOT NULL, type TEXT NOT NULL, source_id TEXT NOT NULL, target_id TEXT NOT NULL,
        PRIMARY KEY (source_id, type, target_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS links_target ON links(target_id, type)",
    "CREATE INDEX IF NOT EXISTS links_user ON links(user_id, type)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS nodes_fts USING fts5(text, tokenize='porter unicode61 remove_diacritics 2')",
)


@SQLITE.migration("001_baseline_e557b58")
def _sqlite_baseline(conn: sqlite3.Connection) -> None:
    """The tables, indexes and full-text index of release e557b58 (no-op on a store that release made)."""
    for statement in _E557B58_SCHEMA:
        conn.execute(statement)


_PADDED = "printf('%04d', CAST(substr({c}, 1, instr({c}, '-') - 1) AS INTEGER)) || substr({c}, instr({c}, '-'))"
_SHORT_YEAR = "{c} NOT GLOB '[0-9][0-9][0-9][0-9]-*'"


@SQLITE.migration("002_pad_years_before_1000")
def pad_short_years(conn: sqlite3.Connection) -> None:
    """Re-key times stored with an unpadded year ("5-03-01T..." for the year 5, which sorted after "2024-..."): pad
    the year to four digits in every sortable time column, so text order is time order again."""
    for table, column in (("nodes", "sort_time"), ("nodes", "created_at"), ("users", "created_at")):
        conn.execute(f"UPDATE {table} SET {column} = {_PADDED.format(c=column)} WHERE {_SHORT_YEAR.format(c=column)}")


# -- Neo4j -----------------------------------------------------------------------------------------------------------
def _neo4j_history(session_or_tx: Any) -> tuple[list[dict[str, Any]], int]:
    row = session_or_tx.run(cypher.GET_SCHEMA_STATE).single()
    if row is None:
        return [], 0
    if row["history"] is None and row["legacy_names"]:
        legacy = [{"name": name, "version": number} for number, name in enumerate(row["legacy_names"], start=1)]
        return legacy, int(row["version"] or 0)
    return list(json.loads(row["history"] or "[]")), int(row["version"] or 0)


def neo4j_state(session: Any) -> tuple[list[str], int]:
    """The applied migration names and the version a Neo4j database records (none for e557b58 or a new one)."""
    history, version = _neo4j_history(session)
    return [item["name"] for item in history], version


def _record_neo4j(tx: Any, name: str, version: int) -> None:
    """Append one migration to the history (once, even if two processes migrate at the same time)."""
    history, stored = _neo4j_history(tx)
    if any(item["name"] == name for item in history):
        return
    history.append({"name": name, "version": version, "applied_at": _now()})
    tx.run(cypher.RECORD_MIGRATION, history=json.dumps(history), version=max(version, stored)).consume()


def migrate_neo4j(session: Any, where: str, migrations: Migrations | None = None) -> list[str]:
    """Bring a Neo4j database up to date; return the names applied. Each migration runs its own transactions and
    is recorded after it succeeds, so a failed one is not recorded and runs again next time: Neo4j migrations are
    idempotent (schema statements ``IF NOT EXISTS``; data changes in one transaction each)."""
    migrations = migrations or NEO4J
    applied, version = neo4j_state(session)
    done = []
    for step in migrations.pending(applied, version, where=where):
        try:
            step.apply(session)
        except Exception as exc:
            raise MigrationError(f"the Neo4j migration {step.name!r} failed and was not recorded: {exc}") from exc
        number = migrations.steps.index(step) + 1
        session.execute_write(_record_neo4j, step.name, number)
        done.append(step.name)
    return done


@NEO4J.migration("001_baseline_e557b58")
def _neo4j_baseline(session: Any) -> None:
    """The constraints and indexes of release e557b58 except the vector index (sized by the embedder check)."""
    for statement in cypher.schema_statements():
        run_schema_statement(session, statement)


def run_schema_statement(session: Any, statement: str, **params: Any) -> None:
    """Run one idempotent schema statement (``IF NOT EXISTS``)."""
    from neo4j.exceptions import ClientError

    try:
        session.run(statement, params).consume()
    except ClientError as exc:
        # Two processes opening a fresh database at once can race on IF NOT EXISTS; the rule exists either way.
        if "AlreadyExists" not in (exc.code or ""):
            raise


# -- rewriting stored bodies: one way per store, used by the migrations below ----------------------------------------
BodyChange = Callable[[dict[str, Any]], dict[str, Any]]


def rewrite_sqlite_bodies(conn: sqlite3.Connection, types: Sequence[str], change: BodyChange) -> None:
    """Rewrite the JSON body of every node of ``types`` with ``change`` (inside the migration's transaction)."""
    marks = ", ".join("?" for _ in types)
    rows = conn.execute(f"SELECT pk, body FROM nodes WHERE type IN ({marks})", list(types)).fetchall()
    conn.executemany(
        "UPDATE nodes SET body = ? WHERE pk = ?",
        [(json.dumps(change(json.loads(body)), ensure_ascii=False, separators=(",", ":")), pk) for pk, body in rows],
    )


def neo4j_body_pages(session: Any, query: str, page: int = 1000) -> Iterator[list[dict[str, Any]]]:
    """The ``{id, body}`` rows ``query`` returns, a page at a time in id order (the query takes ``after`` and
    ``limit``): a migration writes each page in its own transaction, so a store of any size fits in memory."""
    after = ""
    while rows := session.run(query, after=after, limit=page).data():
        yield rows
        after = rows[-1]["id"]


def rewrite_neo4j_bodies(session: Any, query: str, change: BodyChange) -> None:
    """Rewrite with ``change`` the body of every node ``query`` pages through, a page per transaction (idempotent
    when ``change`` is: a body already changed is written again unchanged)."""
    for rows in neo4j_body_pages(session, query):
        updates = [{"id": r["id"], "body": json.dumps(change(json.loads(r["body"])), ensure_ascii=False)} for r in rows]
        session.execute_write(lambda tx, u=updates: tx.run(cypher.SET_BODIES, rows=u).consume())


# -- 002: memories that change (issue 12) -----------------------------------------------------------------------------
_EVOLVING_TYPES = ("Psyche", "Goal")


def with_validity(body: dict[str, Any]) -> dict[str, Any]:
    """A stored Psyche or Goal body with its time fields written out: true since it happened, current, learned
    when it was stored, never revised (what the release before them meant)."""
    return {
        **body,
        "valid_from": body.get("valid_from") or body.get("occurred_at"),
        "valid_until": body.get("valid_until"),
        "learned_at": body.get("learned_at") or body.get("created_at"),
        "revisions": body.get("revisions") or [],
    }


@SQLITE.migration("003_memory_validity")
def _sqlite_validity(conn: sqlite3.Connection) -> None:
    """Psyche and Goal bodies gain valid_from (= occurred_at), valid_until (empty), learned_at (= created_at) and an
    empty revision list; the SUPERSEDES / CHANGED_BY links need no schema (link types are data in ``links``)."""
    rewrite_sqlite_bodies(conn, _EVOLVING_TYPES, with_validity)


@NEO4J.migration("002_memory_validity")
def _neo4j_validity(session: Any) -> None:
    """The same as SQLite's, a page of bodies per transaction (idempotent: a body that has the fields keeps them)."""
    rewrite_neo4j_bodies(session, cypher.EVOLVING_BODIES, with_validity)


# -- SQLite 004 / Neo4j 003: dated facts about entities (issue 12) ----------------------------------------------------
def with_facts(body: dict[str, Any]) -> dict[str, Any]:
    """A stored Entity body with its dated facts written out: a relation it had ("sister") becomes a current fact,
    true and learned since the entity was stored (the release kept no date for it); no name matches recorded."""
    if "facts" in body:
        return {**body, "matches": body.get("matches") or []}
    relation = body.get("relation")
    facts = []
    if relation:
        since = body.get("created_at")
        facts = [
            {"id": str(uuid.uuid4()), "kind": "relation", "value": relation, "valid_from": since,
             "valid_until": None, "learned_at": since, "entry_id": None}
        ]  # fmt: skip
    return {**body, "facts": facts, "matches": body.get("matches") or []}


@SQLITE.migration("004_entity_facts")
def _sqlite_entity_facts(conn: sqlite3.Connection) -> None:
    """Entity bodies gain ``facts`` (their relation, dated) and an empty ``matches`` list."""
    rewrite_sqlite_bodies(conn, ["Entity"], with_facts)


@NEO4J.migration("003_entity_facts")
def _neo4j_entity_facts(session: Any) -> None:
    """The same as SQLite's, a page of bodies per transaction (idempotent: a body with facts keeps them)."""
    rewrite_neo4j_bodies(session, cypher.ENTITY_BODIES, with_facts)


# -- SQLite 005 / Neo4j 004: superseded psyche memories marked in the status column (issue 12) ----------------------
def _superseded(body: str) -> bool:
    return json.loads(body).get("valid_until") is not None


@SQLITE.migration("005_superseded_psyche_status")
def _sqlite_superseded_status(conn: sqlite3.Connection) -> None:
    """A psyche memory that is no longer current gets ``status = 'superseded'`` (see ``common.stored_status``), so
    the queries for what an entry may change skip it."""
    rows = conn.execute("SELECT pk, body FROM nodes WHERE type = 'Psyche'").fetchall()
    conn.executemany(
        "UPDATE nodes SET status = ? WHERE pk = ?", [(SUPERSEDED, pk) for pk, body in rows if _superseded(body)]
    )


@NEO4J.migration("004_superseded_psyche_status")
def _neo4j_superseded_status(session: Any) -> None:
    """The same as SQLite's, a page of bodies per transaction (idempotent)."""
    for rows in neo4j_body_pages(session, cypher.EVOLVING_BODIES):
        ids = [r["id"] for r in rows if _superseded(r["body"])]
        session.execute_write(lambda tx, i=ids: tx.run(cypher.SET_PSYCHE_STATUS, ids=i, status=SUPERSEDED).consume())
