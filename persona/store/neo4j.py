"""The graph-database store: Neo4j 5.26 (Community is enough) through the official driver's sync API.

It fulfils the same contract as ``SqliteStore`` and behaves the same way; its Cypher lives in ``persona.store.cypher``.
Every write is one managed transaction (``session.execute_write``) that first takes a write lock on the user's node,
so concurrent writers of one user queue up instead of interleaving their NEXT-chain edits.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import numpy as np
from neo4j import (
    READ_ACCESS,
    GraphDatabase,
    ManagedTransaction,
    NotificationDisabledClassification,
    Record,
    Session,
    Transaction,
)
from neo4j.exceptions import (
    AuthError,
    ClientError,
    ConfigurationError,
    ConstraintError,
    DriverError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)

from persona.errors import DuplicateError, EmbedderMismatchError, StoreError, StoreUnavailableError, ValidationError
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
from persona.store import cypher
from persona.store.base import EVOLVING_KINDS, CandidateQuery, ListWindow, Store, StoreTransaction
from persona.store.common import (
    node_sort_time,
    parse_node,
    parse_stored,
    serialise_node,
    serialise_stored,
    stored_status,
)
from persona.store.migrations import migrate_neo4j, run_schema_statement

T = TypeVar("T")
CONNECTION_TIMEOUT = 5.0
"""Seconds to wait for a TCP connection: an unreachable server fails fast instead of hanging the app."""
INDEX_WAIT_SECONDS = 300
DELETE_BATCH = 2_000
"""``delete_user`` removes this many nodes per transaction: a big journal in one transaction (10,000 entries are
~37,000 nodes) outgrows Neo4j's transaction memory limit and could never be deleted."""
log = logging.getLogger(__name__)

BOLT_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")
VECTOR_CANDIDATES = 100
"""The global vector index is asked for at least this many nodes, then filtered to the user (no filtered search)."""
MAX_VECTOR_CANDIDATES = 2_000
"""Past this many candidates, an exact scan over the user's own vectors is cheaper than the index (the user holds
a small share of a big store)."""
SHARE_SECONDS = 30.0
"""How long a user's share of the stored vectors is reused before it is counted again."""
TEXT_CANDIDATES = 100
EVOLVING_SCAN_LIMIT = 5_000
"""A user with at most this many goals and psyche memories has them scanned exactly for evolution candidates (one
pass for a whole import chunk); beyond it the vector index is asked first, per vector."""
VECTOR_CACHE_USERS = 8
"""Users whose goal and psyche vectors a store keeps (at most ``EVOLVING_SCAN_LIMIT`` each, ~1.5 kB per vector)."""
TEXT_CANDIDATES_CEILING = 20_000
"""The most full-text hits an evolution probe asks for (the index is global; the user's goals are a share of it)."""
_LUCENE_SPECIAL = frozenset('\\+-!():^[]"{}~*?|&/')


def _utc(value: datetime) -> datetime:
    """Times are stored in UTC, so Neo4j compares and sorts them as instants, like SQLite's UTC text."""
    return value.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_micros(value: datetime) -> int:
    """An aware time as integer microseconds since the epoch, exactly (as ``cypher.EVOLVING_VECTORS`` lists times)."""
    return (_utc(value) - _EPOCH) // timedelta(microseconds=1)


def _chain_key(node: AnyNode) -> str | None:
    """An episode's place in the NEXT chain as one sortable string: (occurred_at, created_at, id), fixed width."""
    if node.type is not NodeType.EPISODE:
        return None
    times = (
        _utc(t).replace(tzinfo=None).isoformat(timespec="microseconds") for t in (node_sort_time(node), node.created_at)
    )
    return "|".join([*times, node.id])


def _unit(embedding: Sequence[float] | None) -> list[float] | None:
    """The embedding scaled to unit length; ``None`` for no vector or a zero one (cosine is undefined for it)."""
    if embedding is None:
        return None
    vector = np.asarray(embedding, dtype=np.float64)
    norm = float(np.linalg.norm(vector))
    return (vector / norm).tolist() if norm else None


def lucene_query(words: Sequence[str]) -> str:
    """A Lucene query matching any of ``words``: each is escaped and quoted, so none is read as an operator."""
    quoted = ('"' + "".join("\\" + ch if ch in _LUCENE_SPECIAL else ch for ch in word) + '"' for word in words)
    return " OR ".join(quoted)


def node_properties(node: AnyNode) -> dict[str, Any]:
    """The properties a node is stored with: its model as JSON in ``body``, plus what queries filter and sort by."""
    return {
        "id": node.id,
        "user_id": node.user_id,
        "type": node.type.value,
        "sort_time": _utc(node_sort_time(node)),
        "created_at": _utc(node.created_at),
        "chain_key": _chain_key(node),
        "status": stored_status(node),
        "canonical": getattr(node, "canonical", None),
        "content_hash": getattr(node, "content_hash", None),
        "entry_id": getattr(node, "entry_id", None),
        "body": serialise_node(node),
        "search_text": node_text(node) if node.type in SEARCHABLE_TYPES else None,
        "embedding": _unit(getattr(node, "embedding", None)),
    }


def _fetch(tx: ManagedTransaction, statement: str, params: dict[str, Any]) -> list[Record]:
    return list(tx.run(statement, params))


class Neo4jStore(Store):
    """Persona's memory in a Neo4j database. ``auth=None`` for a server without authentication (tests)."""

    def __init__(
        self,
        uri: str,
        *,
        auth: tuple[str, str] | None,
        embedder: EmbedderInfo,
        database: str = "neo4j",
        accept_other_embedder: bool = False,
    ) -> None:
        self.uri = uri
        self._accept_other_embedder = accept_other_embedder
        self.database = database
        self.embedder = embedder
        self.description = f"Neo4j · {uri}"
        self.warming: threading.Thread | None = None
        """The background warm-up the app or the API started for this store (``persona.warmup``), if any."""
        self._shares: dict[str, tuple[float, float, int]] = {}
        self._over_scan_limit: dict[str, tuple[float, int]] = {}
        """Users found with more goals and psyche memories than ``EVOLVING_SCAN_LIMIT``: (when, how many)."""
        self._evolving_vectors: dict[str, dict[str, np.ndarray]] = {}
        """Unit vectors of users' goals and psyche memories, by user and node id (see ``_nearest_evolving``)."""
        # The API serves requests from a thread pool: the kept vectors are read, filled and evicted under this lock.
        self._vectors_lock = threading.Lock()
        # The driver's HTTP mode is a preview that needs extra packages; Persona speaks Bolt only.
        if uri.partition("://")[0] not in BOLT_SCHEMES:
            raise StoreUnavailableError(f"cannot use the Neo4j URI {uri!r}: use one of {', '.join(BOLT_SCHEMES)}://")
        try:
            self._driver = GraphDatabase.driver(
                uri,
                auth=auth,
                connection_timeout=CONNECTION_TIMEOUT,
                # "Label / property key does not exist" is what every query says of a fresh store (no schema node,
                # no changes yet): logged as a warning per query, it buried the warnings worth reading.
                notifications_disabled_classifications=[NotificationDisabledClassification.UNRECOGNIZED],
            )
        except (ConfigurationError, ValueError) as exc:
            raise StoreUnavailableError(f"cannot use the Neo4j URI {uri!r}: {exc}") from exc
        try:
            self._driver.verify_connectivity()
            self._create_schema()
        except AuthError as exc:
            self._driver.close()
            raise StoreUnavailableError(f"Neo4j at {uri} refused the credentials: {exc}") from exc
        except DriverError as exc:  # unreachable, timed out, connection lost
            self._driver.close()
            raise StoreUnavailableError(f"cannot reach Neo4j at {uri}: {exc}") from exc
        except ClientError as exc:
            self._driver.close()
            if exc.code == "Neo.ClientError.Database.DatabaseNotFound":
                raise StoreUnavailableError(f"Neo4j at {uri} has no database {database!r}") from exc
            raise StoreUnavailableError(f"Neo4j at {uri} refused to open the store: {exc.message}") from exc
        except BaseException:
            self._driver.close()
            raise

    # -- plumbing ----------------------------------------------------------------------------------------------
    @contextmanager
    def _translate(self) -> Iterator[None]:
        """Driver errors become Persona's: a lost server is ``StoreUnavailableError``, a broken uniqueness
        constraint (same entry text, same entity name) is ``DuplicateError``."""
        try:
            yield
        except ConstraintError as exc:
            raise DuplicateError(f"already stored: {exc.message}") from exc
        except (ServiceUnavailable, SessionExpired) as exc:
            raise StoreUnavailableError(f"Neo4j at {self.uri} is unavailable: {exc}") from exc
        except TransientError as exc:  # still failing after the driver's retries (memory limit, lock timeouts)
            raise StoreUnavailableError(f"Neo4j at {self.uri} could not finish the work: {exc.message}") from exc
        except DriverError as exc:
            raise StoreUnavailableError(f"Neo4j driver error for {self.uri}: {exc}") from exc
        except Neo4jError as exc:  # a query the server refused: a bug, reported as Persona's own error
            raise StoreError(f"Neo4j at {self.uri} refused a query: {exc.code}: {exc.message}") from exc

    def _write(self, work: Callable[[ManagedTransaction], T]) -> T:
        """Run ``work`` as one write transaction (retried by the driver on transient errors such as deadlocks)."""
        with self._translate(), self._driver.session(database=self.database) as session:
            return session.execute_write(work)

    def _read(self, statement: str, /, **params: Any) -> list[Record]:
        """Run one read query in a managed read transaction and return all its records."""
        with (
            self._translate(),
            self._driver.session(database=self.database, default_access_mode=READ_ACCESS) as session,
        ):
            return session.execute_read(_fetch, statement, params)

    def _create_schema(self) -> None:
        """Constraints and indexes (idempotent), the embedder check, then the vector index sized for it."""
        with self._driver.session(database=self.database) as session:
            # Migrations first: a database from a newer release is refused before anything is written.
            self.applied_migrations = migrate_neo4j(session, f"Neo4j at {self.uri}")
            self._check_embedder(session)
            # Made on open (IF NOT EXISTS) like the vector index: a store from before it gets it here.
            run_schema_statement(session, cypher.CREATE_EVOLVING_TEXT_INDEX)
            if self.stale_embedder is None:  # a stale store keeps its index until the re-embed replaces it
                run_schema_statement(session, cypher.CREATE_VECTOR_INDEX, dimension=self.embedder.dimension)
                self._check_vector_index(session)
            session.run(cypher.AWAIT_INDEXES, seconds=INDEX_WAIT_SECONDS).consume()

    def _check_embedder(self, session: Session) -> None:
        params = {"name": self.embedder.name, "dimension": self.embedder.dimension}
        row = session.execute_write(lambda tx: tx.run(cypher.MERGE_EMBEDDER, params).single())
        stored = (row["name"], row["dimension"])
        if stored != (self.embedder.name, self.embedder.dimension) and self._accept_other_embedder:
            self.stale_embedder = EmbedderInfo(name=stored[0], dimension=stored[1])  # vector search off until re-embed
        elif stored != (self.embedder.name, self.embedder.dimension):
            raise EmbedderMismatchError(stored, (self.embedder.name, self.embedder.dimension))

    def _check_vector_index(self, session: Session) -> None:
        """An index built for another dimension (say, the meta node was removed by hand) is refused too."""
        row = session.run(cypher.VECTOR_INDEX_OPTIONS, name=cypher.VECTOR_INDEX).single()
        dimension = int(row["options"]["indexConfig"]["vector.dimensions"]) if row else self.embedder.dimension
        if dimension != self.embedder.dimension:
            raise EmbedderMismatchError(
                (f"vector index {cypher.VECTOR_INDEX}", dimension), (self.embedder.name, self.embedder.dimension)
            )

    def _run_read(self, work: Callable[[StoreTransaction], T]) -> T:
        with (
            self._translate(),
            self._driver.session(database=self.database, default_access_mode=READ_ACCESS) as session,
        ):
            return session.execute_read(lambda tx: work(_Neo4jTransaction(tx)))

    def _run_write(self, work: Callable[[StoreTransaction], T]) -> T:
        """Every write transaction first takes the user's write lock (``lock_user``), so one user's writers queue."""
        return self._write(lambda tx: work(_Neo4jTransaction(tx, self._forget_vector)))

    @contextmanager
    def rolled_back(self) -> Iterator[Neo4jStore]:
        """This store with every read and write in ONE transaction that is rolled back when the block ends. Work done
        through it runs for real on the server (planned, executed, its writes visible to its own reads) and leaves
        nothing behind: ``persona.warmup`` uses it to warm a fresh server. Nothing a person writes goes
        through it."""
        with self._translate(), self._driver.session(database=self.database) as session:
            tx = session.begin_transaction()
            try:
                yield _RolledBackStore(self, tx)
            finally:
                if not tx.closed():
                    try:
                        tx.rollback()
                    except DriverError:  # the connection is gone, and the server drops the transaction with it
                        log.debug("rolling back a warm-up transaction failed", exc_info=True)

    def _forget_vector(self, user_id: str, node_id: str) -> None:
        """A node's vector changed (a text edit, a re-embed): the kept copy is dropped."""
        with self._vectors_lock:
            self._evolving_vectors.get(user_id, {}).pop(node_id, None)

    def _delete_user(self, user_id: str) -> int:
        """Nodes go ``DELETE_BATCH`` per transaction; the last transaction takes the rest and the user together. An
        interrupted delete leaves the user with fewer nodes, and calling it again finishes the job."""

        def work(tx: ManagedTransaction) -> int:
            tx.run(cypher.LOCK_USER, user_id=user_id).consume()
            removed = tx.run(cypher.DELETE_USER_NODES, user_id=user_id, batch=DELETE_BATCH).single()["n"]
            if removed < DELETE_BATCH:
                tx.run(cypher.DELETE_USER, user_id=user_id).consume()
            return removed

        total = 0
        while True:
            removed = self._write(work)
            total += removed
            if removed < DELETE_BATCH:
                return total

    # -- searches ----------------------------------------------------------------------------------------------
    def _vector_search(self, user_id: str, unit: list[float], k: int, kinds: list[str] | None) -> list[SearchHit]:
        """Scores are raw cosine, as in SQLite. The index is global (every user's nodes, every type) and Community
        has no filtered search, so it is asked for enough candidates that ~2k of them are this user's: 2k when the
        user holds every vector, 2k / share otherwise (one round trip in the usual case). If too few survive the
        filter, or the ask would pass ``MAX_VECTOR_CANDIDATES``, an exact scan over this user's vectors is correct
        and, for a small share, cheap."""
        params = {"user_id": user_id, "embedding": unit, "types": kinds or [t.value for t in NodeType], "k": k}
        share, mine = self._vector_share(user_id)
        # Twice the need covers what the filters drop. A user who holds every vector, asking for every type, loses
        # nothing to them: k is enough, and the index's cost grows with the ask (10k vectors here: ~28 ms for 20,
        # ~50 ms for 160). A short answer still gets the bigger ask below.
        unfiltered = share >= 1.0 and set(SEARCHABLE_TYPES) <= set(params["types"])
        headroom = 1 if unfiltered else 2
        # A user with fewer vectors than k (or none counted yet) is scanned: the index could not fill k anyway.
        candidates = max(headroom * k, math.ceil(headroom * k / share)) if mine >= k else MAX_VECTOR_CANDIDATES + 1
        rows: list[Record] = []
        for ask in (candidates, max(8 * k, VECTOR_CANDIDATES, 4 * candidates)):
            if ask > MAX_VECTOR_CANDIDATES:
                break
            rows = self._read(cypher.VECTOR_QUERY, candidates=ask, **params)
            if len(rows) >= k:
                break
        else:
            rows = []
        if len(rows) < k:
            rows = self._read(cypher.VECTOR_SCAN, **params)
        return [SearchHit(id=r["id"], type=NodeType(r["type"]), score=float(r["score"])) for r in rows]

    def _vector_share(self, user_id: str) -> tuple[float, int]:
        """The user's share of all stored vectors and their number, counted at most every ``SHARE_SECONDS`` (they
        only size the ask: a stale count costs a second round trip or a scan, never a wrong answer)."""
        now = time.monotonic()
        cached = self._shares.get(user_id)
        if cached is not None and now - cached[0] < SHARE_SECONDS:
            return cached[1], cached[2]
        row = self._read(cypher.VECTOR_SHARE, user_id=user_id)[0]
        share = row["mine"] / row["total"] if row["total"] else 0.0
        self._shares[user_id] = (now, share, row["mine"])
        return share, row["mine"]

    def _text_search(self, user_id: str, words: list[str], k: int, kinds: list[str]) -> list[SearchHit]:
        """Lucene BM25 over the escaped, quoted words (the full-text index is global, like the vector index)."""
        params = {"query": lucene_query(words), "user_id": user_id, "types": kinds, "k": k}
        rows = self._read(cypher.TEXT_QUERY_TOP, candidates=max(4 * k, TEXT_CANDIDATES), **params)
        if len(rows) < k:
            rows = self._read(cypher.TEXT_QUERY_ALL, **params)
        return [SearchHit(id=r["id"], type=NodeType(r["type"]), score=float(r["score"])) for r in rows]

    def _evolution_candidates(
        self, user_id: str, queries: Sequence[CandidateQuery], k_text: int, k_vector: int
    ) -> list[list[AnyNode]]:
        """The full-text hits and the nodes in ONE query for all the probes. For a user with at most
        ``EVOLVING_SCAN_LIMIT`` goals and psyche memories the nearest are scored here first (exact; their vectors are
        kept per process), else the vector index is asked per vector in the same query."""
        common = {"user_id": user_id, "types": EVOLVING_KINDS, "k_text": k_text, "k_vector": k_vector}
        common |= {"text_floor": TEXT_CANDIDATES, "text_ceiling": TEXT_CANDIDATES_CEILING}
        probes = [
            {
                "entry_id": q.entry_id,
                "before": _utc(q.before),
                "query": lucene_query(q.words) if q.words and k_text else None,
                "vectors": q.units,
            }
            for q in queries
        ]
        nearest = self._nearest_evolving(user_id, queries, k_vector)
        if nearest is not None:
            for probe in probes:
                probe["vectors"] = []  # scored already
            rows = self._read(cypher.EVOLUTION_CANDIDATES_SCAN, probes=probes, nearest=nearest, **common)
        else:
            ask = min(MAX_VECTOR_CANDIDATES, max(VECTOR_CANDIDATES, 20 * k_vector))
            rows = self._read(cypher.EVOLUTION_CANDIDATES_INDEXED, probes=probes, vector_candidates=ask, **common)
        nodes = {n["id"]: parse_node(NodeType(n["type"]), n["body"]) for n in rows[0]["nodes"]}
        ids_by_probe = {f["i"]: f["ids"] for f in rows[0]["found"]}
        return [[nodes[i] for i in dict.fromkeys(ids_by_probe.get(p, [])) if i in nodes] for p in range(len(probes))]

    def _nearest_evolving(self, user_id: str, queries: Sequence[CandidateQuery], k: int) -> list[list[str]] | None:
        """For each query, the ``k`` nearest of the user's (active) goals and psyche memories to each of its vectors,
        among those that happened by its date and are not of its entry: exact cosine over the listing of
        ``cypher.EVOLVING_VECTORS``, ties in date order as in the vector search. Vectors already fetched by this
        process are not fetched again (a text edit or re-embed made here drops them; one made by another process
        can leave a stale vector, which only moves a candidate's rank). None for a user with more than
        ``EVOLVING_SCAN_LIMIT`` of them: the vector index is asked instead (a user found that big is not listed
        again for ``SHARE_SECONDS``)."""
        if k <= 0 or not any(q.units for q in queries):
            return [[] for _ in queries]
        known_big = self._over_scan_limit.get(user_id)
        if known_big is not None and time.monotonic() - known_big[0] < SHARE_SECONDS:
            return None
        # The read runs under the lock too: the rows it skips (vectors kept already) must still be kept when it ends,
        # which another thread's eviction would break.
        with self._vectors_lock:
            if user_id not in self._evolving_vectors and len(self._evolving_vectors) >= VECTOR_CACHE_USERS:
                del self._evolving_vectors[next(iter(self._evolving_vectors))]  # the user cached first
            cache = self._evolving_vectors.setdefault(user_id, {})
            known = dict.fromkeys(cache, True)
            params = {"user_id": user_id, "known": known, "scan_limit": EVOLVING_SCAN_LIMIT}
            listing = self._read(cypher.EVOLVING_VECTORS, **params)[0]
            if listing["total"] > EVOLVING_SCAN_LIMIT:
                self._over_scan_limit[user_id] = (time.monotonic(), listing["total"])
                self._evolving_vectors.pop(user_id, None)
                return None
            for fresh in listing["fresh"]:
                cache[fresh["id"]] = np.asarray(fresh["embedding"], dtype=np.float32)
            listed = [i for i, node_id in enumerate(listing["ids"]) if node_id in cache]
            for gone in set(cache) - set(listing["ids"]):  # deleted, changed, or no longer active
                del cache[gone]
            if not listed:
                return [[] for _ in queries]
            ids = [listing["ids"][i] for i in listed]
            matrix = np.stack([cache[i] for i in ids])
        times = np.array(listing["micros"], dtype=np.int64)[listed]
        entries = np.array(listing["entry_ids"], dtype=object)[listed]
        nearest: list[list[str]] = []
        for query in queries:
            allowed = np.flatnonzero((times <= _epoch_micros(query.before)) & (entries != query.entry_id))
            found: list[str] = []
            for unit in query.units if len(allowed) else []:
                scores = matrix[allowed] @ np.asarray(unit, dtype=np.float32)
                top = np.argpartition(-scores, min(k, len(scores)) - 1)[:k]
                top = top[np.lexsort((top, -scores[top]))]  # by score, ties by date order
                found += [ids[allowed[i]] for i in top]
            nearest.append(found)
        return nearest

    def adopt_embedder(self) -> None:
        params = {"name": self.embedder.name, "dimension": self.embedder.dimension}
        with self._translate(), self._driver.session(database=self.database) as session:
            session.execute_write(lambda tx: tx.run(cypher.SET_EMBEDDER, params).consume())
            # The index's dimension is fixed when it is made: a new model with another dimension needs a new index.
            session.run(cypher.DROP_VECTOR_INDEX).consume()
            run_schema_statement(session, cypher.CREATE_VECTOR_INDEX, dimension=self.embedder.dimension)
            session.run(cypher.AWAIT_INDEXES, seconds=INDEX_WAIT_SECONDS).consume()
        self.stale_embedder = None
        with self._vectors_lock:
            self._evolving_vectors.clear()

    def close(self) -> None:
        """Release the driver's connections. A warm-up still running ends with them; it is waited for briefly, so it
        is not left inside the driver while the interpreter shuts down."""
        self._driver.close()
        if self.warming is not None and self.warming is not threading.current_thread():
            self.warming.join(timeout=5)


class _RolledBackStore(Neo4jStore):
    """A ``Neo4jStore`` whose reads and writes all run in one explicit transaction (see ``Neo4jStore.rolled_back``).
    It shares the store's driver and settings but keeps its own caches, so nothing it saw outlives the rollback."""

    def __init__(self, store: Neo4jStore, tx: Transaction) -> None:
        # The store's connection and settings (driver, uri, database, embedder); then fresh copies of everything that
        # remembers what it read, so that nothing seen inside the transaction outlives its rollback.
        self.__dict__.update(store.__dict__)
        self.warming = None
        self._shares, self._over_scan_limit, self._evolving_vectors = {}, {}, {}
        self._vectors_lock = threading.Lock()
        self._tx = tx
        self._broken: Exception | None = None

    def _write(self, work: Callable[[ManagedTransaction], T]) -> T:
        # An explicit transaction runs statements as a managed one does.
        return self._in_transaction(lambda: work(self._tx))

    def _read(self, statement: str, /, **params: Any) -> list[Record]:
        return self._in_transaction(lambda: list(self._tx.run(statement, params)))

    def _run_read(self, work: Callable[[StoreTransaction], T]) -> T:
        return self._in_transaction(lambda: work(_Neo4jTransaction(self._tx)))

    def _in_transaction(self, work: Callable[[], T]) -> T:
        """Run ``work`` in the one transaction. A write that fails midway leaves its half in the transaction (and a
        server error ends the transaction), so after the first failure every call fails: nothing builds on a half."""
        if self._broken is not None:
            raise StoreError(f"this rolled-back view stopped at an earlier error: {self._broken}")
        try:
            with self._translate():
                return work()
        except Exception as exc:
            self._broken = exc
            raise

    def adopt_embedder(self) -> None:
        """Refused: it changes the schema, which no transaction can roll back."""
        raise StoreError("a rolled-back view cannot change the store's embedder")

    def close(self) -> None:
        """The driver belongs to the store this view was made from."""


class _Neo4jTransaction(StoreTransaction):
    """The primitives over one managed transaction; every query is in ``cypher.py``."""

    def __init__(self, tx: ManagedTransaction, on_vector_change: Callable[[str, str], None] | None = None) -> None:
        self.tx = tx
        self._on_vector_change = on_vector_change
        self._locked: set[str] = set()
        """Users whose write lock this transaction holds (a lock is held until the transaction ends)."""

    def _rows(self, statement: str, /, **params: Any) -> list[Record]:
        return list(self.tx.run(statement, params))

    def _nodes(self, statement: str, /, **params: Any) -> list[AnyNode]:
        return [parse_node(NodeType(r["type"]), r["body"]) for r in self._rows(statement, **params)]

    # -- users
    def ensure_user(self, user: User) -> User:
        params = {
            "id": user.id,
            "display_name": user.display_name,
            "created_at": _utc(user.created_at),
            "body": serialise_stored(user),
        }
        stored = parse_stored(User, self._rows(cypher.MERGE_USER, **params)[0]["body"])
        self._locked.add(user.id)
        return stored

    def list_users(self) -> list[User]:
        return [parse_stored(User, row["body"]) for row in self._rows(cypher.LIST_USERS)]

    def lock_user(self, user_id: str) -> bool:
        """Take the user's write lock, once per transaction (``ensure_user`` takes it too)."""
        if user_id in self._locked:
            return True
        locked = bool(self._rows(cypher.LOCK_USER, user_id=user_id))
        if locked:
            self._locked.add(user_id)
        return locked

    # -- nodes
    def get(self, user_id: str, ids: Sequence[str]) -> list[AnyNode]:
        return self._nodes(cypher.GET_NODES, ids=list(ids), user_id=user_id) if ids else []

    def taken(self, ids: Sequence[str]) -> set[str]:
        return {row["id"] for row in self.tx.run(cypher.IDS_IN_USE, ids=list(ids))} if ids else set()

    def create(self, nodes: Sequence[AnyNode]) -> None:
        rows = [node_properties(node) for node in nodes]
        if rows:
            self.tx.run(cypher.CREATE_NODES, rows=rows).consume()

    def create_entities(self, entities: Sequence[Entity]) -> dict[str, str]:
        """MERGE on (user_id, canonical): the uniqueness constraint backs it, so one name is one node even if a
        writer that skipped the user lock raced us."""
        groups: dict[bool, list[dict[str, Any]]] = {}
        for entity in entities:
            props = node_properties(entity)
            groups.setdefault(props["embedding"] is not None, []).append(props)
        mapping: dict[str, str] = {}
        for embedded, rows in groups.items():
            for row in self._rows(cypher.merge_entities(embedded=embedded), rows=rows):
                mapping[row["given"]] = row["stored"]
        return mapping

    def rewrite(self, user_id: str, nodes: Sequence[AnyNode], *, reindex: bool = True) -> None:
        keys = ("id", "body", "sort_time", "chain_key", "status", "canonical", "content_hash", "search_text")
        rows = [{key: props[key] for key in keys} for props in map(node_properties, nodes)]
        if rows:
            self.tx.run(cypher.rewrite_nodes(reindex=reindex), rows=rows, user_id=user_id).consume()

    def set_embedding(self, user_id: str, node_id: str, embedding: Sequence[float] | None) -> None:
        vector = _unit(embedding)
        query = cypher.SET_EMBEDDING if vector is not None else cypher.REMOVE_EMBEDDING
        self.tx.run(query, id=node_id, user_id=user_id, embedding=vector).consume()
        if self._on_vector_change is not None:
            self._on_vector_change(user_id, node_id)

    def delete(self, user_id: str, ids: Sequence[str]) -> None:
        if ids:
            self.tx.run(cypher.DELETE_NODES, ids=list(ids), user_id=user_id).consume()

    def list(self, user_id: str, node_type: NodeType, window: ListWindow) -> list[AnyNode]:
        return self._nodes(
            cypher.list_nodes(node_type, newest_first=window.newest_first),
            user_id=user_id,
            start=None if window.start is None else _utc(window.start),
            end=None if window.end is None else _utc(window.end),
            status=window.status,
            limit=window.limit,
            offset=window.offset,
        )

    def count(self, user_id: str | None, node_type: NodeType | None = None) -> dict[str, int]:
        if node_type is not None:
            return {node_type.value: self._rows(cypher.count_nodes(node_type), user_id=user_id)[0]["n"]}
        if user_id is None:
            return {r["type"]: r["n"] for r in self._rows(cypher.COUNT_BY_TYPE)}
        return {r["type"]: r["n"] for r in self._rows(cypher.USER_COUNT_BY_TYPE, user_id=user_id)}

    def entry_by_hash(self, user_id: str, content_hash: str) -> Entry | None:
        rows = self._rows(cypher.FIND_ENTRY_BY_HASH, user_id=user_id, content_hash=content_hash)
        return parse_stored(Entry, rows[0]["body"]) if rows else None

    def entries_by_hash(self, user_id: str, content_hashes: Sequence[str]) -> dict[str, Entry]:
        rows = self._rows(cypher.FIND_ENTRIES_BY_HASH, user_id=user_id, hashes=list(dict.fromkeys(content_hashes)))
        return {row["hash"]: parse_stored(Entry, row["body"]) for row in rows}

    def entities_by_canonical(self, user_id: str, canonicals: Sequence[str]) -> list[Entity]:
        rows = self._rows(cypher.FIND_ENTITIES, canonicals=list(canonicals), user_id=user_id)
        return [parse_stored(Entity, row["body"]) for row in rows]

    def entry_members(self, user_id: str, entry_id: str) -> dict[str, NodeType]:
        rows = self._rows(cypher.ENTRY_DEPENDANTS, id=entry_id, user_id=user_id)
        return {row["id"]: NodeType(row["type"]) for row in rows}

    # -- links
    def link(self, user_id: str, links: Sequence[tuple[LinkType, str, str]]) -> None:
        """One ``UNWIND`` for all links; if any end is not the user's, say which link (the transaction aborts)."""
        if not links:
            return
        rows = [{"type": t.value, "source": source, "target": target} for t, source, target in links]
        if self._rows(cypher.MERGE_LINKS, links=rows, user_id=user_id)[0]["n"] == len(rows):
            return
        ids = list({i for _, source, target in links for i in (source, target)})
        owned = {row["id"] for row in self._rows(cypher.OWNED_IDS, ids=ids, user_id=user_id)}
        link_type, source, target = next(lk for lk in links if not {lk[1], lk[2]} <= owned)
        raise ValidationError(f"link {link_type.value} {source} -> {target} names a node this user does not have")

    def unlink(self, user_id: str, links: Sequence[tuple[LinkType, str, str]]) -> None:
        rows = [{"type": LinkType(t).value, "source": source, "target": target} for t, source, target in links]
        if rows:
            self.tx.run(cypher.DELETE_LINKS, links=rows, user_id=user_id).consume()

    def links(self, user_id: str, ids: Sequence[str], kinds: Sequence[str]) -> list[tuple[str, str, str]]:
        rows = self._rows(cypher.NEIGHBOURS, ids=list(ids), types=list(kinds), user_id=user_id)
        return [(r["type"], r["source"], r["target"]) for r in rows]

    def links_among(self, user_id: str, ids: Sequence[str], kinds: Sequence[str]) -> list[tuple[str, str, str]]:
        """One query that never returns the links leaving ``ids`` (a graph page's passages and far entities)."""
        rows = self._rows(cypher.LINKS_AMONG, ids=list(ids), types=list(kinds), user_id=user_id)
        return [(r["type"], r["source"], r["target"]) for r in rows]

    def count_links(self, user_id: str | None) -> tuple[int, int]:
        if user_id is None:
            return self._rows(cypher.COUNT_LINKS)[0]["n"], self._rows(cypher.COUNT_USERS)[0]["n"]
        links = self._rows(cypher.USER_COUNT_LINKS, user_id=user_id)[0]["n"]
        return links, self._rows(cypher.USER_EXISTS, user_id=user_id)[0]["n"]

    # -- the NEXT chain
    def place_in_chain(self, user_id: str, episode: AnyNode) -> None:
        """One query: (occurred_at, created_at, id) in ``chain_key`` orders the chain, each neighbour is one seek
        (the batch placement with one episode)."""
        self.tx.run(cypher.PLACE_EPISODES, ids=[episode.id], user_id=user_id).consume()

    def add_episodes(self, user_id: str, episodes: Sequence[AnyNode]) -> None:
        """Two statements for any number of episodes (one create, one placement) instead of two per episode: an
        import chunk of the demo journal has ~60."""
        if not episodes:
            return
        self.create(episodes)
        ordered = sorted(episodes, key=lambda e: _chain_key(e) or "")
        self.tx.run(cypher.PLACE_EPISODES, ids=[e.id for e in ordered], user_id=user_id).consume()

    def unlink_from_chain(self, user_id: str, episode_id: str) -> None:
        self.tx.run(cypher.UNLINK_FROM_CHAIN, id=episode_id, user_id=user_id).consume()

    def next_links(self, user_id: str) -> dict[str, str]:
        return {r["source"]: r["target"] for r in self._rows(cypher.CHAIN_LINKS, user_id=user_id)}

    def first_episode(self, user_id: str) -> str | None:
        rows = self._rows(cypher.FIRST_EPISODE, user_id=user_id)
        return rows[0]["id"] if rows else None
