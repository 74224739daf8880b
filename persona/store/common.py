"""Pure helpers both stores share: (de)serialising nodes, checking batches, escaping search text, cascade plans."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from persona.errors import ValidationError
from persona.llm.embedding import STOPWORDS
from persona.models import (
    LINK_ENDPOINTS,
    NODE_CLASSES,
    AnyNode,
    MemoryBatch,
    NodeType,
)

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_QUERY_WORDS = 64
"""Full-text queries keep their first 64 distinct words: a 10,000-character question stays a fast search."""


def serialise_node(node: AnyNode) -> str:
    """A node as JSON without its embedding (vectors live in their own column or property)."""
    return node.model_dump_json(exclude={"embedding"})


def parse_node(node_type: NodeType, body: str | dict) -> AnyNode:
    """The one record-to-model parser: a stored JSON body (or property map) back into its model."""
    cls = NODE_CLASSES[node_type]
    data = json.loads(body) if isinstance(body, str) else body
    return cls.model_validate(data)  # type: ignore[return-value]


def node_sort_time(node: AnyNode) -> datetime:
    """The time a node is ordered and filtered by: when it happened, or when an entity was first stored."""
    return getattr(node, "occurred_at", None) or node.created_at


def fts_words(query: str) -> list[str]:
    """The plain words of a search, lowercased and de-duplicated; punctuation and operators are dropped, and so are
    stopwords (unless nothing else is left): "the" matches every memory and only slows the ranking down."""
    if not isinstance(query, str):
        return []
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query.replace("\x00", " "))))
    content = [w for w in words if w not in STOPWORDS]
    return (content or words)[:MAX_QUERY_WORDS]


def check_embedding(embedding: Sequence[float] | None, dimension: int, *, what: str = "embedding") -> None:
    """Refuse a vector the store cannot search with: the wrong length or a value that is not a finite number.
    Stored, it would break every later vector search of the user."""
    if embedding is None:
        return
    try:
        vector = np.asarray(embedding, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"{what} must be a list of numbers") from None
    if vector.shape != (dimension,):
        raise ValidationError(f"{what} has {vector.size} dimensions, the store uses {dimension}")
    if not np.isfinite(vector).all():
        raise ValidationError(f"{what} holds a value that is not a finite number (NaN or infinity)")


def check_batch(user_id: str, batch: MemoryBatch, *, dimension: int | None = None) -> None:
    """Refuse a batch that would mix users, give NEXT links, join node types that never link, or carry vectors the
    store cannot search (when ``dimension`` is given)."""
    types: dict[str, NodeType] = {}
    for node in batch.nodes():
        if node.user_id != user_id:
            raise ValidationError(f"node {node.id} belongs to {node.user_id!r}, not {user_id!r}")
        if dimension is not None:
            check_embedding(node.embedding, dimension, what=f"the embedding of {node.type.value} {node.id}")
        types[node.id] = node.type
    for link in batch.links:
        if link.type.value == "NEXT":
            raise ValidationError("NEXT links are placed by the store, not given in a batch")
        sources, targets = LINK_ENDPOINTS[link.type]
        source_type, target_type = types.get(link.source_id), types.get(link.target_id)
        if source_type is not None and source_type not in sources:
            raise ValidationError(f"{link.type.value} cannot start at a {source_type.value}")
        if target_type is not None and target_type not in targets:
            raise ValidationError(f"{link.type.value} cannot end at a {target_type.value}")


def cascade_plan(node: AnyNode, dependants: dict[str, NodeType]) -> dict[str, NodeType]:
    """The nodes a delete removes: the node itself and what belongs to it (entities never cascade)."""
    plan = {node.id: node.type}
    plan.update({i: t for i, t in dependants.items() if t is not NodeType.ENTITY})
    return plan
