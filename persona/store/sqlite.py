"""The embedded default store: one SQLite file (WAL), FTS5 for BM25, embeddings as float32 blobs searched with numpy.

All SQL of Persona lives in this module and in ``migrations.py`` (the schema and its history).
Values are always bound as parameters; the only names ever formatted
into SQL are node types and link types from their fixed enums.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from persona.errors import DuplicateError, EmbedderMismatchError, StoreUnavailableError, ValidationError
from persona.models import (
    SEARCHABLE_TYPES,
    AnyNode,
    EmbedderInfo,
    Entity,
    Entry,
    LinkType,
    NodeType,
    SearchHit,
    User,
    node_text,
)
from persona.store.base import EVOLVING_KINDS, CandidateQuery, ListWindow, Store, StoreTransaction
from persona.store.common import (
    node_sort_time,
    parse_node,
    parse_stored,
    serialise_node,
    serialise_stored,
    stored_status,
)
from persona.store.migrations import migrate_sqlite

T = TypeVar("T")


def _iso(value: datetime) -> str:
    """A sortable UTC timestamp with fixed width, so text order is time order. The year is padded by hand: ``%Y``
    gives "5" for the year 5 on Linux, which sorts after "2024"."""
    moment = value.astimezone(UTC)
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S.%f}"


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
    except sqlite3.IntegrityError as exc:  # a uniqueness rule the domain checks did not foresee
        raise DuplicateError(f"already stored: {exc}") from exc
    except sqlite3.Error as exc:
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

    def __init__(
        self, path: str | Path | None = None, *, embedder: EmbedderInfo, accept_other_embedder: bool = False
    ) -> None:
        self.path = ":memory:" if path in (None, ":memory:") else Path(path).expanduser()
        if isinstance(self.path, Path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.description = f"SQLite · {self.path}"
        self.embedder = embedder
        self._accept_other_embedder = accept_other_embedder
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
        if stored != self.embedder and self._accept_other_embedder:
            self.stale_embedder = stored  # opened all the same; vector search stays off until a re-embed
        elif stored != self.embedder:
            raise EmbedderMismatchError((stored.name, stored.dimension), (self.embedder.name, self.embedder.dimension))

    def _run_read(self, work: Callable[[StoreTransaction], T]) -> T:
        with self._lock, _unavailable_on_failure(self.path):
            return work(_SqliteTransaction(self._conn.cursor(), self.path))

    def _run_write(self, work: Callable[[StoreTransaction], T]) -> T:
        with self._write() as cur:
            return work(_SqliteTransaction(cur, self.path))

    def _delete_user(self, user_id: str) -> int:
        with self._write() as cur:
            ids = [i for (i,) in cur.execute("SELECT id FROM nodes WHERE user_id = ?", (user_id,)).fetchall()]
            _SqliteTransaction(cur, self.path).delete(user_id, ids)
            cur.execute("DELETE FROM links WHERE user_id = ?", (user_id,))
            cur.execute("DELETE FROM users WHERE id = ?", (user_id,))
        return len(ids)

    # -- searches ----------------------------------------------------------------------------------------------
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

    def _vector_search(self, user_id: str, unit: list[float], k: int, kinds: list[str] | None) -> list[SearchHit]:
        cache = self._vector_cache(user_id)
        if kinds is not None:
            cache = cache.subset(frozenset(kinds))
        scores = cache.matrix @ np.asarray(unit, dtype=np.float32)
        k = min(k, len(scores))
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((top, -scores[top]))]  # by score, ties by insertion order: deterministic
        return [SearchHit(id=cache.ids[i], type=NodeType(cache.types[i]), score=float(scores[i])) for i in top]

    def _text_search(self, user_id: str, words: list[str], k: int, kinds: list[str]) -> list[SearchHit]:
        # Every word is quoted, so FTS5 reads it as a plain term: no operator in user text is ever interpreted.
        match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        rows = self._read(
            "SELECT n.id, n.type, bm25(nodes_fts) AS rank FROM nodes_fts JOIN nodes n ON n.pk = nodes_fts.rowid "
            f"WHERE nodes_fts MATCH ? AND n.user_id = ? AND n.type IN ({_placeholders(kinds)}) "
            "ORDER BY rank, n.sort_time, n.created_at, n.id LIMIT ?",
            (match, user_id, *kinds, k),
        )
        return [SearchHit(id=i, type=NodeType(t), score=-float(rank)) for i, t, rank in rows]

    def _evolution_candidates(
        self, user_id: str, queries: Sequence[CandidateQuery], k_text: int, k_vector: int
    ) -> list[list[AnyNode]]:
        """Exact, like the searches: BM25 with the date and entry filters in SQL, and the vectors of the user's goals
        and psyche (read once for all the queries) scored with numpy, filtered before the top k are taken."""
        with self._lock, _unavailable_on_failure(self.path):
            vectors = self._evolving_vectors(user_id) if any(q.units for q in queries) else None
            found: list[list[str]] = []
            for query in queries:
                ids = self._evolving_text_hits(user_id, query, k_text) if query.words else []
                if vectors is not None and query.units:
                    ids += self._evolving_nearest(vectors, query, k_vector)
                found.append(list(dict.fromkeys(ids)))
            wanted = list({i for ids in found for i in ids})
            rows = self._conn.execute(
                f"SELECT id, type, body FROM nodes WHERE +user_id = ? AND id IN ({_placeholders(wanted)})",
                (user_id, *wanted),
            ).fetchall()
        nodes = {i: parse_node(NodeType(kind), body) for i, kind, body in rows}
        return [[nodes[i] for i in ids if i in nodes] for ids in found]

    def _evolving_text_hits(self, user_id: str, query: CandidateQuery, k: int) -> list[str]:
        match = " OR ".join('"' + w.replace('"', '""') + '"' for w in query.words)
        rows = self._conn.execute(
            "SELECT n.id FROM nodes_fts JOIN nodes n ON n.pk = nodes_fts.rowid "
            f"WHERE nodes_fts MATCH ? AND n.user_id = ? AND n.type IN ({_placeholders(EVOLVING_KINDS)}) "
            "AND n.sort_time <= ? AND n.entry_id IS NOT ? AND coalesce(n.status, 'active') = 'active' "
            "ORDER BY bm25(nodes_fts), n.sort_time, n.created_at, n.id LIMIT ?",
            (match, user_id, *EVOLVING_KINDS, _iso(query.before), query.entry_id, k),
        ).fetchall()
        return [i for (i,) in rows]

    def _evolving_vectors(self, user_id: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """The user's active goals and psyche memories with a vector: ids, dates, entry ids and the unit vectors."""
        rows = self._conn.execute(
            "SELECT id, sort_time, coalesce(entry_id, ''), embedding FROM nodes "
            f"WHERE user_id = ? AND type IN ({_placeholders(EVOLVING_KINDS)}) AND embedding IS NOT NULL "
            "AND coalesce(status, 'active') = 'active' "
            "ORDER BY sort_time, created_at, id",  # row order breaks score ties, as in the vector search
            (user_id, *EVOLVING_KINDS),
        ).fetchall()
        dim = self.embedder.dimension
        matrix = np.frombuffer(b"".join(r[3] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        return [r[0] for r in rows], np.array([r[1] for r in rows]), np.array([r[2] for r in rows]), matrix

    @staticmethod
    def _evolving_nearest(
        vectors: tuple[list[str], np.ndarray, np.ndarray, np.ndarray], query: CandidateQuery, k: int
    ) -> list[str]:
        ids, times, entries, matrix = vectors
        allowed = np.flatnonzero((times <= _iso(query.before)) & (entries != query.entry_id)) if ids else []
        if not len(allowed) or k <= 0:
            return []
        nearest: list[str] = []
        for unit in query.units:
            scores = matrix[allowed] @ np.asarray(unit, dtype=np.float32)
            top = min(k, len(scores))
            best = np.argpartition(-scores, top - 1)[:top]
            best = best[np.lexsort((best, -scores[best]))]
            nearest += [ids[allowed[i]] for i in best]
        return nearest

    def adopt_embedder(self) -> None:
        with self._write() as cur:
            cur.execute("UPDATE meta SET value = ? WHERE key = 'embedder'", (self.embedder.model_dump_json(),))
        self.stale_embedder = None

    def close(self) -> None:
        """Release the connection."""
        with self._lock:
            self._conn.close()


class _SqliteTransaction(StoreTransaction):
    """The primitives over one cursor (in a transaction for writes)."""

    def __init__(self, cur: sqlite3.Cursor, path: object) -> None:
        self.cur = cur
        self.path = path

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.cur.execute(sql, params).fetchall()

    def _nodes(self, sql: str, params: Sequence[Any] = ()) -> list[AnyNode]:
        return [parse_node(NodeType(kind), body) for kind, body in self._rows(sql, params)]

    # -- users
    def ensure_user(self, user: User) -> User:
        self.cur.execute(
            "INSERT OR IGNORE INTO users (id, display_name, created_at, body) VALUES (?, ?, ?, ?)",
            (user.id, user.display_name, _iso(user.created_at), serialise_stored(user)),
        )
        return parse_stored(User, self._rows("SELECT body FROM users WHERE id = ?", (user.id,))[0][0])

    def list_users(self) -> list[User]:
        return [parse_stored(User, body) for (body,) in self._rows("SELECT body FROM users ORDER BY id")]

    def lock_user(self, user_id: str) -> bool:
        # The write transaction (BEGIN IMMEDIATE) already holds the file's write lock.
        return bool(self._rows("SELECT 1 FROM users WHERE id = ?", (user_id,)))

    # -- nodes
    def get(self, user_id: str, ids: Sequence[str]) -> list[AnyNode]:
        # ``+user_id``: the unary plus keeps SQLite on the unique index on id, not the (user_id, ...) index.
        sql = f"SELECT type, body FROM nodes WHERE +user_id = ? AND id IN ({_placeholders(ids)})"
        return self._nodes(sql, (user_id, *ids)) if ids else []

    def taken(self, ids: Sequence[str]) -> set[str]:
        rows = self.cur.execute(f"SELECT id FROM nodes WHERE id IN ({_placeholders(ids)})", tuple(ids)) if ids else []
        return {i for (i,) in rows}

    def create(self, nodes: Sequence[AnyNode]) -> None:
        for node in nodes:
            self.cur.execute(
                "INSERT INTO nodes (id, user_id, type, sort_time, created_at, status, canonical, content_hash,"
                " entry_id, body, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    node.id,
                    node.user_id,
                    node.type.value,
                    _iso(node_sort_time(node)),
                    _iso(node.created_at),
                    stored_status(node),
                    getattr(node, "canonical", None),
                    getattr(node, "content_hash", None),
                    getattr(node, "entry_id", None),
                    serialise_node(node),
                    _blob(getattr(node, "embedding", None)),
                ),
            )
            if node.type in SEARCHABLE_TYPES:
                self.cur.execute(
                    "INSERT INTO nodes_fts (rowid, text) VALUES (last_insert_rowid(), ?)", (node_text(node),)
                )

    def create_entities(self, entities: Sequence[Entity]) -> dict[str, str]:
        self.create(entities)  # the write lock is held: nobody stored these names meanwhile
        return {e.id: e.id for e in entities}

    def rewrite(self, user_id: str, nodes: Sequence[AnyNode], *, reindex: bool = True) -> None:
        for node in nodes:
            try:
                self.cur.execute(
                    "UPDATE nodes SET body = ?, sort_time = ?, status = ?, canonical = ?, content_hash = ? "
                    "WHERE +user_id = ? AND id = ?",
                    (
                        serialise_node(node),
                        _iso(node_sort_time(node)),
                        stored_status(node),
                        getattr(node, "canonical", None),
                        getattr(node, "content_hash", None),
                        user_id,
                        node.id,
                    ),
                )
            except sqlite3.IntegrityError as exc:  # the same name or text as another node of the user
                what = "an entity with this name" if node.type is NodeType.ENTITY else "an entry with this text"
                raise DuplicateError(f"already stored: {what} ({exc})") from exc
            if not reindex:
                continue
            (pk,) = self._rows("SELECT pk FROM nodes WHERE id = ?", (node.id,))[0]
            self.cur.execute("DELETE FROM nodes_fts WHERE rowid = ?", (pk,))
            if node.type in SEARCHABLE_TYPES:
                self.cur.execute("INSERT INTO nodes_fts (rowid, text) VALUES (?, ?)", (pk, node_text(node)))

    def set_embedding(self, user_id: str, node_id: str, embedding: Sequence[float] | None) -> None:
        self.cur.execute(
            "UPDATE nodes SET embedding = ? WHERE +user_id = ? AND id = ?", (_blob(embedding), user_id, node_id)
        )

    def delete(self, user_id: str, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            marks = _placeholders(part)
            pks = self._rows(f"SELECT pk FROM nodes WHERE +user_id = ? AND id IN ({marks})", (user_id, *part))
            self.cur.executemany("DELETE FROM nodes_fts WHERE rowid = ?", pks)
            self.cur.execute(
                f"DELETE FROM links WHERE user_id = ? AND (source_id IN ({marks}) OR target_id IN ({marks}))",
                (user_id, *part, *part),
            )
            self.cur.execute(f"DELETE FROM nodes WHERE +user_id = ? AND id IN ({marks})", (user_id, *part))

    def list(self, user_id: str, node_type: NodeType, window: ListWindow) -> list[AnyNode]:
        where, params = ["user_id = ?", "type = ?"], [user_id, node_type.value]
        for clause, value in (("sort_time >= ?", window.start), ("sort_time < ?", window.end)):
            if value is not None:
                where.append(clause)
                params.append(_iso(value))
        if window.status is not None:
            where.append("status = ?")
            params.append(window.status)
        order = "DESC" if window.newest_first else "ASC"
        sql = (
            f"SELECT type, body FROM nodes WHERE {' AND '.join(where)} "
            f"ORDER BY sort_time {order}, created_at {order}, id {order} LIMIT ? OFFSET ?"
        )
        return self._nodes(sql, (*params, window.limit, window.offset))

    def count(self, user_id: str | None, node_type: NodeType | None = None) -> dict[str, int]:
        where, params = [], []
        if user_id is not None:
            where.append("user_id = ?")
            params.append(user_id)
        if node_type is not None:
            where.append("type = ?")
            params.append(node_type.value)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        return dict(self._rows(f"SELECT type, count(*) FROM nodes {clause}GROUP BY type", params))

    def entry_by_hash(self, user_id: str, content_hash: str) -> Entry | None:
        rows = self._rows(
            "SELECT body FROM nodes WHERE user_id = ? AND type = 'Entry' AND content_hash = ?", (user_id, content_hash)
        )
        return parse_stored(Entry, rows[0][0]) if rows else None

    def entities_by_canonical(self, user_id: str, canonicals: Sequence[str]) -> list[Entity]:
        sql = "SELECT type, body FROM nodes WHERE user_id = ? AND type = 'Entity' AND canonical IN ({})"
        return [  # type: ignore[misc]
            node
            for start in range(0, len(canonicals), 500)
            for node in self._nodes(
                sql.format(_placeholders(canonicals[start : start + 500])),
                (user_id, *canonicals[start : start + 500]),
            )
        ]

    def entry_members(self, user_id: str, entry_id: str) -> dict[str, NodeType]:
        rows = self._rows("SELECT id, type FROM nodes WHERE user_id = ? AND entry_id = ?", (user_id, entry_id))
        return {i: NodeType(t) for i, t in rows}

    # -- links
    def link(self, user_id: str, links: Sequence[tuple[LinkType, str, str]]) -> None:
        for link_type, source, target in links:
            found = self._rows(
                "SELECT count(*) FROM nodes WHERE +user_id = ? AND id IN (?, ?)", (user_id, source, target)
            )[0][0]
            if found != len({source, target}):
                raise ValidationError(
                    f"link {link_type.value} {source} -> {target} names a node this user does not have"
                )
            self.cur.execute(
                "INSERT OR IGNORE INTO links (user_id, type, source_id, target_id) VALUES (?, ?, ?, ?)",
                (user_id, link_type.value, source, target),
            )

    def unlink(self, user_id: str, links: Sequence[tuple[LinkType, str, str]]) -> None:
        self.cur.executemany(
            "DELETE FROM links WHERE source_id = ? AND type = ? AND target_id = ? AND user_id = ?",
            [(source, LinkType(kind).value, target, user_id) for kind, source, target in links],
        )

    def links(self, user_id: str, ids: Sequence[str], kinds: Sequence[str]) -> list[tuple[str, str, str]]:
        marks, type_marks = _placeholders(ids), _placeholders(kinds)
        return self._rows(  # type: ignore[return-value]
            f"SELECT type, source_id, target_id FROM links WHERE user_id = ? AND type IN ({type_marks}) "
            f"AND source_id IN ({marks}) UNION SELECT type, source_id, target_id FROM links "
            f"WHERE user_id = ? AND type IN ({type_marks}) AND target_id IN ({marks})",
            (user_id, *kinds, *ids, user_id, *kinds, *ids),
        )

    def count_links(self, user_id: str | None) -> tuple[int, int]:
        if user_id is None:
            return self._rows("SELECT count(*) FROM links")[0][0], self._rows("SELECT count(*) FROM users")[0][0]
        links = self._rows("SELECT count(*) FROM links WHERE user_id = ?", (user_id,))[0][0]
        return links, len(self._rows("SELECT 1 FROM users WHERE id = ?", (user_id,)))

    # -- the NEXT chain
    def place_in_chain(self, user_id: str, episode: AnyNode) -> None:
        key = self._rows("SELECT sort_time, created_at, id FROM nodes WHERE id = ?", (episode.id,))[0]
        base = "SELECT id FROM nodes WHERE user_id = ? AND type = 'Episode' AND id != ? AND (sort_time, created_at, id)"
        before = self._rows(
            f"{base} < (?, ?, ?) ORDER BY sort_time DESC, created_at DESC, id DESC LIMIT 1", (user_id, episode.id, *key)
        )
        after = self._rows(
            f"{base} > (?, ?, ?) ORDER BY sort_time, created_at, id LIMIT 1", (user_id, episode.id, *key)
        )
        if before and after:
            self.cur.execute(
                "DELETE FROM links WHERE type = 'NEXT' AND source_id = ? AND target_id = ?", (before[0][0], after[0][0])
            )
        new = [(LinkType.NEXT, before[0][0], episode.id)] if before else []
        new += [(LinkType.NEXT, episode.id, after[0][0])] if after else []
        self.link(user_id, new)

    def unlink_from_chain(self, user_id: str, episode_id: str) -> None:
        before = self._rows("SELECT source_id FROM links WHERE type = 'NEXT' AND target_id = ?", (episode_id,))
        after = self._rows("SELECT target_id FROM links WHERE type = 'NEXT' AND source_id = ?", (episode_id,))
        self.cur.execute(
            "DELETE FROM links WHERE type = 'NEXT' AND (source_id = ? OR target_id = ?)", (episode_id, episode_id)
        )
        if before and after:
            self.link(user_id, [(LinkType.NEXT, before[0][0], after[0][0])])

    def next_links(self, user_id: str) -> dict[str, str]:
        return dict(
            self._rows("SELECT source_id, target_id FROM links WHERE user_id = ? AND type = 'NEXT'", (user_id,))
        )

    def first_episode(self, user_id: str) -> str | None:
        rows = self._rows(
            "SELECT id FROM nodes WHERE user_id = ? AND type = 'Episode' ORDER BY sort_time, created_at, id LIMIT 1",
            (user_id,),
        )
        return rows[0][0] if rows else None
