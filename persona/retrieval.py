"""Hybrid retrieval: vector and full-text seeds fused by reciprocal-rank fusion, one hop of expansion along the
graph, recency and importance boosts, filters, and a token budget. Each result says why it was retrieved.

The weights and k's are data (``RetrievalPreset``), not constants in the code. The functions are small and pure
where they can be (``rrf``, ``recency``, ``apply_budget``); ``retrieve`` wires them to a store.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from persona.errors import ValidationError
from persona.llm.base import Embedder
from persona.models import (
    AnyNode,
    Entity,
    LinkType,
    NodeType,
    SearchHit,
    check_user_id,
    node_text,
    utc_now,
)
from persona.store.base import Store
from persona.store.common import as_node_types

SIGNALS = ("vector", "text", "graph", "recency", "importance")


@dataclass(frozen=True)
class RetrievalPreset:
    """How retrieval weighs its signals. Presets are data: tune them, compare them, never bury them in code."""

    name: str = "default"
    vector_k: int = 20
    text_k: int = 20
    # Tuned on the LoCoMo dev file with the offline sentence model (bench/tune_retrieval.py): a small k lets the top
    # few of each ranking count most, and meaning outweighs shared words (0.3 and k=60 suited the hashing embedder).
    rrf_k: int = 5
    vector_weight: float = 1.5
    text_weight: float = 1.0
    expand_from: int = 8
    expand_decay: float = 0.5
    expand_per_seed: int = 12
    expand_links: tuple[LinkType, ...] = (LinkType.MENTIONS, LinkType.DERIVED_FROM, LinkType.NEXT)
    recency_weight: float = 0.1
    recency_half_life_days: float = 180.0
    importance_weight: float = 0.1
    type_weights: dict[NodeType, float] = field(
        default_factory=lambda: {
            # Passages hold the exact words; typed memories summarise them and entities only name things.
            NodeType.PASSAGE: 1.0,
            NodeType.EPISODE: 0.1,
            NodeType.PSYCHE: 0.1,
            NodeType.GOAL: 0.1,
            NodeType.ENTITY: 0.05,
        }
    )
    filter_overfetch: int = 5


HASHING_EMBEDDER_PREFIX = "persona-hash-"

PRESETS: dict[str, RetrievalPreset] = {
    "default": RetrievalPreset(),
    "recent": RetrievalPreset(name="recent", recency_weight=0.5, recency_half_life_days=30.0),
    "memories-first": RetrievalPreset(
        name="memories-first",
        type_weights={t: 1.0 for t in (NodeType.PASSAGE, NodeType.EPISODE, NodeType.PSYCHE, NodeType.GOAL)}
        | {NodeType.ENTITY: 0.6},
    ),
    # The weights that suited the hashing embedder (PERSONA_EMBEDDER=hash), whose vector ranking is weaker than BM25's.
    "hashing": RetrievalPreset(
        name="hashing",
        rrf_k=60,
        vector_weight=0.3,
        type_weights={NodeType.PASSAGE: 1.0, NodeType.ENTITY: 0.05}
        | {t: 0.3 for t in (NodeType.EPISODE, NodeType.PSYCHE, NodeType.GOAL)},
    ),
    "text-only": RetrievalPreset(name="text-only", vector_weight=0.0, expand_from=0),
    "vector-only": RetrievalPreset(name="vector-only", vector_weight=1.0, text_weight=0.0, expand_from=0),
}


@dataclass
class RetrievedMemory:
    """One retrieved node with its score and each signal's share of that score (the shares sum to 1)."""

    node: AnyNode
    score: float
    shares: dict[str, float]
    reason: str

    @property
    def id(self) -> str:
        return self.node.id

    @property
    def type(self) -> NodeType:
        return self.node.type


@dataclass
class RetrievalQuery:
    """What to retrieve: a question and optional filters."""

    text: str
    types: tuple[NodeType, ...] | None = None
    start: datetime | None = None
    end: datetime | None = None
    as_of: datetime | None = None
    limit: int = 10
    token_budget: int | None = None


def rrf(
    rankings: Sequence[Sequence[str]], *, k: int = 60, weights: Sequence[float] | None = None
) -> dict[str, list[float]]:
    """Reciprocal-rank fusion: for each id, its contribution from each ranking, ``weight / (k + rank)``."""
    weights = weights or [1.0] * len(rankings)
    fused: dict[str, list[float]] = {}
    for index, (ranking, weight) in enumerate(zip(rankings, weights, strict=True)):
        for rank, node_id in enumerate(ranking, start=1):
            parts = fused.setdefault(node_id, [0.0] * len(rankings))
            parts[index] += weight / (k + rank)
    return fused


def recency(occurred_at: datetime | None, now: datetime, *, half_life_days: float) -> float:
    """1.0 for now, 0.5 after one half-life, towards 0 for the distant past (and 0 for undated nodes)."""
    if occurred_at is None or half_life_days <= 0:
        return 0.0
    age_days = max(0.0, (now - occurred_at).total_seconds() / 86_400)
    return math.pow(0.5, age_days / half_life_days)


def estimate_tokens(text: str) -> int:
    """A model-free token estimate: about 4 tokens for every 3 words."""
    return math.ceil(len(text.split()) * 4 / 3)


def apply_budget(items: Sequence[RetrievedMemory], budget: int | None) -> list[RetrievedMemory]:
    """Keep items in rank order until the next one would pass ``budget`` tokens."""
    if budget is None:
        return list(items)
    kept, used = [], 0
    for item in items:
        cost = estimate_tokens(node_text(item.node))
        if used + cost > budget:
            break
        kept.append(item)
        used += cost
    return kept


def _passes(node: AnyNode, query: RetrievalQuery) -> bool:
    """Type, date and "as of" filters. Entities have no date: with a date filter they only serve as bridges."""
    if query.types is not None and node.type not in query.types:
        return False
    if node.type is NodeType.ENTRY:
        return False
    when = getattr(node, "occurred_at", None)
    dated = query.start is not None or query.end is not None or query.as_of is not None
    if when is None:
        return not dated
    if query.start is not None and when < query.start:
        return False
    if query.end is not None and when >= query.end:
        return False
    return query.as_of is None or when <= query.as_of


SEED_POOLS: dict[str, tuple[NodeType, ...]] = {
    "memories": (NodeType.EPISODE, NodeType.PSYCHE, NodeType.GOAL, NodeType.ENTITY),
    "passages": (NodeType.PASSAGE,),
}
"""Typed memories and source passages are searched as separate pools, so neither crowds the other out of the
seeds: a long summary would otherwise outrank the one sentence that holds the detail."""


def _seeds(
    store: Store, embedder: Embedder, user_id: str, query: RetrievalQuery, preset: RetrievalPreset
) -> list[tuple[str, list[str]]]:
    """Rankings of ids, each tagged with its signal ("vector" or "text"): one per signal and pool."""
    filtered = query.start is not None or query.end is not None or query.as_of is not None
    factor = preset.filter_overfetch if filtered else 1
    # A caller asking for more results than the preset's k gets deeper searches, not a pool that runs dry.
    vector_k, text_k = max(preset.vector_k, query.limit) * factor, max(preset.text_k, query.limit) * factor
    vector = None
    if preset.vector_weight > 0 and query.text.strip():
        vector = embedder.embed([query.text[:20_000]])[0]
        vector = vector if any(vector) else None
    pools = {name: [t for t in pool if query.types is None or t in query.types] for name, pool in SEED_POOLS.items()}
    pools = {name: types for name, types in pools.items() if types}
    every_type = [t for types in pools.values() for t in types]
    searches: list[tuple[str, int, Callable[[int], list[SearchHit]]]] = []
    if vector is not None:
        searches.append(("vector", vector_k, lambda k: store.vector_search(user_id, vector, k=k, types=every_type)))
    if preset.text_weight > 0:
        searches.append(("text", text_k, lambda k: store.text_search(user_id, query.text, k=k, types=every_type)))
    rankings: list[tuple[str, list[str]]] = []
    for signal, k, search in searches:
        # One search per signal over every pool (one round trip to the store), split into a ranking per pool.
        hits = search(k * len(pools))
        for types in pools.values():
            rankings.append((signal, [h.id for h in hits if h.type in types][:k]))
    return rankings


def _expand(
    store: Store, user_id: str, seeds: list[str], base: dict[str, float], preset: RetrievalPreset
) -> dict[str, tuple[float, str]]:
    """One hop from the best seeds: each neighbour gets the decayed score of its best seed, and which seed it was."""
    if preset.expand_from <= 0 or not seeds:
        return {}
    sources = set(seeds[: preset.expand_from])
    reached: dict[str, tuple[float, str]] = {}
    taken: dict[str, int] = {}
    for link in store.neighbours(user_id, list(sources), link_types=preset.expand_links):
        for here, there in ((link.source_id, link.target_id), (link.target_id, link.source_id)):
            # A hub (an entity mentioned a thousand times) lends its score to a few neighbours, not to all.
            if here in sources and taken.get(here, 0) < preset.expand_per_seed:
                taken[here] = taken.get(here, 0) + 1
                score = base[here] * preset.expand_decay
                if score > reached.get(there, (0.0, ""))[0]:
                    reached[there] = (score, here)
    return reached


def retrieve(
    store: Store,
    embedder: Embedder,
    user_id: str,
    query: RetrievalQuery | str,
    *,
    preset: RetrievalPreset | str = "default",
    now: datetime | None = None,
) -> list[RetrievedMemory]:
    """The user's memories that best answer ``query``, best first, each with its score and signal shares.

    ``"default"`` is the default for the embedder: the hashing embedder keeps the ``hashing`` weights tuned for it."""
    check_user_id(user_id)
    query = RetrievalQuery(text=query) if isinstance(query, str) else query
    if preset == "default" and embedder.info.name.startswith(HASHING_EMBEDDER_PREFIX):
        preset = "hashing"
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValidationError(f"unknown retrieval preset {preset[:80]!r}: use one of {', '.join(PRESETS)}")
        preset = PRESETS[preset]
    if query.types is not None:  # a misspelt type is a mistake to report, not a silent "nothing found"
        query = replace(query, types=tuple(as_node_types(query.types)))
    now = query.as_of or now or utc_now()
    if not isinstance(query.text, str):
        return []
    rankings = _seeds(store, embedder, user_id, query, preset)
    weights = {"vector": preset.vector_weight, "text": preset.text_weight}
    parts = rrf([r for _, r in rankings], k=preset.rrf_k, weights=[weights[signal] for signal, _ in rankings])
    fused = {
        node_id: [sum(v for (signal, _), v in zip(rankings, values, strict=True) if signal == name) for name in weights]
        for node_id, values in parts.items()
    }
    base = {node_id: sum(values) for node_id, values in fused.items()}
    ranked_seeds = sorted(base, key=lambda i: (-base[i], i))
    expanded = _expand(store, user_id, ranked_seeds, base, preset)
    nodes = {n.id: n for n in store.get_nodes(user_id, list(dict.fromkeys([*ranked_seeds, *expanded])))}
    results = []
    for node_id, node in nodes.items():
        if not _passes(node, query):
            continue
        parts = fused.get(node_id, [0.0, 0.0])
        graph = expanded.get(node_id, (0.0, ""))
        results.append(_score(node, parts[0], parts[1], graph, nodes, now, preset))
    results.sort(key=_rank_key)
    return apply_budget(results[: max(0, query.limit)], query.token_budget)


def _rank_key(result: RetrievedMemory) -> tuple[float, float, float, str]:
    """Best score first; equal scores by when the node happened, then was stored (the same on every store)."""
    node = result.node
    when = getattr(node, "occurred_at", None) or node.created_at
    return (-result.score, when.timestamp(), node.created_at.timestamp(), node.id)


def _score(
    node: AnyNode,
    vector: float,
    text: float,
    graph: tuple[float, str],
    nodes: dict[str, AnyNode],
    now: datetime,
    preset: RetrievalPreset,
) -> RetrievedMemory:
    """Combine the signals: (vector + text + graph) x type weight x (1 + recency boost + importance boost)."""
    weight = preset.type_weights.get(node.type, 1.0)
    base = (vector + text + graph[0]) * weight
    boost_recency = preset.recency_weight * recency(
        getattr(node, "occurred_at", None), now, half_life_days=preset.recency_half_life_days
    )
    importance = getattr(node, "importance", None)
    if importance is None:
        importance = getattr(node, "confidence", 0.5)
    boost_importance = preset.importance_weight * importance
    score = base * (1 + boost_recency + boost_importance)
    contributions = {
        "vector": vector * weight,
        "text": text * weight,
        "graph": graph[0] * weight,
        "recency": base * boost_recency,
        "importance": base * boost_importance,
    }
    shares = {k: (v / score if score else 0.0) for k, v in contributions.items()}
    return RetrievedMemory(node=node, score=score, shares=shares, reason=_reason(shares, graph[1], nodes))


def _reason(shares: dict[str, float], via: str, nodes: dict[str, AnyNode]) -> str:
    """A short sentence for the UI: which signals found it."""
    parts = []
    if shares["vector"] > 0 and shares["text"] == 0:
        parts.append("matched by meaning (no words in common)")
    elif shares["vector"] > 0:
        parts.append("similar in meaning")
    if shares["text"] > 0:
        parts.append("shares words with the question")
    if shares["graph"] > 0 and via in nodes:
        source = nodes[via]
        label = source.name if isinstance(source, Entity) else source.type.value.lower()
        parts.append(f"linked to {label!s}")
    return "; ".join(parts) or "boosted by recency and importance"
