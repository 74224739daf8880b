"""Moving a store to another embedder: every stored vector is computed again with the embedder in use, in place.

Nothing else changes: the same nodes, links, texts and dates; only the vectors are replaced, then the store records
the new embedder (Neo4j rebuilds its vector index for the new dimension). Until then a store opened with another
embedder (``accept_other_embedder``) answers without vector search and says why (``vector_search_notice``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from persona.errors import ValidationError
from persona.llm.base import Embedder
from persona.models import NodeType, check_user_id, node_text
from persona.store.base import Store

EMBEDDED_TYPES = (NodeType.EPISODE, NodeType.PSYCHE, NodeType.GOAL, NodeType.PASSAGE, NodeType.ENTITY)
PAGE = 256
"""Nodes read, embedded and written per step: one embedding call and one write transaction each."""

ReembedProgress = Callable[[int, int], None]
"""Called after each step with (nodes done, nodes in all)."""


@dataclass(frozen=True)
class ReembedResult:
    """What a re-embed did: the users covered, the vectors replaced, and whether the store now uses the new model."""

    users: list[str]
    replaced: int
    adopted: bool
    remaining_users: list[str]


def vector_search_notice(store: Store) -> str | None:
    """Why vector search is off for this store and how to fix it, or ``None`` when it is on."""
    stale = store.stale_embedder
    if stale is None:
        return None
    return (
        f"Search by meaning is off: this store's vectors were made by {stale.name!r} ({stale.dimension} dimensions), "
        f"but the embedder in use is {store.embedder.name!r} ({store.embedder.dimension}). Re-embed the stored "
        "memories (Settings → Re-embed, or `persona reembed`); until then search uses words only."
    )


def reembed(
    store: Store,
    embedder: Embedder,
    *,
    user_ids: Sequence[str] | None = None,
    on_progress: ReembedProgress | None = None,
) -> ReembedResult:
    """Re-embed the stored memories of ``user_ids`` (default: every user) with ``embedder``, in place.

    The store must have been opened for this embedder. Once every user of the store has new vectors, the store
    records the embedder and vector search is on again; re-embedding some users only leaves it off and says which
    users remain.
    """
    if embedder.info != store.embedder:
        raise ValidationError(
            f"the store was opened for {store.embedder.name!r}, not {embedder.info.name!r}: open it with the "
            "embedder you want to re-embed with"
        )
    everyone = [u.id for u in store.list_users()]
    users = list(everyone) if user_ids is None else [check_user_id(u) for u in user_ids]
    missing = sorted(set(users) - set(everyone))
    if missing:
        raise ValidationError(f"no user {missing[0]!r} in this store")
    total = sum(store.count_nodes(u, t) for u in users for t in EMBEDDED_TYPES)
    done = replaced = 0
    for user in users:
        for node_type in EMBEDDED_TYPES:
            offset = 0
            while nodes := store.list_nodes(user, node_type, limit=PAGE, offset=offset, newest_first=False):
                vectors = embedder.embed([node_text(n) for n in nodes])
                replaced += store.set_embeddings(user, {n.id: v for n, v in zip(nodes, vectors, strict=True)})
                offset += len(nodes)
                done += len(nodes)
                if on_progress is not None:
                    on_progress(done, total)
    remaining = sorted(set(everyone) - set(users)) if user_ids is not None else []
    adopted = not remaining
    if adopted:
        store.adopt_embedder()
    return ReembedResult(users=users, replaced=replaced, adopted=adopted, remaining_users=remaining)
