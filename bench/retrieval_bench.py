"""Retrieval latency (no LLM): p50/p95/p99 of ``retrieve`` at 1k, 10k and 100k memories for one user, per store.

Memories are written directly (an entry with an episode, a psyche, a goal and seven passages, and a person), ten
entries per transaction as an import does, so the 100k case does not spend its time in extraction.

The question is embedded inside the timed call by ``--embedder`` (default: the offline sentence model). The stored
vectors are the hashing embedder's (same 384 dimensions: a search costs the same whatever the values), so 100k
memories are written in minutes, not the hour the model would take.

Usage: .venv/bin/python bench/retrieval_bench.py [--stores sqlite,neo4j] [--sizes 1000,10000,100000] [--queries 200]
       [--embedder neural|hash]
"""

from __future__ import annotations

import argparse
import random
import time

from _common import (
    PEOPLE,
    entry_date,
    journal_text,
    make_embedder,
    markdown_table,
    open_stores,
    question_text,
    summary,
    timed,
)

from persona.models import Entry, Link, LinkType, MemoryBatch, Passage
from persona.retrieval import RetrievalQuery, retrieve
from persona.store.base import Store
from tests.factories import EMBEDDER, entry_with_memories

PASSAGES_PER_ENTRY = 7
MEMORIES_PER_ENTRY = 3 + PASSAGES_PER_ENTRY  # episode, psyche, goal and the passages (entities not counted)
ENTRIES_PER_WRITE = 10


def long_entry(user: str, index: int, rng: random.Random) -> tuple[Entry, MemoryBatch]:
    """An entry of several paragraphs: one episode, psyche and goal, a passage per paragraph, one person."""
    entry, batch = entry_with_memories(
        user, f"{journal_text(rng)} (#{index})", entry_date(index), people=(rng.choice(PEOPLE),)
    )
    texts = [journal_text(rng) for _ in range(PASSAGES_PER_ENTRY - 1)]
    extra = [
        Passage(user_id=user, entry_id=entry.id, occurred_at=entry.occurred_at, text=text, position=i + 1)
        for i, text in enumerate(texts)
    ]
    for passage, vector in zip(extra, EMBEDDER.embed(texts), strict=True):
        passage.embedding = vector
    batch.passages.extend(extra)
    batch.links.extend(Link(type=LinkType.PART_OF, source_id=p.id, target_id=entry.id) for p in extra)
    return entry, batch


def grow_to(store: Store, user: str, target: int, rng: random.Random, written: int) -> tuple[int, float]:
    """Write entries until the user has ``target`` memories (several entries per transaction, as an import does);
    return the new count and the seconds it took."""
    began = time.perf_counter()
    index = written // MEMORIES_PER_ENTRY
    while written < target:
        group = [long_entry(user, index + i, rng) for i in range(ENTRIES_PER_WRITE)]
        for entry, _ in group:
            store.save_entry(entry)
        combined = MemoryBatch.combine([b for _, b in group])
        store.write_batch(user, combined, done_entry_ids=[e.id for e, _ in group])
        written += MEMORIES_PER_ENTRY * ENTRIES_PER_WRITE
        index += ENTRIES_PER_WRITE
    return written, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stores", default="sqlite,neo4j")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--embedder", choices=["neural", "hash"], default="neural", help="embeds the question")
    args = parser.parse_args()
    embedder = make_embedder(args.embedder)
    rows = []
    with open_stores(args.stores.split(","), embedder) as stores:
        for kind, store in stores.items():
            rng, written = random.Random(5), 0
            for size in (int(s) for s in args.sizes.split(",")):
                written, seconds = grow_to(store, "bench", size, rng, written)
                questions = iter([question_text(rng) for _ in range(args.queries + 10)])

                def one(s: Store = store, q=questions) -> None:
                    retrieve(s, embedder, "bench", RetrievalQuery(text=next(q), limit=10))

                timed(one, 10)  # warm caches and indexes
                figures = summary(timed(one, args.queries))
                rows.append({"store": kind, "memories": size, **figures, "write s": round(seconds, 1)})
                print(rows[-1], flush=True)
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
