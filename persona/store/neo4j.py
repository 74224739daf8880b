"""The graph-database store: Neo4j 5.26 (Community is enough) through the official driver's sync API.

It fulfils the same contract as ``SqliteStore`` and behaves the same way; its Cypher lives in ``persona.store.cypher``.
Every write is one managed transaction (``session.execute_write``) that first takes a write lock on the user's node,
so concurrent writers of one user queue up instead of interleaving their NEXT-chain edits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
from neo4j import READ_ACCESS, GraphDatabase, ManagedTransaction, Record, Session
from neo4j.exceptions import (
    AuthError,
    ClientError,
    ConfigurationError,
    ConstraintError,
    DriverError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)

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
    Link,
    LinkType,
    MemoryBatch,
    NodeType,
    SearchHit,
    User,
    check_user_id,
    node_text,
)
from persona.store import cypher
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
from persona.store.migrations import migrate_neo4j

T = TypeVar("T")
CONNECTION_TIMEOUT = 5.0
"""Seconds to wait for a TCP connection: an unreachable server fails fast instead of hanging the app."""
INDEX_WAIT_SECONDS = 300
DELETE_BATCH = 2_000
"""``delete_user`` removes this many nodes per transaction: a big journal in one transaction (10,000 entries are
~37,000 nodes) outgrows Neo4j's transaction memory limit and could never be deleted."""
BOLT_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")
VECTOR_CANDIDATES = 100
"""The global vector index is asked for at least this many nodes, then filtered to the user (no filtered search)."""
TEXT_CANDIDATES = 100
_LUCENE_SPECIAL = frozenset('\\+-!():^[]"{}~*?|&/')


def _utc(value: datetime) -> datetime:
    """Times are stored in UTC, so Neo4j compares and sorts them as instants, like SQLite's UTC text."""
    return value.astimezone(UTC)


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


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


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
        "status": _optional_str(getattr(node, "status", None)),
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
        self, uri: str, *, auth: tuple[str, str] | None, embedder: EmbedderInfo, database: str = "neo4j"
    ) -> None:
        self.uri = uri
        self.database = database
        self.embedder = embedder
        self.description = f"Neo4j · {uri}"
        # The driver's HTTP mode is a preview that needs extra packages; Persona speaks Bolt only.
        if uri.partition("://")[0] not in BOLT_SCHEMES:
            raise StoreUnavailableError(f"cannot use the Neo4j URI {uri!r}: use one of {', '.join(BOLT_SCHEMES)}://")
        try:
            self._driver = GraphDatabase.driver(uri, auth=auth, connection_timeout=CONNECTION_TIMEOUT)
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
            raise
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
            self._run_schema(session, cypher.CREATE_VECTOR_INDEX, dimension=self.embedder.dimension)
            self._check_vector_index(session)
            session.run(cypher.AWAIT_INDEXES, seconds=INDEX_WAIT_SECONDS).consume()

    @staticmethod
    def _run_schema(session: Session, statement: str, **params: Any) -> None:
        try:
            session.run(statement, params).consume()
        except ClientError as exc:
            # Two processes opening a fresh database at once can race on IF NOT EXISTS; the rule exists either way.
            if "AlreadyExists" not in (exc.code or ""):
                raise

    def _check_embedder(self, session: Session) -> None:
        params = {"name": self.embedder.name, "dimension": self.embedder.dimension}
        row = session.execute_write(lambda tx: tx.run(cypher.MERGE_EMBEDDER, params).single())
        stored = (row["name"], row["dimension"])
        if stored != (self.embedder.name, self.embedder.dimension):
            raise EmbedderMismatchError(stored, (self.embedder.name, self.embedder.dimension))

    def _check_vector_index(self, session: Session) -> None:
        """An index built for another dimension (say, the meta node was removed by hand) is refused too."""
        row = session.run(cypher.VECTOR_INDEX_OPTIONS, name=cypher.VECTOR_INDEX).single()
        dimension = int(row["options"]["indexConfig"]["vector.dimensions"]) if row else self.embedder.dimension
        if dimension != self.embedder.dimension:
            raise EmbedderMismatchError(
                (f"vector index {cypher.VECTOR_INDEX}", dimension), (self.embedder.name, self.embedder.dimension)
            )

    @staticmethod
    def _lock_user(tx: ManagedTransaction, user_id: str) -> bool:
        """Take the user's write lock for the rest of the transaction; ``False`` when the user does not exist."""
        return tx.run(cypher.LOCK_USER, user_id=user_id).single() is not None

    @staticmethod
    def _get(tx: ManagedTransaction, user_id: str, node_id: str) -> AnyNode:
        check_user_id(user_id)
        if not possible_id(node_id):
            raise NodeNotFoundError(node_id, user_id)
        row = tx.run(cypher.GET_NODE, id=node_id, user_id=user_id).single()
        if row is None:
            raise NodeNotFoundError(node_id, user_id)
        return parse_node(NodeType(row["type"]), row["body"])

    @staticmethod
    def _create_nodes(tx: ManagedTransaction, nodes: Iterable[AnyNode]) -> None:
        """Create the nodes, whatever their types, in one ``UNWIND``."""
        rows = [node_properties(node) for node in nodes]
        if rows:
            tx.run(cypher.CREATE_NODES, rows=rows).consume()

    @staticmethod
    def _create_links(tx: ManagedTransaction, user_id: str, links: Sequence[tuple[LinkType, str, str]]) -> None:
        """Create links between this user's nodes. A link naming any other node raises ``ValidationError``, and
        since that aborts the transaction, nothing of the batch is written."""
        if not links:
            return
        rows = [{"type": t.value, "source": source, "target": target} for t, source, target in links]
        if tx.run(cypher.MERGE_LINKS, links=rows, user_id=user_id).single()["n"] == len(rows):
            return
        ids = list({i for _, source, target in links for i in (source, target)})
        owned = {row["id"] for row in tx.run(cypher.OWNED_IDS, ids=ids, user_id=user_id)}
        link_type, source, target = next(lk for lk in links if not {lk[1], lk[2]} <= owned)
        raise ValidationError(f"link {link_type.value} {source} -> {target} names a node this user does not have")

    @staticmethod
    def _place_in_chain(tx: ManagedTransaction, user_id: str, episode_id: str) -> None:
        """Insert the episode between its neighbours in time: (occurred_at, created_at, id) orders the chain."""
        tx.run(cypher.PLACE_IN_CHAIN, id=episode_id, user_id=user_id).consume()

    @staticmethod
    def _unlink_from_chain(tx: ManagedTransaction, user_id: str, episode_id: str) -> None:
        """Take the episode out of the chain and join its neighbours."""
        tx.run(cypher.UNLINK_FROM_CHAIN, id=episode_id, user_id=user_id).consume()

    # -- users -------------------------------------------------------------------------------------------------
    def ensure_user(self, user_id: str, *, display_name: str = "") -> User:
        """Create the user if missing and return it (an existing user keeps its display name)."""
        user = User(id=check_user_id(user_id), display_name=display_name)
        row = self._write(lambda tx: tx.run(cypher.MERGE_USER, self._user_params(user)).single())
        return parse_stored(User, row["body"])

    @staticmethod
    def _user_params(user: User) -> dict[str, Any]:
        return {
            "id": user.id,
            "display_name": user.display_name,
            "created_at": _utc(user.created_at),
            "body": serialise_stored(user),
        }

    def list_users(self) -> list[User]:
        """All users, ordered by id."""
        return [parse_stored(User, row["body"]) for row in self._read(cypher.LIST_USERS)]

    def delete_user(self, user_id: str) -> int:
        """Delete the user and every node it owns; return how many nodes were removed.

        Nodes go ``DELETE_BATCH`` per transaction; the last transaction takes the rest and the user together. An
        interrupted delete leaves the user with fewer nodes, and calling it again finishes the job."""
        check_user_id(user_id)

        def work(tx: ManagedTransaction) -> int:
            self._lock_user(tx, user_id)
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

    # -- writes ------------------------------------------------------------------------------------------------
    def save_entry(self, entry: Entry) -> Entry:
        """Store a new entry (creating its user); the same text twice returns the entry already stored."""

        def work(tx: ManagedTransaction) -> Entry:
            tx.run(cypher.MERGE_USER, self._user_params(User(id=entry.user_id))).consume()
            self._lock_user(tx, entry.user_id)
            row = tx.run(cypher.FIND_ENTRY_BY_HASH, user_id=entry.user_id, content_hash=entry.content_hash).single()
            if row is not None:
                return parse_stored(Entry, row["body"])
            self._create_nodes(tx, [entry])
            return entry

        return self._write(work)

    def set_entry_status(self, user_id: str, entry_id: str, status: EntryStatus, *, error: str | None = None) -> None:
        """Record an entry's processing status (and the reason, when it failed)."""
        self.update_node(user_id, entry_id, {"status": as_entry_status(status), "error": error})

    def write_batch(self, user_id: str, batch: MemoryBatch, *, done_entry_ids: Sequence[str] = ()) -> dict[str, str]:
        """Write a batch in one transaction: entities merged by canonical name, links checked, episodes chained, and
        the entries named in ``done_entry_ids`` marked done."""
        check_user_id(user_id)
        check_batch(user_id, batch, dimension=self.embedder.dimension)

        def work(tx: ManagedTransaction) -> dict[str, str]:
            if not self._lock_user(tx, user_id):
                raise UserNotFoundError(user_id)
            self._mark_done(tx, user_id, done_entry_ids)
            entity_ids = self._merge_entities(tx, user_id, batch.entities)
            self._create_nodes(tx, [n for n in batch.nodes() if n.type not in (NodeType.ENTITY, NodeType.EPISODE)])
            # One episode at a time, created and then placed: a placement looks for its neighbours among the stored
            # episodes, so it must never see a sibling of the batch that is stored but not yet in the chain.
            for episode in batch.episodes:
                self._create_nodes(tx, [episode])
                self._place_in_chain(tx, user_id, episode.id)
            links = [
                (lk.type, entity_ids.get(lk.source_id, lk.source_id), entity_ids.get(lk.target_id, lk.target_id))
                for lk in batch.links
            ]
            self._create_links(tx, user_id, links)
            return entity_ids

        return self._write(work)

    @staticmethod
    def _mark_done(tx: ManagedTransaction, user_id: str, entry_ids: Sequence[str]) -> None:
        """Set entries' status to done (and clear their error), body and property alike."""
        if not entry_ids:
            return
        rows = []
        for row in tx.run(cypher.GET_NODES, ids=list(entry_ids), user_id=user_id):
            entry = parse_node(NodeType(row["type"]), row["body"])
            if not isinstance(entry, Entry):
                raise ValidationError(f"{entry.id} is not an entry")
            if entry.status is EntryStatus.DONE:  # processed meanwhile (another tab, a double click): not twice
                raise DuplicateError(f"entry {entry.id} is already processed", existing_id=entry.id)
            done = entry.model_copy(update={"status": EntryStatus.DONE, "error": None})
            rows.append({"id": done.id, "body": serialise_node(done), "status": EntryStatus.DONE.value})
        if len(rows) != len(set(entry_ids)):
            raise NodeNotFoundError(next(i for i in entry_ids if i not in {r["id"] for r in rows}), user_id)
        tx.run(cypher.SET_STATUSES, rows=rows, user_id=user_id).consume()

    def _merge_entities(self, tx: ManagedTransaction, user_id: str, entities: Sequence[Entity]) -> dict[str, str]:
        """Create new entities; for a canonical name the user already has (in the store or earlier in this batch),
        keep that node and add the new names as aliases, exactly as SQLite does."""
        canonicals = list(dict.fromkeys(e.canonical for e in entities))
        if not entities:
            return {}
        known: dict[str, Entity] = {}
        for row in tx.run(cypher.FIND_ENTITIES, canonicals=canonicals, user_id=user_id):
            stored = parse_node(NodeType.ENTITY, row["body"])
            known[stored.canonical] = stored  # type: ignore[union-attr]
        created: dict[str, Entity] = {}
        updated: dict[str, Entity] = {}
        mapping: dict[str, str] = {}
        for entity in entities:
            stored = known.get(entity.canonical)
            if stored is None:
                known[entity.canonical] = created[entity.id] = entity
                mapping[entity.id] = entity.id
                continue
            names = set(stored.aliases) | set(entity.aliases) | ({entity.name} - {stored.name})
            if names != set(stored.aliases):
                stored = stored.model_copy(update={"aliases": sorted(names)})
                known[entity.canonical] = stored
                (created if stored.id in created else updated)[stored.id] = stored
            mapping[entity.id] = stored.id
        mapping |= self._create_entities(tx, list(created.values()))
        if updated:
            rows = [{"id": e.id, "body": serialise_node(e), "search_text": node_text(e)} for e in updated.values()]
            tx.run(cypher.SET_BODIES, rows=rows, user_id=user_id).consume()
        return {given: mapping.get(stored, stored) for given, stored in mapping.items()}

    @staticmethod
    def _create_entities(tx: ManagedTransaction, entities: Sequence[Entity]) -> dict[str, str]:
        """MERGE on (user_id, canonical): the uniqueness constraint backs it, so one name is one node even if a
        writer that skipped the user lock raced us. Returns given id -> stored id."""
        groups: dict[bool, list[dict[str, Any]]] = {}
        for entity in entities:
            props = node_properties(entity)
            groups.setdefault(props["embedding"] is not None, []).append(props)
        mapping: dict[str, str] = {}
        for embedded, rows in groups.items():
            for row in tx.run(cypher.merge_entities(embedded=embedded), rows=rows):
                mapping[row["given"]] = row["stored"]
        return mapping

    def update_node(self, user_id: str, node_id: str, changes: dict[str, Any]) -> AnyNode:
        """Change fields of one node (validated by its model); a new ``occurred_at`` moves an episode in the chain."""
        check_changes(changes)
        check_user_id(user_id)

        def work(tx: ManagedTransaction) -> AnyNode:
            self._lock_user(tx, user_id)
            node = self._get(tx, user_id, node_id)
            new = changed_node(node, changes, dimension=self.embedder.dimension)
            props = node_properties(new)
            keys = ("body", "sort_time", "chain_key", "status", "canonical", "content_hash", "search_text")
            tx.run(cypher.UPDATE_NODE, {k: props[k] for k in keys}, id=node_id, user_id=user_id).consume()
            if "embedding" in changes:
                vector = props["embedding"]
                query = cypher.SET_EMBEDDING if vector is not None else cypher.REMOVE_EMBEDDING
                tx.run(query, id=node_id, user_id=user_id, embedding=vector).consume()
            if new.type is NodeType.EPISODE and "occurred_at" in changes:
                self._unlink_from_chain(tx, user_id, node_id)
                self._place_in_chain(tx, user_id, node_id)
            return new

        new = self._write(work)
        return new.model_copy(update={"embedding": None}) if hasattr(new, "embedding") else new

    def delete_node(self, user_id: str, node_id: str) -> int:
        """Delete a node with what belongs to it and the entities left unmentioned; return the count removed."""
        check_user_id(user_id)

        def work(tx: ManagedTransaction) -> int:
            self._lock_user(tx, user_id)
            node = self._get(tx, user_id, node_id)
            plan = cascade_plan(node, self._dependants(tx, user_id, node))
            for episode_id in (i for i, t in plan.items() if t is NodeType.EPISODE):
                self._unlink_from_chain(tx, user_id, episode_id)
            ids = list(plan)
            mentioned = [row["id"] for row in tx.run(cypher.MENTIONED_BY, ids=ids, user_id=user_id)]
            tx.run(cypher.DELETE_NODES, ids=ids, user_id=user_id).consume()
            candidates = [e for e in mentioned if e not in plan]
            orphans = tx.run(cypher.DELETE_ORPHAN_ENTITIES, ids=candidates, user_id=user_id).single()["n"]
            return len(plan) + orphans

        return self._write(work)

    @staticmethod
    def _dependants(tx: ManagedTransaction, user_id: str, node: AnyNode) -> dict[str, NodeType]:
        """What belongs to ``node``: an entry's memories and passages, an episode's derived memories."""
        if node.type is NodeType.ENTRY:
            query = cypher.ENTRY_DEPENDANTS
        elif node.type is NodeType.EPISODE:
            query = cypher.EPISODE_DEPENDANTS
        else:
            return {}
        return {row["id"]: NodeType(row["type"]) for row in tx.run(query, id=node.id, user_id=user_id)}

    def merge_entities(self, user_id: str, keep_id: str, drop_id: str) -> Entity:
        """Move every mention of ``drop_id`` to ``keep_id``, add its names as aliases, and delete it."""
        check_user_id(user_id)
        if keep_id == drop_id:
            raise ValidationError("cannot merge an entity with itself")

        def work(tx: ManagedTransaction) -> Entity:
            self._lock_user(tx, user_id)
            keep, drop = self._get(tx, user_id, keep_id), self._get(tx, user_id, drop_id)
            if not (isinstance(keep, Entity) and isinstance(drop, Entity)):
                raise ValidationError("only entities can be merged")
            tx.run(cypher.MOVE_MENTIONS, keep_id=keep_id, drop_id=drop_id, user_id=user_id).consume()
            merged = keep.model_copy(
                update={"aliases": sorted({*keep.aliases, *drop.aliases, drop.name} - {keep.name})}
            )
            tx.run(cypher.DELETE_NODES, ids=[drop_id], user_id=user_id).consume()
            row = {"id": keep_id, "body": serialise_node(merged), "search_text": node_text(merged)}
            tx.run(cypher.SET_BODIES, rows=[row], user_id=user_id).consume()
            return merged

        return self._write(work).model_copy(update={"embedding": None})

    # -- reads -------------------------------------------------------------------------------------------------
    def get_node(self, user_id: str, node_id: str) -> AnyNode:
        """One node of this user, or ``NodeNotFoundError``."""
        check_user_id(user_id)
        if not possible_id(node_id):
            raise NodeNotFoundError(node_id, user_id)
        rows = self._read(cypher.GET_NODE, id=node_id, user_id=user_id)
        if not rows:
            raise NodeNotFoundError(node_id, user_id)
        return parse_node(NodeType(rows[0]["type"]), rows[0]["body"])

    def get_nodes(self, user_id: str, node_ids: Sequence[str]) -> list[AnyNode]:
        """The user's nodes among ``node_ids``, in the order given; unknown ids are skipped."""
        check_user_id(user_id)
        ids = possible_ids(node_ids)
        if not ids:
            return []
        rows = self._read(cypher.GET_NODES, ids=ids, user_id=user_id)
        found = {node.id: node for node in (parse_node(NodeType(r["type"]), r["body"]) for r in rows)}
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
        """Nodes of one type, filtered by date in [start, end) and by status, ordered by date (then id)."""
        check_user_id(user_id)
        rows = self._read(
            cypher.list_nodes(as_node_type(node_type), newest_first=newest_first),
            user_id=user_id,
            start=None if start is None else _utc(start),
            end=None if end is None else _utc(end),
            status=as_status(status),
            limit=max(0, int(limit)),
            offset=max(0, int(offset)),
        )
        return [parse_node(NodeType(r["type"]), r["body"]) for r in rows]

    def count_nodes(self, user_id: str, node_type: NodeType) -> int:
        """How many nodes of this type the user has."""
        return self._read(cypher.count_nodes(as_node_type(node_type)), user_id=check_user_id(user_id))[0]["n"]

    def find_entry_by_hash(self, user_id: str, content_hash: str) -> Entry | None:
        """The user's entry with this content hash, if any."""
        check_user_id(user_id)
        if not possible_id(content_hash):  # a sha256 is 64 hex digits: anything else matches no entry
            return None
        rows = self._read(cypher.FIND_ENTRY_BY_HASH, user_id=check_user_id(user_id), content_hash=content_hash)
        return parse_stored(Entry, rows[0]["body"]) if rows else None

    def neighbours(
        self, user_id: str, node_ids: Sequence[str], *, link_types: Iterable[LinkType] | None = None
    ) -> list[Link]:
        """Links (both directions) that touch any of ``node_ids``, ordered by (type, source, target)."""
        check_user_id(user_id)
        kinds = [t.value for t in (as_link_types(link_types) if link_types is not None else LinkType)]
        ids = possible_ids(node_ids)
        if not ids or not kinds:
            return []
        rows = self._read(cypher.NEIGHBOURS, ids=ids, types=kinds, user_id=user_id)
        found = {(r["type"], r["source"], r["target"]) for r in rows}
        return [Link(type=LinkType(kind), source_id=s, target_id=t) for kind, s, t in sorted(found)]

    def vector_search(
        self, user_id: str, embedding: Sequence[float], *, k: int = 20, types: Iterable[NodeType] | None = None
    ) -> list[SearchHit]:
        """The ``k`` nodes nearest by cosine (scores are raw cosine, as in SQLite), ties by id."""
        check_user_id(user_id)
        check_embedding(embedding, self.embedder.dimension, what="the query vector")
        vector = _unit(np.asarray(embedding, dtype=np.float64))
        if vector is None or k <= 0:
            return []
        kinds = [t.value for t in (as_node_types(types) if types is not None else NodeType)]
        params = {"user_id": user_id, "embedding": vector, "types": kinds, "k": int(k)}
        # The index is global (every user's nodes, every type): ask it for a few more than k, keep this user's; if
        # too few survive the filter, ask for many more; if still too few, an exact scan over this user's vectors
        # is correct. A bigger ask costs time on every query, so the common case (one person) asks for little.
        rows: list[Record] = []
        for candidates in (2 * int(k), max(8 * int(k), VECTOR_CANDIDATES)):
            rows = self._read(cypher.VECTOR_QUERY, candidates=candidates, **params)
            if len(rows) >= k:
                break
        else:
            rows = self._read(cypher.VECTOR_SCAN, **params)
        return [SearchHit(id=r["id"], type=NodeType(r["type"]), score=float(r["score"])) for r in rows]

    def text_search(
        self, user_id: str, query: str, *, k: int = 20, types: Iterable[NodeType] | None = None
    ) -> list[SearchHit]:
        """Full-text (Lucene BM25) search over plain words of ``query``; operators in it are never interpreted."""
        check_user_id(user_id)
        words = fts_words(query)
        if not words or k <= 0:
            return []
        kinds = [t.value for t in (as_node_types(types) if types is not None else SEARCHABLE_TYPES)]
        params = {"query": lucene_query(words), "user_id": user_id, "types": kinds, "k": int(k)}
        rows = self._read(cypher.TEXT_QUERY_TOP, candidates=max(4 * int(k), TEXT_CANDIDATES), **params)
        if len(rows) < k:
            rows = self._read(cypher.TEXT_QUERY_ALL, **params)
        return [SearchHit(id=r["id"], type=NodeType(r["type"]), score=float(r["score"])) for r in rows]

    def chain(self, user_id: str) -> list[str]:
        """The episode ids of the user's NEXT chain, walked from its head."""
        check_user_id(user_id)
        following = {r["source"]: r["target"] for r in self._read(cypher.CHAIN_LINKS, user_id=user_id)}
        if not following:
            return [r["id"] for r in self._read(cypher.FIRST_EPISODE, user_id=user_id)]
        heads = set(following) - set(following.values())
        path, node = [], min(heads) if heads else None
        while node is not None and len(path) <= len(following):
            path.append(node)
            node = following.get(node)
        return path

    def stats(self, user_id: str | None = None) -> dict[str, int]:
        """Node counts by type, plus ``links`` and ``users``, for one user or the whole store."""
        if user_id is None:
            rows = self._read(cypher.COUNT_BY_TYPE)
            links = self._read(cypher.COUNT_LINKS)[0]["n"]
            users = self._read(cypher.COUNT_USERS)[0]["n"]
        else:
            check_user_id(user_id)
            rows = self._read(cypher.USER_COUNT_BY_TYPE, user_id=user_id)
            links = self._read(cypher.USER_COUNT_LINKS, user_id=user_id)[0]["n"]
            users = self._read(cypher.USER_EXISTS, user_id=user_id)[0]["n"]
        counts = {t.value: 0 for t in NodeType} | {r["type"]: r["n"] for r in rows}
        return counts | {"links": links, "users": users}

    def close(self) -> None:
        """Release the driver's connections."""
        self._driver.close()
