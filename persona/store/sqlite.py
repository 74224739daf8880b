"""The embedded default store: one SQLite file (WAL), FTS5 for BM25, embeddings as float32 blobs searched with numpy.

All SQL of Persona lives in this module and in ``migrations.py`` (the schema and its history).
Values are always bound as parameters; the only names ever formatted
into SQL are node types and link types from their fixed enums.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from persona.errors import (
    DuplicateError,
    EmbedderMismatchError,
    NodeNotFoundError,
    StoreUnavailableError,
    UserNotFoundError,
    ValidationError,
)
from persona.models import (
    SEARCHABLE_TYPES,
    AnyNode,
    EmbedderInfo,
    Entity,
    Entry,
    EntryStatus,
    Episode,
    Link,
    LinkType,
    MemoryBatch,
    NodeType,
    SearchHit,
    User,
    check_user_id,
    node_text,
)
from persona.store.base import Store
from persona.store.common import (
    as_entry_status,
    as_link_types,
    as_node_type,
    as_node_types,
    as_status,
    cascade_plan,
    changed_node,
    check_batch,
    check_changes,
    check_embedding,
    fts_words,
    node_sort_time,
    parse_node,
    parse_stored,
    possible_id,
    possible_ids,
    serialise_node,
    serialise_stored,
)
from persona.store.migrations import migrate_sqlite


def _iso(value: datetime) -> str:
    """A sortable UTC timestamp with fixed width, so text order is time order."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _blob(embedding: Sequence[float] | None) -> bytes | None:
    if embedding is None:
        return None
    vector = np.asarray(embedding, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm else vector).tobytes()


def _placeholders(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


@contextmanager
def _unavailable_on_failure(path: object) -> Iterator[None]:
    """A closed connection, a locked or unwritable file, a full disk: the store is unavailable, say so clearly."""
    try:
        yield
    except sqlite3.IntegrityError:
        raise
    except (sqlite3.ProgrammingError, sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
        raise StoreUnavailableError(f"the SQLite store at {path} cannot be used: {exc}") from exc


class _VectorCache:
    """One user's vectors as a matrix, rebuilt after that user's data changes."""

    def __init__(self, ids: list[str], types: np.ndarray, matrix: np.ndarray) -> None:
        self.ids = ids
        self.types = types
        self.matrix = matrix
        self._subsets: dict[frozenset[str], _VectorCache] = {}

    def subset(self, types: frozenset[str]) -> _VectorCache:
        """The rows of some types as their own matrix, made once: a search then reads only the rows it can return
        (the matrix product is memory-bound, so fewer rows is faster)."""
        if types not in self._subsets:
            rows = np.flatnonzero(np.isin(self.types, list(types)))
            self._subsets[types] = _VectorCache([self.ids[i] for i in rows], self.types[rows], self.matrix[rows])
        return self._subsets[types]


class SqliteStore(Store):
    """Persona's memory in one SQLite file. ``path=None`` or ``":memory:"`` keeps it in memory (tests, demos)."""

    def __init__(self, path: str | Path | None = None, *, embedder: EmbedderInfo) -> None:
        self.path = ":memory:" if path in (None, ":memory:") else Path(path).expanduser()
        if isinstance(self.path, Path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.description = f"SQLite · {self.path}"
        self.embedder = embedder
        try:
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10)
        except sqlite3.Error as exc:  # pragma: no cover - depends on the file system
            raise StoreUnavailableError(f"cannot open {self.path}: {exc}") from exc
        # One connection shared by threads (Streamlit sessions, ingest workers); the lock serialises its use.
        self._lock = threading.RLock()
        self._vectors: dict[str, _VectorCache] = {}
        self._data_version = -1
        try:
            self._conn.execute("PRAGMA foreign_keys=ON")
            # Migrations first: a store from a newer release is refused before anything (even WAL) is written.
            self.backup_path = migrate_sqlite(self._conn, self.path)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._check_embedder()
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreUnavailableError(f"cannot open the SQLite store at {self.path}: {exc}") from exc
        except BaseException:
            self._conn.close()  # a refused store must not keep the file open (the app retries on every rerun)
            raise

    # -- plumbing ----------------------------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction (BEGIN IMMEDIATE: taken at once, so concurrent writers queue instead of failing)."""
        with self._lock, _unavailable_on_failure(self.path):
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                if self._conn.in_transaction:
                    cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")
            finally:
                self._vectors.clear()

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock, _unavailable_on_failure(self.path):
            return self._conn.execute(sql, params).fetchall()

    def _check_embedder(self) -> None:
        with self._write() as cur:
            row = cur.execute("SELECT value FROM meta WHERE key = 'embedder'").fetchone()
            if row is None:
                cur.execute("INSERT INTO meta VALUES ('embedder', ?)", (self.embedder.model_dump_json(),))
                return
        stored = EmbedderInfo.model_validate_json(row[0])
        if stored != self.embedder:
            raise EmbedderMismatchError((stored.name, stored.dimension), (self.embedder.name, self.embedder.dimension))

    def _require_user(self, cur: sqlite3.Cursor, user_id: str) -> None:
        if cur.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone() is None:
            raise UserNotFoundError(user_id)

    def _insert_user(self, cur: sqlite3.Cursor, user: User) -> None:
        cur.execute(
            "INSERT OR IGNORE INTO users (id, display_name, created_at, body) VALUES (?, ?, ?, ?)",
            (user.id, user.display_name, _iso(user.created_at), serialise_stored(user)),
        )

    def _insert_node(self, cur: sqlite3.Cursor, node: AnyNode) -> None:
        kind = node.type
        cur.execute(
            "INSERT INTO nodes (id, user_id, type, sort_time, created_at, status, canonical, content_hash, entry_id,"
            " body, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                node.id,
                node.user_id,
                kind.value,
                _iso(node_sort_time(node)),
                _iso(node.created_at),
                getattr(node, "status", None),
                getattr(node, "canonical", None),
                getattr(node, "content_hash", None),
                getattr(node, "entry_id", None),
                serialise_node(node),
                _blob(getattr(node, "embedding", None)),
            ),
        )
        if kind in SEARCHABLE_TYPES:
            cur.execute("INSERT INTO nodes_fts (rowid, text) VALUES (last_insert_rowid(), ?)", (node_text(node),))

    def _reindex_text(self, cur: sqlite3.Cursor, node: AnyNode) -> None:
        (pk,) = cur.execute("SELECT pk FROM nodes WHERE id = ?", (node.id,)).fetchone()
        cur.execute("DELETE FROM nodes_fts WHERE rowid = ?", (pk,))
        if node.type in SEARCHABLE_TYPES:
            cur.execute("INSERT INTO nodes_fts (rowid, text) VALUES (?, ?)", (pk, node_text(node)))

    def _delete_nodes(self, cur: sqlite3.Cursor, user_id: str, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            marks = _placeholders(part)
            pks = cur.execute(f"SELECT pk FROM nodes WHERE +user_id = ? AND id IN ({marks})", (user_id, *part))
            for (pk,) in pks.fetchall():
                cur.execute("DELETE FROM nodes_fts WHERE rowid = ?", (pk,))
            cur.execute(
                f"DELETE FROM links WHERE user_id = ? AND (source_id IN ({marks}) OR target_id IN ({marks}))",
                (user_id, *part, *part),
            )
            cur.execute(f"DELETE FROM nodes WHERE +user_id = ? AND id IN ({marks})", (user_id, *part))

    def _rows_to_nodes(self, rows: Iterable[tuple[str, str]]) -> list[AnyNode]:
        return [parse_node(NodeType(kind), body) for kind, body in rows]

    # -- users -------------------------------------------------------------------------------------------------
    def ensure_user(self, user_id: str, *, display_name: str = "") -> User:
        user = User(id=check_user_id(user_id), display_name=display_name)
        with self._write() as cur:
            self._insert_user(cur, user)
            (body,) = cur.execute("SELECT body FROM users WHERE id = ?", (user_id,)).fetchone()
        return parse_stored(User, body)

    def list_users(self) -> list[User]:
        return [parse_stored(User, body) for (body,) in self._read("SELECT body FROM users ORDER BY id")]

    def delete_user(self, user_id: str) -> int:
        check_user_id(user_id)
        with self._write() as cur:
            ids = [i for (i,) in cur.execute("SELECT id FROM nodes WHERE user_id = ?", (user_id,)).fetchall()]
            self._delete_nodes(cur, user_id, ids)
            cur.execute("DELETE FROM links WHERE user_id = ?", (user_id,))
            cur.execute("DELETE FROM users WHERE id = ?", (user_id,))
        return len(ids)

    # -- writes ------------------------------------------------------------------------------------------------
    def save_entry(self, entry: Entry) -> Entry:
        with self._write() as cur:
            existing = cur.execute(
                "SELECT body FROM nodes WHERE user_id = ? AND type = 'Entry' AND content_hash = ?",
                (entry.user_id, entry.content_hash),
            ).fetchone()
            if existing:
                return parse_stored(Entry, existing[0])
            self._insert_user(cur, User(id=entry.user_id))
            self._insert_node(cur, entry)
        return entry

    def set_entry_status(self, user_id: str, entry_id: str, status: EntryStatus, *, error: str | None = None) -> None:
        with self._write() as cur:
            self._set_status(cur, user_id, entry_id, as_entry_status(status), error)

    def _set_status(
        self,
        cur: sqlite3.Cursor,
        user_id: str,
        entry_id: str,
        status: EntryStatus,
        error: str | None,
        *,
        refuse_done: bool = False,
    ) -> None:
        entry = self._get(cur, user_id, entry_id)
        if not isinstance(entry, Entry):
            raise ValidationError(f"{entry_id} is not an entry")
        if refuse_done and entry.status is EntryStatus.DONE:
            raise DuplicateError(f"entry {entry_id} is already processed", existing_id=entry_id)
        updated = entry.model_copy(update={"status": status, "error": error})
        cur.execute(
            "UPDATE nodes SET body = ?, status = ? WHERE id = ?", (serialise_node(updated), status.value, entry_id)
        )

    def write_batch(self, user_id: str, batch: MemoryBatch, *, done_entry_ids: Sequence[str] = ()) -> dict[str, str]:
        check_user_id(user_id)
        check_batch(user_id, batch, dimension=self.embedder.dimension)
        with self._write() as cur:
            for entry_id in done_entry_ids:
                self._set_status(cur, user_id, entry_id, EntryStatus.DONE, None, refuse_done=True)
            self._require_user(cur, user_id)
            entity_ids = self._merge_entities(cur, user_id, batch.entities)
            for node in batch.nodes():
                if node.type not in (NodeType.ENTITY, NodeType.EPISODE):
                    self._insert_node(cur, node)
            # One episode at a time, stored and then placed: a placement looks for its neighbours among the stored
            # episodes, so it must never see a sibling of the batch that is stored but not yet in the chain.
            for episode in batch.episodes:
                self._insert_node(cur, episode)
                self._place_in_chain(cur, user_id, episode)
            for link in batch.links:
                self._insert_link(
                    cur,
                    user_id,
                    link.type,
                    entity_ids.get(link.source_id, link.source_id),
                    entity_ids.get(link.target_id, link.target_id),
                )
        return entity_ids

    def _merge_entities(self, cur: sqlite3.Cursor, user_id: str, entities: Sequence[Entity]) -> dict[str, str]:
        """Insert new entities; for a canonical name the user already has, keep that node and add the aliases."""
        mapping: dict[str, str] = {}
        for entity in entities:
            row = cur.execute(
                "SELECT id, body FROM nodes WHERE user_id = ? AND type = 'Entity' AND canonical = ?",
                (user_id, entity.canonical),
            ).fetchone()
            if row is None:
                self._insert_node(cur, entity)
                mapping[entity.id] = entity.id
                continue
            stored = parse_stored(Entity, row[1])
            names = set(stored.aliases) | set(entity.aliases) | ({entity.name} - {stored.name})
            if names != set(stored.aliases):
                merged = stored.model_copy(update={"aliases": sorted(names)})
                cur.execute("UPDATE nodes SET body = ? WHERE id = ?", (serialise_node(merged), stored.id))
                self._reindex_text(cur, merged)
            mapping[entity.id] = stored.id
        return mapping

    def _insert_link(self, cur: sqlite3.Cursor, user_id: str, link_type: LinkType, source: str, target: str) -> None:
        found = cur.execute(
            "SELECT count(*) FROM nodes WHERE +user_id = ? AND id IN (?, ?)", (user_id, source, target)
        ).fetchone()[0]
        if found != len({source, target}):
            raise ValidationError(f"link {link_type.value} {source} -> {target} names a node this user does not have")
        cur.execute(
            "INSERT OR IGNORE INTO links (user_id, type, source_id, target_id) VALUES (?, ?, ?, ?)",
            (user_id, link_type.value, source, target),
        )

    def _chain_key(self, cur: sqlite3.Cursor, episode_id: str) -> tuple[str, str, str]:
        return cur.execute("SELECT sort_time, created_at, id FROM nodes WHERE id = ?", (episode_id,)).fetchone()

    def _place_in_chain(self, cur: sqlite3.Cursor, user_id: str, episode: Episode) -> None:
        """Insert the episode between its neighbours in time: (occurred_at, created_at, id) orders the chain."""
        key = self._chain_key(cur, episode.id)
        base = "SELECT id FROM nodes WHERE user_id = ? AND type = 'Episode' AND id != ? AND (sort_time, created_at, id)"
        before = cur.execute(
            f"{base} < (?, ?, ?) ORDER BY sort_time DESC, created_at DESC, id DESC LIMIT 1", (user_id, episode.id, *key)
        ).fetchone()
        after = cur.execute(
            f"{base} > (?, ?, ?) ORDER BY sort_time, created_at, id LIMIT 1", (user_id, episode.id, *key)
        ).fetchone()
        if before and after:
            cur.execute(
                "DELETE FROM links WHERE type = 'NEXT' AND source_id = ? AND target_id = ?", (before[0], after[0])
            )
        if before:
            self._insert_link(cur, user_id, LinkType.NEXT, before[0], episode.id)
        if after:
            self._insert_link(cur, user_id, LinkType.NEXT, episode.id, after[0])

    def _unlink_from_chain(self, cur: sqlite3.Cursor, user_id: str, episode_id: str) -> None:
        """Take the episode out of the chain and join its neighbours."""
        before = cur.execute(
            "SELECT source_id FROM links WHERE type = 'NEXT' AND target_id = ?", (episode_id,)
        ).fetchone()
        after = cur.execute(
            "SELECT target_id FROM links WHERE type = 'NEXT' AND source_id = ?", (episode_id,)
        ).fetchone()
        cur.execute(
            "DELETE FROM links WHERE type = 'NEXT' AND (source_id = ? OR target_id = ?)", (episode_id, episode_id)
        )
        if before and after:
            self._insert_link(cur, user_id, LinkType.NEXT, before[0], after[0])

    def update_node(self, user_id: str, node_id: str, changes: dict[str, Any]) -> AnyNode:
        check_changes(changes)
        with self._write() as cur:
            node = self._get(cur, user_id, node_id)
            new = changed_node(node, changes, dimension=self.embedder.dimension)
            embedding = changes.get("embedding")
            try:
                self._update_row(cur, node_id, new, changes, embedding)
            except sqlite3.IntegrityError as exc:  # the same name or text as another node of the user (as Neo4j says)
                what = "an entity with this name" if new.type is NodeType.ENTITY else "an entry with this text"
                raise DuplicateError(f"already stored: {what} ({exc})") from exc
            self._reindex_text(cur, new)
            if new.type is NodeType.EPISODE and "occurred_at" in changes:
                self._unlink_from_chain(cur, user_id, node_id)
                self._place_in_chain(cur, user_id, new)
        return new.model_copy(update={"embedding": None}) if hasattr(new, "embedding") else new

    @staticmethod
    def _update_row(cur: sqlite3.Cursor, node_id: str, new: AnyNode, changes: dict[str, Any], embedding: Any) -> None:
        cur.execute(
            "UPDATE nodes SET body = ?, sort_time = ?, status = ?, canonical = ?, content_hash = ?"
            + (", embedding = ?" if "embedding" in changes else "")
            + " WHERE id = ?",
            (
                serialise_node(new),
                _iso(node_sort_time(new)),
                getattr(new, "status", None),
                getattr(new, "canonical", None),
                getattr(new, "content_hash", None),
                *((_blob(embedding),) if "embedding" in changes else ()),
                node_id,
            ),
        )

    def delete_node(self, user_id: str, node_id: str) -> int:
        with self._write() as cur:
            node = self._get(cur, user_id, node_id)
            plan = cascade_plan(node, self._dependants(cur, user_id, node))
            episodes = [i for i, t in plan.items() if t is NodeType.EPISODE]
            for episode_id in episodes:
                self._unlink_from_chain(cur, user_id, episode_id)
            mentioned = self._targets(cur, user_id, list(plan), LinkType.MENTIONS)
            self._delete_nodes(cur, user_id, list(plan))
            orphans = [e for e in mentioned if e not in plan and not self._has_incoming(cur, e, LinkType.MENTIONS)]
            self._delete_nodes(cur, user_id, orphans)
        return len(plan) + len(orphans)

    def _dependants(self, cur: sqlite3.Cursor, user_id: str, node: AnyNode) -> dict[str, NodeType]:
        """What belongs to ``node``: an entry's memories and passages, an episode's derived memories."""
        if node.type is NodeType.ENTRY:
            rows = cur.execute("SELECT id, type FROM nodes WHERE user_id = ? AND entry_id = ?", (user_id, node.id))
        elif node.type is NodeType.EPISODE:
            rows = cur.execute(
                "SELECT n.id, n.type FROM links l JOIN nodes n ON n.id = l.source_id "
                "WHERE l.type = 'DERIVED_FROM' AND l.target_id = ? AND n.user_id = ?",
                (node.id, user_id),
            )
        else:
            return {}
        return {i: NodeType(t) for i, t in rows.fetchall()}

    def _targets(self, cur: sqlite3.Cursor, user_id: str, ids: list[str], link_type: LinkType) -> list[str]:
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            rows = cur.execute(
                f"SELECT target_id FROM links WHERE user_id = ? AND type = ? AND source_id IN ({_placeholders(part)})",
                (user_id, link_type.value, *part),
            )
            found.update(t for (t,) in rows.fetchall())
        return sorted(found)

    def _has_incoming(self, cur: sqlite3.Cursor, node_id: str, link_type: LinkType) -> bool:
        row = cur.execute("SELECT 1 FROM links WHERE target_id = ? AND type = ? LIMIT 1", (node_id, link_type.value))
        return row.fetchone() is not None

    def merge_entities(self, user_id: str, keep_id: str, drop_id: str) -> Entity:
        if keep_id == drop_id:
            raise ValidationError("cannot merge an entity with itself")
        with self._write() as cur:
            keep, drop = self._get(cur, user_id, keep_id), self._get(cur, user_id, drop_id)
            if not (isinstance(keep, Entity) and isinstance(drop, Entity)):
                raise ValidationError("only entities can be merged")
            sources = cur.execute(
                "SELECT source_id FROM links WHERE type = 'MENTIONS' AND target_id = ?", (drop_id,)
            ).fetchall()
            for (source,) in sources:
                self._insert_link(cur, user_id, LinkType.MENTIONS, source, keep_id)
            merged = keep.model_copy(
                update={"aliases": sorted({*keep.aliases, *drop.aliases, drop.name} - {keep.name})}
            )
            self._delete_nodes(cur, user_id, [drop_id])
            cur.execute("UPDATE nodes SET body = ? WHERE id = ?", (serialise_node(merged), keep_id))
            self._reindex_text(cur, merged)
        return merged.model_copy(update={"embedding": None})

    # -- reads -------------------------------------------------------------------------------------------------
    def _get(self, cur: sqlite3.Cursor, user_id: str, node_id: str) -> AnyNode:
        check_user_id(user_id)
        if not possible_id(node_id):
            raise NodeNotFoundError(node_id, user_id)
        row = cur.execute("SELECT type, body FROM nodes WHERE +user_id = ? AND id = ?", (user_id, node_id)).fetchone()
        if row is None:
            raise NodeNotFoundError(node_id, user_id)
        return parse_node(NodeType(row[0]), row[1])

    def get_node(self, user_id: str, node_id: str) -> AnyNode:
        with self._lock, _unavailable_on_failure(self.path):
            return self._get(self._conn.cursor(), user_id, node_id)

    def get_nodes(self, user_id: str, node_ids: Sequence[str]) -> list[AnyNode]:
        check_user_id(user_id)
        found: dict[str, AnyNode] = {}
        ids = possible_ids(node_ids)
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            rows = self._read(
                f"SELECT type, body FROM nodes WHERE +user_id = ? AND id IN ({_placeholders(part)})", (user_id, *part)
            )
            found.update((node.id, node) for node in self._rows_to_nodes(rows))
        return [found[i] for i in ids if i in found]

    def list_nodes(
        self,
        user_id: str,
        node_type: NodeType,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
        newest_first: bool = True,
    ) -> list[AnyNode]:
        check_user_id(user_id)
        where, params = ["user_id = ?", "type = ?"], [user_id, as_node_type(node_type).value]
        if start is not None:
            where.append("sort_time >= ?")
            params.append(_iso(start))
        if end is not None:
            where.append("sort_time < ?")
            params.append(_iso(end))
        status = as_status(status)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        order = "DESC" if newest_first else "ASC"
        sql = (
            f"SELECT type, body FROM nodes WHERE {' AND '.join(where)} "
            f"ORDER BY sort_time {order}, created_at {order}, id {order} LIMIT ? OFFSET ?"
        )
        return self._rows_to_nodes(self._read(sql, (*params, max(0, int(limit)), max(0, int(offset)))))

    def count_nodes(self, user_id: str, node_type: NodeType) -> int:
        check_user_id(user_id)
        sql = "SELECT count(*) FROM nodes WHERE user_id = ? AND type = ?"
        return self._read(sql, (user_id, as_node_type(node_type).value))[0][0]

    def find_entry_by_hash(self, user_id: str, content_hash: str) -> Entry | None:
        check_user_id(user_id)
        if not possible_id(content_hash):  # a sha256 is 64 hex digits: anything else matches no entry
            return None
        rows = self._read(
            "SELECT body FROM nodes WHERE user_id = ? AND type = 'Entry' AND content_hash = ?",
            (check_user_id(user_id), content_hash),
        )
        return parse_stored(Entry, rows[0][0]) if rows else None

    def neighbours(
        self, user_id: str, node_ids: Sequence[str], *, link_types: Iterable[LinkType] | None = None
    ) -> list[Link]:
        check_user_id(user_id)
        kinds = [t.value for t in (as_link_types(link_types) if link_types is not None else LinkType)]
        ids = possible_ids(node_ids)
        found: dict[tuple[str, str, str], Link] = {}
        for start in range(0, len(ids), 400):
            part = ids[start : start + 400]
            marks, type_marks = _placeholders(part), _placeholders(kinds)
            rows = self._read(
                f"SELECT type, source_id, target_id FROM links WHERE user_id = ? AND type IN ({type_marks}) "
                f"AND source_id IN ({marks}) UNION SELECT type, source_id, target_id FROM links "
                f"WHERE user_id = ? AND type IN ({type_marks}) AND target_id IN ({marks})",
                (user_id, *kinds, *part, user_id, *kinds, *part),
            )
            for kind, source, target in rows:
                found[(kind, source, target)] = Link(type=LinkType(kind), source_id=source, target_id=target)
        return [found[key] for key in sorted(found)]

    def _vector_cache(self, user_id: str) -> _VectorCache:
        with self._lock, _unavailable_on_failure(self.path):
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._data_version:  # another connection (another process) committed: reload
                self._vectors.clear()
                self._data_version = version
            cache = self._vectors.get(user_id)
            if cache is None:
                rows = self._conn.execute(
                    "SELECT id, type, embedding FROM nodes WHERE user_id = ? AND embedding IS NOT NULL "
                    "ORDER BY sort_time, created_at, id",  # row order breaks score ties, as in Neo4j
                    (user_id,),
                ).fetchall()
                dim = self.embedder.dimension
                matrix = (
                    np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(len(rows), dim)
                    if rows
                    else np.zeros((0, dim), dtype=np.float32)
                )
                cache = _VectorCache([r[0] for r in rows], np.array([r[1] for r in rows]), matrix)
                self._vectors[user_id] = cache
            return cache

    def vector_search(
        self, user_id: str, embedding: Sequence[float], *, k: int = 20, types: Iterable[NodeType] | None = None
    ) -> list[SearchHit]:
        check_user_id(user_id)
        check_embedding(embedding, self.embedder.dimension, what="the query vector")
        query = np.asarray(embedding, dtype=np.float32)
        norm = float(np.linalg.norm(query))
        if not norm or k <= 0:
            return []
        cache = self._vector_cache(user_id)
        if types is not None:
            cache = cache.subset(frozenset(t.value for t in as_node_types(types)))
        scores = cache.matrix @ (query / norm)
        k = min(k, len(scores))
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((top, -scores[top]))]  # by score, ties by insertion order: deterministic
        return [SearchHit(id=cache.ids[i], type=NodeType(cache.types[i]), score=float(scores[i])) for i in top]

    def text_search(
        self, user_id: str, query: str, *, k: int = 20, types: Iterable[NodeType] | None = None
    ) -> list[SearchHit]:
        check_user_id(user_id)
        words = fts_words(query)
        if not words or k <= 0:
            return []
        # Every word is quoted, so FTS5 reads it as a plain term: no operator in user text is ever interpreted.
        match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        kinds = [t.value for t in (as_node_types(types) if types is not None else SEARCHABLE_TYPES)]
        rows = self._read(
            "SELECT n.id, n.type, bm25(nodes_fts) AS rank FROM nodes_fts JOIN nodes n ON n.pk = nodes_fts.rowid "
            f"WHERE nodes_fts MATCH ? AND n.user_id = ? AND n.type IN ({_placeholders(kinds)}) "
            "ORDER BY rank, n.sort_time, n.created_at, n.id LIMIT ?",
            (match, user_id, *kinds, int(k)),
        )
        return [SearchHit(id=i, type=NodeType(t), score=-float(rank)) for i, t, rank in rows]

    def chain(self, user_id: str) -> list[str]:
        check_user_id(user_id)
        rows = self._read("SELECT source_id, target_id FROM links WHERE user_id = ? AND type = 'NEXT'", (user_id,))
        following = dict(rows)
        heads = set(following) - set(following.values())
        episodes = self._read("SELECT id FROM nodes WHERE user_id = ? AND type = 'Episode'", (user_id,))
        if not following:
            return [e for (e,) in episodes][:1]
        path, node = [], min(heads) if heads else None
        while node is not None and len(path) <= len(following):
            path.append(node)
            node = following.get(node)
        return path

    def stats(self, user_id: str | None = None) -> dict[str, int]:
        if user_id is None:
            rows = self._read("SELECT type, count(*) FROM nodes GROUP BY type")
            links = self._read("SELECT count(*) FROM links")[0][0]
            users = self._read("SELECT count(*) FROM users")[0][0]
        else:
            check_user_id(user_id)
            rows = self._read("SELECT type, count(*) FROM nodes WHERE user_id = ? GROUP BY type", (user_id,))
            links = self._read("SELECT count(*) FROM links WHERE user_id = ?", (user_id,))[0][0]
            users = 1 if self._read("SELECT 1 FROM users WHERE id = ?", (user_id,)) else 0
        counts = {t.value: 0 for t in NodeType} | dict(rows)
        return counts | {"links": links, "users": users}

    def close(self) -> None:
        with self._lock:
            self._conn.close()
