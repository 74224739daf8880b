"""The graph page's own work with a 300-node cap: the subgraph query plus the pyvis HTML (target: <= 0.5 s).

Three views, as the page asks for them: the default (recent memories and their entities), a hub entity in focus
at depth 2, and a search centred on its hits. Each is timed ``--repeat`` times after one warm-up call.

Usage: .venv/bin/python bench/graph_page.py [--stores sqlite,neo4j] [--generated 1500] [--repeat 20]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections import Counter

from _common import entry_date, journal_text, markdown_table, open_stores, percentile

from persona.demo import load_demo
from persona.ingest import ingest_many
from persona.llm.offline import OfflineProvider
from persona.models import LinkType, NodeType
from persona.store.base import Store
from persona.views import graph_view
from persona.viz import render_graph

USER = "bench-graph"
CAP = 300


def fill(store: Store, provider: OfflineProvider, generated: int) -> None:
    """The demo journal plus generated entries: well over 300 drawable nodes for one user."""
    load_demo(store, provider, USER)
    rng = random.Random(7)
    items = [(f"{journal_text(rng)} (entry {i})", entry_date(i)) for i in range(generated)]
    ingest_many(store, provider, USER, items)


def hub(store: Store) -> str:
    """The most mentioned entity: focusing on it at depth 2 is the heaviest focus the page offers."""
    entities = store.list_nodes(USER, NodeType.ENTITY, limit=10_000)
    links = store.neighbours(USER, [e.id for e in entities], link_types=[LinkType.MENTIONS])
    return Counter(lk.target_id for lk in links).most_common(1)[0][0]


def measure(store: Store, provider: OfflineProvider, repeat: int, **view: object) -> dict[str, object]:
    """p50 / p95 of the query, the HTML and both together, with what was drawn."""
    query_ms, html_ms, total_ms = [], [], []
    shown = graph_view(store, provider, USER, limit=CAP, **view)  # warm-up (caches, template compile)
    render_graph(shown.subgraph)
    for _ in range(repeat):
        began = time.perf_counter()
        shown = graph_view(store, provider, USER, limit=CAP, **view)
        queried = time.perf_counter()
        page = render_graph(shown.subgraph, highlight_ids=shown.highlight_ids)
        done = time.perf_counter()
        query_ms.append((queried - began) * 1000)
        html_ms.append((done - queried) * 1000)
        total_ms.append((done - began) * 1000)
    return {
        "nodes": len(shown.subgraph.nodes),
        "of": shown.subgraph.total_nodes,
        "links": len(shown.subgraph.links),
        "html kB": round(len(page) / 1024),
        "query p50 ms": round(statistics.median(query_ms), 1),
        "html p50 ms": round(statistics.median(html_ms), 1),
        "total p50 ms": round(statistics.median(total_ms), 1),
        "total p95 ms": round(percentile(total_ms, 0.95), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stores", default="sqlite")
    parser.add_argument("--generated", type=int, default=1500)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    provider = OfflineProvider()
    rows = []
    with open_stores(args.stores.split(","), provider.embedder) as stores:
        for kind, store in stores.items():
            fill(store, provider, args.generated)
            views = {
                "default": {},
                "focus hub, depth 2": {"focus_id": hub(store), "depth": 2},
                "search 'Sarah running'": {"search": "Sarah running"},
            }
            for name, view in views.items():
                rows.append({"store": kind, "view": name, **measure(store, provider, args.repeat, **view)})
                print(rows[-1], flush=True)
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
