"""Offline ingest throughput (entries/s) on each store: the demo persona and generated entries.

Usage: .venv/bin/python bench/ingest_bench.py [--stores sqlite,neo4j] [--generated 2000] [--embedder neural|hash]
"""

from __future__ import annotations

import argparse
import random
import time

from _common import entry_date, journal_text, make_embedder, markdown_table, open_stores

from persona.demo import load_demo
from persona.ingest import ingest_many
from persona.llm.offline import OfflineProvider


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stores", default="sqlite,neo4j")
    parser.add_argument("--generated", type=int, default=2000)
    parser.add_argument("--embedder", choices=["neural", "hash"], default="neural", help="neural: the offline default")
    args = parser.parse_args()
    provider = OfflineProvider(embedder=make_embedder(args.embedder))
    rows = []
    with open_stores(args.stores.split(","), provider.embedder) as stores:
        for kind, store in stores.items():
            began = time.perf_counter()
            demo = load_demo(store, provider, "bench-demo")
            demo_seconds = time.perf_counter() - began
            rng = random.Random(11)
            items = [(f"{journal_text(rng)} (entry {i})", entry_date(i)) for i in range(args.generated)]
            began = time.perf_counter()
            results = ingest_many(store, provider, "bench-generated", items)
            generated_seconds = time.perf_counter() - began
            assert all(r.ok for r in results + demo)
            rows.append(
                {
                    "store": kind,
                    "demo entries": len(demo),
                    "demo load s": round(demo_seconds, 2),
                    "demo entries/s": round(len(demo) / demo_seconds, 1),
                    "generated entries": len(items),
                    "generated entries/s": round(len(items) / generated_seconds, 1),
                }
            )
            print(rows[-1], flush=True)
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
