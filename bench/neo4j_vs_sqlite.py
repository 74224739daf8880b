"""Issue 14's rows in one run, Neo4j beside SQLite with the ratio: retrieval p95 at 10k and 100k memories, the demo
persona's load (on a fresh server at once, and after the warm-up the app starts when it opens its store),
generated-entry ingest and the graph page at 300 nodes. Both stores use the same embedder (the
offline provider's, named in the output).

``--json FILE`` saves the figures; ``--before FILE`` adds a saved run's Neo4j figures as a "before" column.

Usage: .venv/bin/python bench/neo4j_vs_sqlite.py [--sizes 10000,100000] [--queries 200] [--generated 2000]
       [--json after.json] [--before before.json] [--embedder hash|neural] [--parts ingest,warmed,graph,retrieval]
       .venv/bin/python bench/neo4j_vs_sqlite.py --show after.json --before before.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import graph_page
from _common import entry_date, journal_text, make_embedder, open_stores, percentile, question_text, timed
from retrieval_bench import grow_to

from persona.demo import load_demo
from persona.ingest import ingest_many
from persona.llm.offline import OfflineProvider
from persona.retrieval import RetrievalQuery, retrieve
from persona.store.base import Store
from persona.store.neo4j import Neo4jStore
from persona.warmup import start_warm_up

TARGETS = {
    "retrieval p95 ms, 10k": "<= 100",
    "retrieval p95 ms, 100k": "<= 150",
    "demo load s": "<= 5",
    "demo load s, server warmed first": "<= 5",
    "generated entries/s": ">= 60",
    "graph page p50 ms (300 nodes)": "<= 250",
}


def ingest_rows(store: Store, provider: OfflineProvider, generated: int) -> dict[str, float]:
    began = time.perf_counter()
    load_demo(store, provider, "bench-demo")
    demo_seconds = time.perf_counter() - began
    rng = random.Random(11)
    items = [(f"{journal_text(rng)} (entry {i})", entry_date(i)) for i in range(generated)]
    began = time.perf_counter()
    ingest_many(store, provider, "bench-generated", items)
    return {"demo load s": demo_seconds, "generated entries/s": generated / (time.perf_counter() - began)}


def warmed_demo_row(store: Store, provider: OfflineProvider) -> dict[str, float]:
    """The demo's load as the app does it on Neo4j: the store warms the server in the background when it opens
    (``persona.warmup``) while the person reads the home page; here the demo starts when the warm-up ends.
    SQLite has nothing to warm."""
    if isinstance(store, Neo4jStore):
        began = time.perf_counter()
        start_warm_up(store).join()
        print(f"neo4j warm-up took {time.perf_counter() - began:.2f} s", flush=True)
    began = time.perf_counter()
    load_demo(store, provider, "bench-demo")
    return {"demo load s, server warmed first": time.perf_counter() - began}


def graph_row(store: Store, provider: OfflineProvider, repeat: int) -> dict[str, float]:
    graph_page.fill(store, provider, 1500)
    figures = graph_page.measure(store, provider, repeat)
    return {"graph page p50 ms (300 nodes)": float(figures["total p50 ms"])}


def retrieval_rows(store: Store, provider: OfflineProvider, sizes: list[int], queries: int) -> dict[str, float]:
    rows: dict[str, float] = {}
    rng, written = random.Random(5), 0
    for size in sizes:
        written, _ = grow_to(store, "bench", size, rng, written)
        questions = iter([question_text(rng) for _ in range(queries + 10)])

        def one(s: Store = store, q: Iterator[str] = questions) -> None:
            retrieve(s, provider.embedder, "bench", RetrievalQuery(text=next(q), limit=10))

        timed(one, 10)  # warm caches and plans
        samples = timed(one, queries)
        label = f"{size // 1000}k"
        rows[f"retrieval p50 ms, {label}"] = statistics.median(samples)
        rows[f"retrieval p95 ms, {label}"] = percentile(samples, 0.95)
    return rows


def table(figures: dict[str, dict[str, float]], before: dict[str, dict[str, float]] | None) -> str:
    head = ["row", "sqlite", "neo4j", "neo4j / sqlite", "target (neo4j)"]
    if before:
        head[2:2] = ["neo4j before"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in figures["sqlite"]:
        sqlite, neo4j = figures["sqlite"][row], figures["neo4j"][row]
        cells = [row, f"{sqlite:.1f}", f"{neo4j:.1f}", f"{neo4j / sqlite:.1f}x", TARGETS.get(row, "")]
        if before:
            cells[2:2] = [f"{before['neo4j'][row]:.1f}" if row in before.get("neo4j", {}) else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--generated", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=20, help="graph page timings")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--before", type=Path, default=None)
    parser.add_argument(
        "--embedder", choices=["hash", "neural"], default="hash", help="hash keeps the figures about the stores"
    )
    parser.add_argument("--show", type=Path, default=None, help="print the table of a saved run, run nothing")
    parser.add_argument(
        "--parts",
        default="ingest,warmed,graph,retrieval",
        help="which parts to run (e.g. retrieval alone for the 100k row)",
    )
    args = parser.parse_args()
    before = json.loads(args.before.read_text()) if args.before else None
    if args.show:
        print(table(json.loads(args.show.read_text()), before))
        return
    provider = OfflineProvider(embedder=make_embedder(args.embedder))
    sizes = [int(s) for s in args.sizes.split(",")]
    figures: dict[str, dict[str, float]] = {}
    print(f"embedder: {provider.embedder.info.name} ({provider.embedder.info.dimension} dimensions)", flush=True)
    # A fresh pair of stores per part, so the graph page and ingest figures do not depend on 100k retrieval nodes.
    parts = [p for p in ("ingest", "warmed", "graph", "retrieval") if p in args.parts.split(",")]
    for part in parts:
        with open_stores(["sqlite", "neo4j"], provider.embedder) as stores:
            for kind, store in stores.items():
                if part == "ingest":
                    rows = ingest_rows(store, provider, args.generated)
                elif part == "warmed":
                    rows = warmed_demo_row(store, provider)
                elif part == "graph":
                    rows = graph_row(store, provider, args.repeat)
                else:
                    rows = retrieval_rows(store, provider, sizes, args.queries)
                figures.setdefault(kind, {}).update(rows)
                print(kind, {k: round(v, 2) for k, v in rows.items()}, flush=True)
    if args.json:
        args.json.write_text(json.dumps({"embedder": provider.embedder.info.name, **figures}, indent=2))
    print(table(figures, before))


if __name__ == "__main__":
    main()
