"""Store micro-benchmark: write 10,000 memories with embeddings, then 1,000 vector and 1,000 text searches.

Usage: .venv/bin/python bench/store_bench.py [--stores sqlite,neo4j] [--memories 10000] [--searches 1000]
"""

from __future__ import annotations

import argparse
import random
import time

from _common import entry_date, journal_text, markdown_table, open_stores, question_text, summary, timed

from persona.llm.embedding import HashEmbedder
from persona.store.base import Store
from tests.factories import entry_with_memories

MEMORIES_PER_ENTRY = 4  # episode, psyche, goal, passage (entities come on top and are not counted)


def write_memories(store: Store, user: str, count: int, rng: random.Random) -> float:
    """Write ``count`` memories (as count/4 entries, each one transaction); return memories per second."""
    entries = count // MEMORIES_PER_ENTRY
    prepared = [
        entry_with_memories(
            user, f"{journal_text(rng)} (#{i})", entry_date(i), people=(rng.choice(["Sarah", "Tom", "Ana"]),)
        )
        for i in range(entries)
    ]
    began = time.perf_counter()
    for entry, batch in prepared:
        store.save_entry(entry)
        store.write_batch(user, batch)
    return entries * MEMORIES_PER_ENTRY / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stores", default="sqlite,neo4j")
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--searches", type=int, default=1_000)
    args = parser.parse_args()
    embedder = HashEmbedder()
    rows = []
    with open_stores(args.stores.split(","), embedder) as stores:
        for kind, store in stores.items():
            rng = random.Random(7)
            user = "bench"
            rate = write_memories(store, user, args.memories, rng)
            questions = [question_text(rng) for _ in range(args.searches)]
            vectors = iter(embedder.embed(questions))
            texts = iter(questions)
            vector = summary(timed(lambda s=store, v=vectors, u=user: s.vector_search(u, next(v), k=20), args.searches))
            text = summary(timed(lambda s=store, t=texts, u=user: s.text_search(u, next(t), k=20), args.searches))
            rows.append(
                {
                    "store": kind,
                    "memories": args.memories,
                    "writes/s (memories)": round(rate),
                    "vector p50 ms": vector["p50_ms"],
                    "vector p95 ms": vector["p95_ms"],
                    "text p50 ms": text["p50_ms"],
                    "text p95 ms": text["p95_ms"],
                }
            )
            print(rows[-1], flush=True)
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
