"""The store contract: one narrow interface that both stores (SQLite, Neo4j) fulfil, written once.

``Store``'s public methods check their input and apply the domain rules (``rules.py``) through the primitives a
backend offers (``StoreTransaction``, ``_run_read`` / ``_run_write``, its searches); backends hold no rules.

Every method that reads or writes a person's data takes ``user_id`` first and never touches another user's nodes.
Ids that do not belong to the user behave exactly like ids that do not exist.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from persona.errors import ChangedMeanwhileError, NodeNotFoundError, UserNotFoundError, ValidationError
from persona.models import (
    SEARCHABLE_TYPES,
    AnyNode,
    EmbedderInfo,
    Entity,
    Entry,
    EntryStatus,
    Evolving,
    Link,
    LinkType,
    MemoryBatch,
    NodeType,
    SearchHit,
    Subgraph,
    User,
    check_user_id,
)
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
    export_record,
    fts_words,
    node_sort_time,
    possible_id,
    possible_ids,
    with_extras,
)
from persona.store.rules import (
    as_entry,
    dependants,
    entry_to_reextract,
    get_batched,
    get_one,
    links_batched,
    mark_done,
    mark_for_reextraction,
    merge_batch_entities,
    merged_aliases,
    unmatched,
    walk_chain,
    without_embedding,
)

T = TypeVar("T")
EXPORT_FORMAT = "persona-export/1"
GRAPH_TYPES = (NodeType.EPISODE, NodeType.PSYCHE, NodeType.GOAL, NodeType.ENTITY)
"""What the graph explorer draws by default: entries and passages are searchable, not drawn."""


def _shown(node: AnyNode, allowed: set[NodeType], start: datetime | None, end: datetime | None) -> bool:
    """Whether a node passes the explorer's type and date filters (entities have no date and always pass it)."""
    if node.type not in allowed:
        return False
    when = getattr(node, "occurred_at", None)
    if when is None:
        return True
    return (start is None or when >= start) and (end is None or when < end)


def _unit(vector: Sequence[float]) -> list[float]:
    """The vector scaled to unit length (empty for a zero vector: it is near nothing)."""
    array = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(array))
    return (array / norm).tolist() if norm else []


def _check_owner(user_id: str, nodes: Sequence[AnyNode]) -> None:
    for node in nodes:
        if node.user_id != user_id:
            raise ValidationError(f"node {node.id} belongs to {node.user_id!r}, not {user_id!r}")


def _rewrite_stored(tx: StoreTransaction, user_id: str, nodes: Sequence[AnyNode], *, planned: bool = False) -> None:
    """Store new versions of the user's existing nodes (their search text unchanged); a node that is not stored,
    or is stored as another type, raises ``NodeNotFoundError`` (the transaction then writes nothing). ``planned``:
    the nodes are changes planned from an earlier read (``_planned_from``); one whose stored version changed since
    raises ``ChangedMeanwhileError`` (nothing is written), so an edit made meanwhile is never overwritten."""
    if not nodes:
        return
    stored = {n.id: n for n in get_batched(tx, user_id, [n.id for n in nodes])}
    for node in nodes:
        if node.id not in stored or stored[node.id].type is not node.type:
            raise NodeNotFoundError(node.id, user_id)
    if planned:
        changed = [n.id for n in nodes if not _planned_from(n, stored[n.id])]
        if changed:
            raise ChangedMeanwhileError(changed)
    tx.rewrite(user_id, [with_extras(n, stored[n.id]) for n in nodes], reindex=False)


_PLANNED_FIELDS = ("status", "due", "valid_until")  # what a planned change may set (see ``revisions._before``)


def _planned_from(revised: AnyNode, stored: AnyNode) -> bool:
    """Whether ``stored`` is still the version the planned ``revised`` was made from: ``revised`` keeps the stored
    revisions and adds at least one, the first of them records the changed fields as ``stored`` has them
    (``before``), and every other field is the same (so a text edit, an undo, a confirm or another entry's change
    written meanwhile all count as changed)."""
    kept = [r.model_dump() for r in getattr(stored, "revisions", [])]
    revisions = list(getattr(revised, "revisions", []))
    if len(revisions) <= len(kept) or [r.model_dump() for r in revisions[: len(kept)]] != kept:
        return False
    before = revisions[len(kept)].before
    now = stored.model_dump(mode="json", exclude={"revisions", "embedding"})
    then = revised.model_dump(mode="json", exclude={"revisions", "embedding"})
    for key in _PLANNED_FIELDS:
        if key in now and now.pop(key) != before.get(key):
            return False
        then.pop(key, None)
    return now == then


def _still_changeable(nodes: Sequence[AnyNode], probe: EvolutionProbe) -> list[Evolving]:
    """The current goals (active) and psyche memories among ``nodes`` an entry may change, each once, in order."""
    kept: dict[str, Evolving] = {}
    for node in nodes:
        if not isinstance(node, Evolving) or not node.open_to_change or node.id in kept:
            continue
        if node.entry_id == probe.entry_id or node.occurred_at > probe.occurred_at:
            continue
        kept[node.id] = node
    return list(kept.values())


class StoreTransaction(ABC):
    """The primitives a backend offers inside one transaction (read-only for reads): batched reads and writes of
    nodes and links, and the NEXT-chain placement. They check nothing: ``Store`` checks input and applies the
    domain rules (cascades, alias merges, the chain walk) once, above both backends."""

    # -- users
    @abstractmethod
    def ensure_user(self, user: User) -> User:
        """Create the user unless it exists; return the stored one."""

    @abstractmethod
    def list_users(self) -> list[User]:
        """All users, ordered by id."""

    @abstractmethod
    def lock_user(self, user_id: str) -> bool:
        """Take the user's write lock for the rest of the transaction; ``False`` when the user does not exist."""

    # -- nodes
    @abstractmethod
    def get(self, user_id: str, ids: Sequence[str]) -> list[AnyNode]:
        """The user's nodes among ``ids`` (valid ids only), in any order."""

    @abstractmethod
    def taken(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` (valid ids only) any node of the store holds, whoever owns it."""

    @abstractmethod
    def create(self, nodes: Sequence[AnyNode]) -> None:
        """Store new nodes with their embeddings and search text."""

    @abstractmethod
    def create_entities(self, entities: Sequence[Entity]) -> dict[str, str]:
        """Store new entities; return given id -> stored id (a concurrent writer may have stored the name)."""

    @abstractmethod
    def rewrite(self, user_id: str, nodes: Sequence[AnyNode], *, reindex: bool = True) -> None:
        """Store new versions of existing nodes (body, sort and filter keys, and with ``reindex`` the search text;
        not the embedding). A clash with a uniqueness rule (entity name, entry text) raises ``DuplicateError``."""

    @abstractmethod
    def set_embedding(self, user_id: str, node_id: str, embedding: Sequence[float] | None) -> None:
        """Replace a node's vector (``None`` removes it)."""

    @abstractmethod
    def delete(self, user_id: str, ids: Sequence[str]) -> None:
        """Delete nodes and every link that touches them."""

    @abstractmethod
    def list(self, user_id: str, node_type: NodeType, window: ListWindow) -> list[AnyNode]:
        """One type's nodes in the window's date range and status, ordered by date, created_at, id."""

    @abstractmethod
    def count(self, user_id: str | None, node_type: NodeType | None = None) -> dict[str, int]:
        """Node counts by type (of one type when given), for one user or the whole store."""

    @abstractmethod
    def entry_by_hash(self, user_id: str, content_hash: str) -> Entry | None:
        """The user's entry with this content hash."""

    def entries_by_hash(self, user_id: str, content_hashes: Sequence[str]) -> dict[str, Entry]:
        """The user's entries with these content hashes, by hash (a backend that can ask once overrides this)."""
        found = {h: self.entry_by_hash(user_id, h) for h in dict.fromkeys(content_hashes)}
        return {h: entry for h, entry in found.items() if entry is not None}

    @abstractmethod
    def entities_by_canonical(self, user_id: str, canonicals: Sequence[str]) -> list[Entity]:
        """The user's entities with these canonical names."""

    @abstractmethod
    def entry_members(self, user_id: str, entry_id: str) -> dict[str, NodeType]:
        """The nodes made from an entry (its memories and passages): id -> type."""

    # -- links
    @abstractmethod
    def link(self, user_id: str, links: Sequence[tuple[LinkType, str, str]]) -> None:
        """Create links (existing ones stay single). A link with an end the user does not own raises
        ``ValidationError`` (and the transaction writes nothing)."""

    @abstractmethod
    def unlink(self, user_id: str, links: Sequence[tuple[LinkType, str, str]]) -> None:
        """Remove these links (absent ones are ignored)."""

    @abstractmethod
    def links(self, user_id: str, ids: Sequence[str], kinds: Sequence[str]) -> list[tuple[str, str, str]]:
        """(type, source, target) of the links of these kinds that touch any of ``ids`` (both directions)."""

    def links_among(self, user_id: str, ids: Sequence[str], kinds: Sequence[str]) -> list[tuple[str, str, str]]:
        """(type, source, target) of the links of these kinds with both ends among ``ids``. A backend that can leave
        out the links reaching outside (most of a graph page's neighbours) overrides this."""
        wanted = set(ids)
        return [link for link in links_batched(self, user_id, ids, kinds) if link[1] in wanted and link[2] in wanted]

    @abstractmethod
    def count_links(self, user_id: str | None) -> tuple[int, int]:
        """How many links and users there are, for one user or the whole store."""

    # -- the NEXT chain
    @abstractmethod
    def place_in_chain(self, user_id: str, episode: AnyNode) -> None:
        """Insert a stored episode between its neighbours by (occurred_at, created_at, id)."""

    def add_episodes(self, user_id: str, episodes: Sequence[AnyNode]) -> None:
        """Store new episodes and place each in the chain. One at a time, stored and then placed: a placement looks
        for its neighbours among the stored episodes, so it must never see a sibling that is stored but not yet in
        the chain. A backend with a cheaper way to reach the same chain overrides this."""
        for episode in episodes:
            self.create([episode])
            self.place_in_chain(user_id, episode)

    @abstractmethod
    def unlink_from_chain(self, user_id: str, episode_id: str) -> None:
        """Take an episode out of the chain and join its neighbours."""

    @abstractmethod
    def next_links(self, user_id: str) -> dict[str, str]:
        """The user's NEXT links as source -> target."""

    @abstractmethod
    def first_episode(self, user_id: str) -> str | None:
        """The earliest episode by chain order."""


@dataclass(frozen=True)
class EvolutionProbe:
    """One entry asking which earlier memories it may change: its words (full-text matches) and vectors (nearest by
    meaning). Only memories that happened by ``occurred_at`` qualify, never those of the entry itself."""

    entry_id: str
    occurred_at: datetime
    text: str
    vectors: Sequence[Sequence[float]] = ()


@dataclass(frozen=True)
class CandidateQuery:
    """An ``EvolutionProbe`` checked for a backend: plain words, unit vectors, the entry and its date."""

    entry_id: str
    before: datetime
    words: list[str]
    units: list[list[float]]


EVOLVING_KINDS = [NodeType.GOAL.value, NodeType.PSYCHE.value]
"""The node types an entry can change (goals and psyche memories)."""


@dataclass(frozen=True)
class ListWindow:
    """What ``list_nodes`` asks for: a date range [start, end), a status, a page, an order."""

    start: datetime | None = None
    end: datetime | None = None
    status: str | None = None
    limit: int = 100
    offset: int = 0
    newest_first: bool = True


class Store(ABC):
    """A person's memory graph. Implementations: ``SqliteStore`` (embedded default) and ``Neo4jStore``.

    The public methods are written once, here: they check input, then apply the domain rules through a backend's
    ``StoreTransaction`` primitives (``_run_read`` / ``_run_write``) and its searches."""

    #: a short human description, e.g. the SQLite file or the Neo4j URI (shown as a badge in the app)
    description: str = ""
    embedder: EmbedderInfo
    #: the copy of the store kept before this open migrated it (SQLite; ``None`` when nothing had to change)
    backup_path: Path | None = None
    #: the embedder the stored vectors came from, when it is not ``embedder`` (opened with ``accept_other_embedder``):
    #: vector search is then off until ``persona.reembed`` has re-embedded the store
    stale_embedder: EmbedderInfo | None = None

    # -- what a backend provides ---------------------------------------------------------------------------------
    @abstractmethod
    def _run_read(self, work: Callable[[StoreTransaction], T]) -> T:
        """Run ``work`` in one read transaction."""

    @abstractmethod
    def _run_write(self, work: Callable[[StoreTransaction], T]) -> T:
        """Run ``work`` in one write transaction: all of it is kept, or none (may be retried on a transient error)."""

    @abstractmethod
    def _delete_user(self, user_id: str) -> int:
        """Delete the user and every node it owns (in as many transactions as its size needs)."""

    @abstractmethod
    def _vector_search(self, user_id: str, unit: list[float], k: int, kinds: list[str] | None) -> list[SearchHit]:
        """The ``k`` nearest of the user's nodes (of ``kinds``) to a unit vector by raw cosine, ties by date."""

    @abstractmethod
    def _text_search(self, user_id: str, words: list[str], k: int, kinds: list[str]) -> list[SearchHit]:
        """BM25 over the user's nodes of ``kinds`` matching any of ``words`` (plain words, already cleaned)."""

    @abstractmethod
    def _evolution_candidates(
        self, user_id: str, queries: Sequence[CandidateQuery], k_text: int, k_vector: int
    ) -> list[list[AnyNode]]:
        """For each query: the user's goals and psyche memories that happened by ``before`` and are not of the
        entry, the ``k_text`` best BM25 matches of its words and the ``k_vector`` nearest to each of its vectors (in
        that order). A backend answers all the queries in one round trip where it can."""

    @abstractmethod
    def adopt_embedder(self) -> None:
        """Record ``embedder`` as the embedder of every stored vector (after a re-embed) and turn vector search on;
        Neo4j rebuilds its vector index for the new dimension."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    # -- users -------------------------------------------------------------------------------------------------
    def ensure_user(self, user_id: str, *, display_name: str = "") -> User:
        """Create the user if missing and return it (an existing user keeps its display name)."""
        user = User(id=check_user_id(user_id), display_name=display_name)
        return self._run_write(lambda tx: tx.ensure_user(user))

    def list_users(self) -> list[User]:
        """All users, ordered by id."""
        return self._run_read(lambda tx: tx.list_users())

    def delete_user(self, user_id: str) -> int:
        """Delete the user and every node it owns; return how many nodes were removed."""
        return self._delete_user(check_user_id(user_id))

    # -- writes ------------------------------------------------------------------------------------------------
    def save_entry(self, entry: Entry) -> Entry:
        """Store a new entry (creating its user). If the user already has an entry with the same content hash,
        store nothing and return the existing one."""

        def work(tx: StoreTransaction) -> Entry:
            if not tx.lock_user(entry.user_id):  # a new user: create it, then hold its lock
                tx.ensure_user(User(id=entry.user_id))
                tx.lock_user(entry.user_id)
            existing = tx.entry_by_hash(entry.user_id, entry.content_hash)
            if existing is not None:
                return existing
            tx.create([entry])
            return entry

        return self._run_write(work)

    def save_entries(self, entries: Sequence[Entry]) -> list[Entry]:
        """``save_entry`` for several entries of one user in ONE transaction (an import chunk): for each, the stored
        entry (the one already there with the same content hash, or this one, now stored). The same text twice in
        ``entries`` is stored once."""
        if not entries:
            return []
        user_id = check_user_id(entries[0].user_id)
        if any(entry.user_id != user_id for entry in entries):
            raise ValidationError("entries saved together must belong to one user")

        def work(tx: StoreTransaction) -> list[Entry]:
            if not tx.lock_user(user_id):  # a new user: create it, then hold its lock
                tx.ensure_user(User(id=user_id))
                tx.lock_user(user_id)
            stored = tx.entries_by_hash(user_id, [e.content_hash for e in entries])
            fresh: list[Entry] = []
            for entry in entries:
                if entry.content_hash not in stored:
                    stored[entry.content_hash] = entry
                    fresh.append(entry)
            tx.create(fresh)
            return [stored[e.content_hash] for e in entries]

        return self._run_write(work)

    def set_entry_status(self, user_id: str, entry_id: str, status: EntryStatus, *, error: str | None = None) -> None:
        """Record an entry's processing status (and the reason, when it failed)."""
        status = as_entry_status(status)
        check_user_id(user_id)

        def work(tx: StoreTransaction) -> None:
            tx.lock_user(user_id)
            entry = as_entry(get_one(tx, user_id, entry_id))
            tx.rewrite(user_id, [entry.model_copy(update={"status": status, "error": error})], reindex=False)

        self._run_write(work)

    def write_batch(
        self,
        user_id: str,
        batch: MemoryBatch,
        *,
        done_entry_ids: Sequence[str] = (),
        revised: Sequence[AnyNode] = (),
    ) -> dict[str, str]:
        """Write memories, entities, passages and links in one transaction, and place the episodes in the NEXT chain
        by ``occurred_at`` (ties by ``created_at``). Entities merge by canonical name. The entries named in
        ``done_entry_ids`` are marked done in the same transaction, so memories and status never disagree; if one
        is done already (processed meanwhile elsewhere), nothing is written and ``DuplicateError`` is raised.
        ``revised``: new versions of stored memories the entries change (a goal done, a belief replaced), kept in the
        same transaction as the memories (the batch's links say why); one that is gone raises ``NodeNotFoundError``,
        one changed since it was read for planning raises ``ChangedMeanwhileError`` (plan again), and nothing is
        written. Returns the map from each entity id given in the batch to the id of the node that
        holds it."""
        check_user_id(user_id)
        check_batch(user_id, batch, dimension=self.embedder.dimension)
        _check_owner(user_id, revised)

        def work(tx: StoreTransaction) -> dict[str, str]:
            if not tx.lock_user(user_id):
                raise UserNotFoundError(user_id)
            mark_done(tx, user_id, done_entry_ids)
            entity_ids = merge_batch_entities(tx, user_id, batch.entities)
            tx.create([n for n in batch.nodes() if n.type not in (NodeType.ENTITY, NodeType.EPISODE)])
            tx.add_episodes(user_id, batch.episodes)
            _rewrite_stored(tx, user_id, revised, planned=True)
            tx.link(
                user_id,
                [
                    (lk.type, entity_ids.get(lk.source_id, lk.source_id), entity_ids.get(lk.target_id, lk.target_id))
                    for lk in batch.links
                ],
            )
            return entity_ids

        return self._run_write(work)

    def update_node(self, user_id: str, node_id: str, changes: dict[str, Any]) -> AnyNode:
        """Change fields of one node (validated by its model) and return the new version. Changing ``occurred_at``
        of an episode moves it in the chain."""
        check_changes(changes)
        check_user_id(user_id)

        def work(tx: StoreTransaction) -> AnyNode:
            tx.lock_user(user_id)
            new = changed_node(get_one(tx, user_id, node_id), changes, dimension=self.embedder.dimension)
            tx.rewrite(user_id, [new])
            if "embedding" in changes:
                tx.set_embedding(user_id, node_id, getattr(new, "embedding", None))
            if new.type is NodeType.EPISODE and "occurred_at" in changes:
                tx.unlink_from_chain(user_id, node_id)
                tx.place_in_chain(user_id, new)
            return new

        return without_embedding(self._run_write(work))

    def delete_node(self, user_id: str, node_id: str) -> int:
        """Delete a node and what belongs to it: an entry takes its memories and passages; an episode takes
        everything extracted from its entry, which stays, pending, to be extracted again or deleted; entities left
        with no mentions go too; the chain is re-linked. Returns the count removed."""
        check_user_id(user_id)

        def work(tx: StoreTransaction) -> int:
            tx.lock_user(user_id)
            node = get_one(tx, user_id, node_id)
            plan = cascade_plan(node, dependants(tx, user_id, node))
            emptied = entry_to_reextract(tx, user_id, node)
            if emptied is not None:
                mark_for_reextraction(tx, user_id, emptied)
            for episode_id in (i for i, t in plan.items() if t is NodeType.EPISODE):
                tx.unlink_from_chain(user_id, episode_id)
            mentions = links_batched(tx, user_id, list(plan), [LinkType.MENTIONS.value])
            mentioned = sorted({target for _, source, target in mentions if source in plan} - set(plan))
            tx.delete(user_id, list(plan))
            still = {target for _, _, target in links_batched(tx, user_id, mentioned, [LinkType.MENTIONS.value])}
            orphans = [e for e in mentioned if e not in still]
            tx.delete(user_id, orphans)
            return len(plan) + len(orphans)

        return self._run_write(work)

    def merge_entities(self, user_id: str, keep_id: str, drop_id: str) -> Entity:
        """Move every mention of ``drop_id`` to ``keep_id``, add its names as aliases, and delete it. What the merge
        took in is recorded on the kept entity (``merges``), so ``split_entity`` can undo it exactly; its aliases
        then bring later mentions of the dropped names to the kept entity."""
        check_user_id(user_id)
        if keep_id == drop_id:
            raise ValidationError("cannot merge an entity with itself")

        def work(tx: StoreTransaction) -> Entity:
            tx.lock_user(user_id)
            keep, drop = get_one(tx, user_id, keep_id), get_one(tx, user_id, drop_id)
            if not (isinstance(keep, Entity) and isinstance(drop, Entity)):
                raise ValidationError("only entities can be merged")
            mentions = tx.links(user_id, [drop_id, keep_id], [LinkType.MENTIONS.value])
            sources = [source for _, source, target in mentions if target == drop_id]
            already = {source for _, source, target in mentions if target == keep_id}
            tx.link(user_id, [(LinkType.MENTIONS, source, keep_id) for source in sources])
            record = {
                "entity": drop.model_dump(mode="json"),
                "sources": sorted(sources),
                "moved": sorted(set(sources) - already),
                "aliases": list(keep.aliases),
            }
            merged = keep.model_copy(
                update={"aliases": merged_aliases(keep, drop.name, drop.aliases), "merges": [*keep.merges, record]}
            )
            tx.delete(user_id, [drop_id])
            tx.rewrite(user_id, [merged])
            return merged

        return without_embedding(self._run_write(work))

    def split_entity(
        self, user_id: str, entity_id: str, *, embedding: Sequence[float] | None = None
    ) -> tuple[Entity, Entity]:
        """Undo the latest merge into ``entity_id`` exactly: the dropped entity comes back (same id and fields), its
        mentions return to it, and the kept one loses the aliases and the mentions the merge gave it. Stores keep
        no vector of a deleted node: ``embedding`` is the restored entity's (``persona.actions.split_entity``
        computes it). Returns (kept, restored)."""
        check_user_id(user_id)
        if embedding is not None:
            check_embedding(embedding, self.embedder.dimension, what="the restored entity's embedding")

        def work(tx: StoreTransaction) -> tuple[Entity, Entity]:
            tx.lock_user(user_id)
            keep = get_one(tx, user_id, entity_id)
            if not isinstance(keep, Entity) or not keep.merges:
                raise ValidationError(f"{entity_id} has no merge to split")
            record = keep.merges[-1]
            restored = Entity.model_validate(record["entity"])
            kept = keep.model_copy(update={"aliases": record["aliases"], "merges": keep.merges[:-1]})
            tx.rewrite(user_id, [kept])
            tx.create_entities([restored])
            if embedding is not None:
                tx.set_embedding(user_id, restored.id, list(embedding))
            tx.unlink(user_id, [(LinkType.MENTIONS, source, keep.id) for source in record["moved"]])
            tx.link(user_id, [(LinkType.MENTIONS, source, restored.id) for source in record["sources"]])
            return kept, restored

        kept, restored = self._run_write(work)
        return without_embedding(kept), without_embedding(restored)

    def unmatch_entity(
        self, user_id: str, entity_id: str, match_id: str, *, embedding: Sequence[float] | None = None
    ) -> tuple[Entity, Entity]:
        """Undo an automatic name match exactly: the mention becomes its own entity again (its own name, facts and
        the id it was given; or the entity that has its name by now), the mentions made by the matching entry move
        to it, and the matched entity gets back its aliases, relation and facts as they were before. Only an
        entity's latest match can be undone, and not under a later merge. ``embedding``: the restored entity's
        vector. Returns (matched, restored)."""
        check_user_id(user_id)
        if embedding is not None:
            check_embedding(embedding, self.embedder.dimension, what="the restored entity's embedding")

        def work(tx: StoreTransaction) -> tuple[Entity, Entity]:
            tx.lock_user(user_id)
            kept, restored, record = unmatched(tx, user_id, entity_id, match_id)
            tx.rewrite(user_id, [kept])
            if tx.get(user_id, [restored.id]):
                tx.rewrite(user_id, [restored])
            else:
                tx.create_entities([restored])
                if embedding is not None:
                    tx.set_embedding(user_id, restored.id, list(embedding))
            present = {n.id for n in get_batched(tx, user_id, record.get("sources", []))}
            tx.unlink(user_id, [(LinkType.MENTIONS, source, kept.id) for source in record.get("moved", [])])
            tx.link(user_id, [(LinkType.MENTIONS, s, restored.id) for s in record.get("sources", []) if s in present])
            return kept, restored

        kept, restored = self._run_write(work)
        return without_embedding(kept), without_embedding(restored)

    def revise(
        self,
        user_id: str,
        nodes: Sequence[AnyNode],
        *,
        add_links: Sequence[Link] = (),
        remove_links: Sequence[Link] = (),
    ) -> None:
        """Store new versions of existing memories and add / remove links, in one transaction: a change of mind
        (a goal done, a belief replaced) or its undo. Nothing is deleted but the links named; every node must be
        the user's and exist (``NodeNotFoundError`` otherwise, and nothing is written)."""
        check_user_id(user_id)
        if any(link.type is LinkType.NEXT for link in [*add_links, *remove_links]):
            raise ValidationError("NEXT links are placed by the store")
        _check_owner(user_id, nodes)

        def work(tx: StoreTransaction) -> None:
            if not tx.lock_user(user_id):
                raise UserNotFoundError(user_id)
            _rewrite_stored(tx, user_id, nodes)
            tx.unlink(user_id, [(lk.type, lk.source_id, lk.target_id) for lk in remove_links])
            tx.link(user_id, [(lk.type, lk.source_id, lk.target_id) for lk in add_links])

        self._run_write(work)

    # -- reads -------------------------------------------------------------------------------------------------
    def get_node(self, user_id: str, node_id: str) -> AnyNode:
        """One node of this user, or ``NodeNotFoundError``."""
        check_user_id(user_id)
        return self._run_read(lambda tx: get_one(tx, user_id, node_id))

    def get_nodes(self, user_id: str, node_ids: Sequence[str]) -> list[AnyNode]:
        """The user's nodes among ``node_ids``, in the order given; unknown ids are skipped."""
        check_user_id(user_id)
        ids = possible_ids(node_ids)
        if not ids:
            return []
        found = {node.id: node for node in self._run_read(lambda tx: get_batched(tx, user_id, ids))}
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
        """Nodes of one type, filtered by ``occurred_at`` in [start, end) (entities by ``created_at``) and by
        ``status`` (entries and goals), ordered by date."""
        check_user_id(user_id)
        kind = as_node_type(node_type)
        window = ListWindow(start, end, as_status(status), max(0, int(limit)), max(0, int(offset)), newest_first)
        return self._run_read(lambda tx: tx.list(user_id, kind, window))

    def list_many(
        self,
        user_id: str,
        node_types: Iterable[NodeType],
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
        newest_first: bool = True,
    ) -> list[AnyNode]:
        """One page of nodes of several types merged in date order (then created_at, id), as ``list_nodes`` orders
        one type. Each type's first ``offset + limit`` nodes suffice to fill the page."""
        kinds = list(dict.fromkeys(as_node_types(node_types)))
        limit, offset = max(0, int(limit)), max(0, int(offset))
        if len(kinds) == 1:
            return self.list_nodes(
                user_id, kinds[0], start=start, end=end, status=status, limit=limit, offset=offset,
                newest_first=newest_first,
            )  # fmt: skip
        check_user_id(user_id)
        window = ListWindow(start, end, as_status(status), offset + limit, 0, newest_first)
        # One read transaction for every type (one round trip each, not a transaction each).
        merged = self._run_read(lambda tx: [node for kind in kinds for node in tx.list(user_id, kind, window)])
        merged.sort(key=lambda n: (node_sort_time(n), n.created_at, n.id), reverse=newest_first)
        return merged[offset : offset + limit]

    def count_nodes(self, user_id: str, node_type: NodeType) -> int:
        """How many nodes of this type the user has."""
        check_user_id(user_id)
        kind = as_node_type(node_type)
        return self._run_read(lambda tx: tx.count(user_id, kind)).get(kind.value, 0)

    def ids_in_use(self, node_ids: Sequence[str]) -> set[str]:
        """Which of ``node_ids`` any node of the store holds, whoever owns it (ids are unique store-wide). Only for
        choosing ids that cannot collide (a restore): it answers with ids the caller gave, never with data."""
        ids = possible_ids(node_ids)
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            found |= self._run_read(lambda tx, part=part: tx.taken(part))
        return found

    def find_entry_by_hash(self, user_id: str, content_hash: str) -> Entry | None:
        """The user's entry with this content hash, if any."""
        check_user_id(user_id)
        if not possible_id(content_hash):  # a sha256 is 64 hex digits: anything else matches no entry
            return None
        return self._run_read(lambda tx: tx.entry_by_hash(user_id, content_hash))

    def neighbours(
        self, user_id: str, node_ids: Sequence[str], *, link_types: Iterable[LinkType] | None = None
    ) -> list[Link]:
        """Links (both directions) that touch any of ``node_ids``, optionally only of some types, ordered by
        (type, source, target)."""
        check_user_id(user_id)
        kinds = [t.value for t in (as_link_types(link_types) if link_types is not None else LinkType)]
        ids = possible_ids(node_ids)
        if not ids or not kinds:
            return []
        found = set(self._run_read(lambda tx: links_batched(tx, user_id, ids, kinds)))
        return [Link(type=LinkType(kind), source_id=s, target_id=t) for kind, s, t in sorted(found)]

    def set_embeddings(self, user_id: str, vectors: Mapping[str, Sequence[float]]) -> int:
        """Replace the embeddings of the user's nodes named in ``vectors``, in one transaction (nothing else about
        them changes); return how many. Vectors of ``embedder.dimension`` floats; ids of other users are refused."""
        check_user_id(user_id)
        for vector in vectors.values():
            check_embedding(vector, self.embedder.dimension, what="an embedding")

        def work(tx: StoreTransaction) -> int:
            found = {n.id for n in tx.get(user_id, list(vectors))}
            missing = [node_id for node_id in vectors if node_id not in found]
            if missing:
                raise NodeNotFoundError(missing[0], user_id)
            for node_id, vector in vectors.items():
                tx.set_embedding(user_id, node_id, vector)
            return len(vectors)

        return self._run_write(work)

    def vector_search(
        self, user_id: str, embedding: Sequence[float], *, k: int = 20, types: Iterable[NodeType] | None = None
    ) -> list[SearchHit]:
        """The ``k`` nodes nearest to ``embedding`` by cosine similarity, nearest first (ties by date)."""
        check_user_id(user_id)
        check_embedding(embedding, self.embedder.dimension, what="the query vector")
        vector = np.asarray(embedding, dtype=np.float64)
        norm = float(np.linalg.norm(vector))
        if not norm or k <= 0 or self.stale_embedder is not None:  # stored vectors from another model: meaningless
            return []
        kinds = [t.value for t in as_node_types(types)] if types is not None else None
        return self._vector_search(user_id, (vector / norm).tolist(), int(k), kinds)

    def evolution_candidates(
        self, user_id: str, probes: Sequence[EvolutionProbe], *, k_text: int = 40, k_vector: int = 5
    ) -> list[list[Evolving]]:
        """For each probe (one entry), the user's current goals (active ones) and psyche memories it may change: the
        best full-text matches of its text and the nearest by meaning to each of its vectors, among the memories
        that happened by the entry's date and are not its own. One read for all the probes (an import chunk)."""
        check_user_id(user_id)
        queries = []
        for probe in probes:
            for vector in probe.vectors:
                check_embedding(vector, self.embedder.dimension, what="a probe vector")
            # Stored vectors of another model are meaningless to compare with (vector search is off until a re-embed).
            searchable = self.stale_embedder is None and k_vector > 0
            units = [u for u in map(_unit, probe.vectors) if u] if searchable else []
            words = fts_words(probe.text) if k_text > 0 else []
            queries.append(CandidateQuery(probe.entry_id, probe.occurred_at, words, units))
        if not queries:
            return []
        found = self._evolution_candidates(user_id, queries, max(0, int(k_text)), max(0, int(k_vector)))
        return [_still_changeable(nodes, probe) for nodes, probe in zip(found, probes, strict=True)]

    def text_search(
        self, user_id: str, query: str, *, k: int = 20, types: Iterable[NodeType] | None = None
    ) -> list[SearchHit]:
        """Full-text (BM25) search. Any string is accepted as plain words; operators in it are not interpreted."""
        check_user_id(user_id)
        words = fts_words(query)
        if not words or k <= 0:
            return []
        kinds = [t.value for t in (as_node_types(types) if types is not None else SEARCHABLE_TYPES)]
        return self._text_search(user_id, words, int(k), kinds)

    def chain(self, user_id: str) -> list[str]:
        """The episode ids of the user's NEXT chain, walked from its head."""
        check_user_id(user_id)

        def work(tx: StoreTransaction) -> list[str]:
            following = tx.next_links(user_id)
            if not following:
                first = tx.first_episode(user_id)
                return [first] if first else []
            return walk_chain(following)

        return self._run_read(work)

    def stats(self, user_id: str | None = None) -> dict[str, int]:
        """Node counts by type, plus ``links`` and ``users``, for one user or the whole store."""
        if user_id is not None:
            check_user_id(user_id)

        def work(tx: StoreTransaction) -> dict[str, int]:
            links, users = tx.count_links(user_id)
            return {t.value: 0 for t in NodeType} | tx.count(user_id) | {"links": links, "users": users}

        return self._run_read(work)

    # -- shared behaviour --------------------------------------------------------------------------------------
    def subgraph(
        self,
        user_id: str,
        *,
        center_ids: Sequence[str] | None = None,
        depth: int = 1,
        types: Iterable[NodeType] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 300,
    ) -> Subgraph:
        """Nodes (at most ``limit``) and the links among them: around ``center_ids`` up to ``depth`` hops, or the
        user's most recent memories with the entities they mention when no centre is given. Entries and passages
        are left out unless ``types`` asks for them."""
        allowed = set(as_node_types(types)) if types is not None else set(GRAPH_TYPES)
        if center_ids:
            candidates = self._around(user_id, center_ids, depth, allowed, start, end)
            total = len(candidates)
        else:
            candidates, total = self._recent_with_entities(user_id, allowed, start, end, limit)
        chosen = candidates[: max(0, limit)]
        ids = {n.id for n in chosen}
        kinds, drawn = [t.value for t in LinkType], sorted(ids)
        among = set(self._run_read(lambda tx: tx.links_among(user_id, drawn, kinds))) if drawn else set()
        links = [Link(type=LinkType(kind), source_id=s, target_id=t) for kind, s, t in sorted(among)]
        return Subgraph(nodes=chosen, links=links, truncated=total > len(chosen), total_nodes=total)

    def _around(
        self,
        user_id: str,
        center_ids: Sequence[str],
        depth: int,
        allowed: set[NodeType],
        start: datetime | None,
        end: datetime | None,
    ) -> list[AnyNode]:
        """Breadth-first from the centres; nearer nodes first, so a cap keeps the closest ones."""
        order = [n.id for n in self.get_nodes(user_id, center_ids)]
        seen, frontier = set(order), list(order)
        for _ in range(max(0, depth)):
            reached = []
            for link in self.neighbours(user_id, frontier):
                for other in (link.source_id, link.target_id):
                    if other not in seen:
                        seen.add(other)
                        reached.append(other)
            nodes = [n for n in self.get_nodes(user_id, reached) if _shown(n, allowed, start, end)]
            frontier = [n.id for n in nodes]
            order.extend(frontier)
        return self.get_nodes(user_id, order)

    def _recent_with_entities(
        self, user_id: str, allowed: set[NodeType], start: datetime | None, end: datetime | None, limit: int
    ) -> tuple[list[AnyNode], int]:
        dated = [t for t in NodeType if t in allowed and t is not NodeType.ENTITY]
        memories = self.list_many(user_id, dated, start=start, end=end, limit=limit) if dated else []
        entities: list[AnyNode] = []
        if NodeType.ENTITY in allowed:
            mentioned = self.neighbours(user_id, [m.id for m in memories], link_types=[LinkType.MENTIONS])
            entity_ids = list(dict.fromkeys(lk.target_id for lk in mentioned))
            entities = self.get_nodes(user_id, entity_ids)
        # Keep memories and their entities together under the cap: fill alternately by recency.
        room_for_entities = min(len(entities), max(limit // 3, limit - len(memories)))
        chosen = memories[: limit - room_for_entities] + entities[:room_for_entities]
        if start is None and end is None:
            counts = self._run_read(lambda tx: tx.count(user_id))  # every type in one query
            total = sum(counts.get(t.value, 0) for t in allowed if t in dated or t is NodeType.ENTITY)
        else:
            total = len(memories) + len(entities)
        return chosen, max(total, len(chosen))

    def export_user(self, user_id: str) -> dict[str, Any]:
        """Everything the user owns as JSON-ready data (``persona.transfer.restore_export`` reads it back)."""
        nodes: list[dict[str, Any]] = []
        for node_type in NodeType:
            for node in self.list_nodes(user_id, node_type, limit=10**9, newest_first=False):
                nodes.append(export_record(node))
        ids = [n["id"] for n in nodes]
        links = {(lk.type, lk.source_id, lk.target_id): lk for lk in self.neighbours(user_id, ids)}
        return {
            "format": EXPORT_FORMAT,
            "user_id": user_id,
            "embedder": self.embedder.model_dump(),
            "nodes": nodes,
            "links": [lk.model_dump(mode="json") for _, lk in sorted(links.items())],
        }

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
