"""Tune the retrieval preset on the DEVELOPMENT LoCoMo file only: ingest each conversation once, then score a grid of
presets by answer recall at a context budget (the evaluation's headline), overall and per category.

Usage: .venv/bin/python bench/tune_retrieval.py /path/to/locomo-dev.json [--budget 1000] [--top 15]
Never point it at held-out data: a preset tuned there says nothing about conversations it has not seen.
"""

from __future__ import annotations

import argparse
import itertools
import re
from collections.abc import Sequence
from dataclasses import replace
from functools import cache

from persona.evaluation import (
    HEADLINE_CATEGORIES,
    Tally,
    _ingest_conversation,
    _persona_ranking,
    _score_question,
    load_conversations,
)
from persona.llm.base import Embedder
from persona.llm.offline import OfflineProvider
from persona.models import NodeType
from persona.retrieval import PRESETS, RetrievalPreset
from persona.store.sqlite import SqliteStore


class _CachedEmbedder(Embedder):
    """The same question is embedded once for the whole grid."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.info = inner.info

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._one(t) for t in texts] if len(texts) == 1 else self.inner.embed(texts)

    @cache  # noqa: B019 - lives for one script run
    def _one(self, text: str) -> list[float]:
        return self.inner.embed([text])[0]


def grid() -> list[RetrievalPreset]:
    """Candidate presets around the default: vector weight, typed-memory and entity weights, expansion decay."""
    base = PRESETS["default"]
    presets = []
    for vector, memory, entity, decay, depth in itertools.product(
        (0.3, 0.6, 1.0, 1.5), (0.1, 0.3), (0.05,), (0.5,), (20, 40)
    ):
        weights = {NodeType.PASSAGE: 1.0, NodeType.ENTITY: entity}
        weights |= {t: memory for t in (NodeType.EPISODE, NodeType.PSYCHE, NodeType.GOAL)}
        name = f"v{vector}-m{memory}-e{entity}-d{decay}-k{depth}"
        presets.append(
            replace(
                base,
                name=name,
                vector_weight=vector,
                type_weights=weights,
                expand_decay=decay,
                vector_k=depth,
                text_k=depth,
            )
        )
    return [base, *presets]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file")
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    provider = OfflineProvider()
    provider.embedder = _CachedEmbedder(provider.embedder)
    prepared = []
    for conv in load_conversations(args.file):
        user = re.sub(r"[^a-z0-9_-]", "-", conv.sample_id.lower())
        store = SqliteStore(None, embedder=provider.embedder.info)
        prepared.append((store, user, conv, _ingest_conversation(store, provider, user, conv)))
    metric = f"answer@{args.budget}"
    rows = []
    for preset in grid():
        tally = Tally()
        for store, user, conv, sessions in prepared:
            for question in conv.questions:
                ranking = _persona_ranking(store, provider, user, question, sessions, preset, 80)
                _score_question(tally, preset.name, question, ranking, [args.budget], [])
        by_category = [tally.mean(preset.name, metric, [c]) or 0.0 for c in HEADLINE_CATEGORIES]
        rows.append((tally.mean(preset.name, metric, HEADLINE_CATEGORIES) or 0.0, by_category, preset.name))
        print(f"{rows[-1][0]:.3f} {' '.join(f'{v:.3f}' for v in by_category)} {preset.name}", flush=True)
    print(f"\nbest by {metric} (overall, multi-hop, temporal, single-hop):")
    for overall, by_category, name in sorted(rows, reverse=True)[: args.top]:
        print(f"{overall:.3f} {' '.join(f'{v:.3f}' for v in by_category)} {name}")


if __name__ == "__main__":
    main()
