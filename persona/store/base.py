"""The store contract: one narrow interface that both stores (SQLite, Neo4j) fulfil.

Every method that reads or writes a person's data takes ``user_id`` first and never touches another user's nodes.
Ids that do not belong to the user behave exactly like ids that do not exist.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from persona.models import (
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
    Subgraph,
    User,
)
from persona.store.common import as_node_types, export_record

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


class Store(ABC):
    """A person's memory graph. Implementations: ``SqliteStore`` (embedded default) and ``Neo4jStore``."""

    #: a short human description, e.g. the SQLite file or the Neo4j URI (shown as a badge in the app)
    description: str = ""
    embedder: EmbedderInfo
    #: the copy of the store kept before this open migrated it (SQLite; ``None`` when nothing had to change)
    backup_path: Path | None = None

    # -- users -------------------------------------------------------------------------------------------------
    @abstractmethod
    def ensure_user(self, user_id: str, *, display_name: str = "") -> User:
        """Create the user if missing and return it."""

    @abstractmethod
    def list_users(self) -> list[User]:
        """All users, ordered by id."""

    @abstractmethod
    def delete_user(self, user_id: str) -> int:
        """Delete the user and every node it owns; return how many nodes were removed."""

    # -- writes ------------------------------------------------------------------------------------------------
    @abstractmethod
    def save_entry(self, entry: Entry) -> Entry:
        """Store a new entry (creating its user). If the user already has an entry with the same content hash,
        store nothing and return the existing one."""

    @abstractmethod
    def set_entry_status(self, user_id: str, entry_id: str, status: EntryStatus, *, error: str | None = None) -> None:
        """Record an entry's processing status (and the reason, when it failed)."""

    @abstractmethod
    def write_batch(self, user_id: str, batch: MemoryBatch, *, done_entry_ids: Sequence[str] = ()) -> dict[str, str]:
        """Write memories, entities, passages and links in one transaction, and place the episodes in the NEXT chain
        by ``occurred_at`` (ties by ``created_at``). Entities merge by canonical name. The entries named in
        ``done_entry_ids`` are marked done in the same transaction, so memories and status never disagree; if one
        is done already (processed meanwhile elsewhere), nothing is written and ``DuplicateError`` is raised. Returns
        the map from each entity id given in the batch to the id of the node that holds it."""

    @abstractmethod
    def update_node(self, user_id: str, node_id: str, changes: dict[str, Any]) -> AnyNode:
        """Change fields of one node (validated by its model) and return the new version. Changing ``occurred_at``
        of an episode moves it in the chain."""

    @abstractmethod
    def delete_node(self, user_id: str, node_id: str) -> int:
        """Delete a node and what belongs to it: an entry takes its memories and passages, an episode the memories
        derived from it; entities left with no mentions go too; the chain is re-linked. Returns the count removed."""

    @abstractmethod
    def merge_entities(self, user_id: str, keep_id: str, drop_id: str) -> Entity:
        """Move every mention of ``drop_id`` to ``keep_id``, add its names as aliases, and delete it."""

    # -- reads -------------------------------------------------------------------------------------------------
    @abstractmethod
    def get_node(self, user_id: str, node_id: str) -> AnyNode:
        """One node of this user, or ``NodeNotFoundError``."""

    @abstractmethod
    def get_nodes(self, user_id: str, node_ids: Sequence[str]) -> list[AnyNode]:
        """The user's nodes among ``node_ids``, in the order given; unknown ids are skipped."""

    @abstractmethod
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

    @abstractmethod
    def count_nodes(self, user_id: str, node_type: NodeType) -> int:
        """How many nodes of this type the user has."""

    @abstractmethod
    def find_entry_by_hash(self, user_id: str, content_hash: str) -> Entry | None:
        """The user's entry with this content hash, if any."""

    @abstractmethod
    def neighbours(
        self, user_id: str, node_ids: Sequence[str], *, link_types: Iterable[LinkType] | None = None
    ) -> list[Link]:
        """Links (both directions) that touch any of ``node_ids``, optionally only of some types."""

    @abstractmethod
    def vector_search(
        self, user_id: str, embedding: Sequence[float], *, k: int = 20, types: Iterable[NodeType] | None = None
    ) -> list[SearchHit]:
        """The ``k`` nodes nearest to ``embedding`` by cosine similarity, nearest first."""

    @abstractmethod
    def text_search(
        self, user_id: str, query: str, *, k: int = 20, types: Iterable[NodeType] | None = None
    ) -> list[SearchHit]:
        """Full-text (BM25) search. Any string is accepted as plain words; operators in it are not interpreted."""

    @abstractmethod
    def chain(self, user_id: str) -> list[str]:
        """The episode ids of the user's NEXT chain, walked from its head."""

    @abstractmethod
    def stats(self, user_id: str | None = None) -> dict[str, int]:
        """Node counts by type (and links), for one user or the whole store."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

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
        links = [lk for lk in self.neighbours(user_id, list(ids)) if lk.source_id in ids and lk.target_id in ids]
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
        memories: list[AnyNode] = []
        for node_type in dated:
            memories.extend(self.list_nodes(user_id, node_type, start=start, end=end, limit=limit + 1))
        memories.sort(key=lambda n: (n.occurred_at, n.created_at), reverse=True)  # type: ignore[union-attr]
        memories = memories[:limit]
        entities: list[AnyNode] = []
        if NodeType.ENTITY in allowed:
            mentioned = self.neighbours(user_id, [m.id for m in memories], link_types=[LinkType.MENTIONS])
            entity_ids = list(dict.fromkeys(lk.target_id for lk in mentioned))
            entities = self.get_nodes(user_id, entity_ids)
        # Keep memories and their entities together under the cap: fill alternately by recency.
        room_for_entities = min(len(entities), max(limit // 3, limit - len(memories)))
        chosen = memories[: limit - room_for_entities] + entities[:room_for_entities]
        if start is None and end is None:
            total = sum(self.count_nodes(user_id, t) for t in allowed if t in dated or t is NodeType.ENTITY)
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
