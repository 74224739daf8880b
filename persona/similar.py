"""“You wrote something similar”: the earlier entries nearest in meaning to a new one (shown after saving)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from persona.llm.base import Embedder
from persona.models import Entry, NodeType, check_user_id, node_text
from persona.store.base import Store

SIMILAR_TYPES = (NodeType.PASSAGE, NodeType.EPISODE)
"""Passages (the writer's sentences) and episodes (their summary) both point back to one entry."""
MIN_SIMILARITY = 0.3
"""Below this cosine the sentence model's neighbours share a topic at most; better to show nothing."""


@dataclass(frozen=True)
class SimilarEntry:
    """An earlier entry close in meaning, with the passage or episode that matched and how close it is (cosine)."""

    entry_id: str
    occurred_at: datetime
    similarity: float
    excerpt: str


def similar_entries(
    store: Store,
    embedder: Embedder,
    user_id: str,
    entry: Entry,
    *,
    limit: int = 3,
    min_similarity: float = MIN_SIMILARITY,
) -> list[SimilarEntry]:
    """The user's entries written before ``entry`` that are nearest to it in meaning, nearest first.

    One vector for the new entry (its start: the model reads 256 tokens), one vector search over passages and
    episodes, then the best match per earlier entry. Later entries and the entry itself are left out.
    """
    check_user_id(user_id)
    if not entry.text.strip():
        return []
    vector = embedder.embed([entry.text[:4_000]])[0]
    hits = [h for h in store.vector_search(user_id, vector, k=limit * 10, types=SIMILAR_TYPES)]
    hits = [h for h in hits if h.score >= min_similarity]
    nodes = {n.id: n for n in store.get_nodes(user_id, [h.id for h in hits])}
    found: dict[str, SimilarEntry] = {}
    for hit in hits:  # nearest first, so the first match of an entry is its best
        node = nodes.get(hit.id)
        entry_id = getattr(node, "entry_id", None)
        when = getattr(node, "occurred_at", None)
        if node is None or entry_id is None or when is None or entry_id == entry.id or entry_id in found:
            continue
        if when >= entry.occurred_at:
            continue
        found[entry_id] = SimilarEntry(entry_id, when, hit.score, node_text(node))
        if len(found) == limit:
            break
    return list(found.values())
