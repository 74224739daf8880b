"""Warming a fresh Neo4j server before a person's first import.

A Neo4j server that has just started pays for its first queries: the JVM compiles the code that plans and runs them,
and each query shape is planned once. On this project's 2-core machine that made the demo persona's first load take
6-8 s on a fresh server against ~2 s on one that had done the same work before (``bench/README.md``). The app and the
API open their store once per process and a person reads the home page before importing, so they warm the server in
the background: a small import (two chunks of the demo journal's first entries), a retrieval and the graph page's
reads, all in ONE transaction that is rolled back (``Neo4jStore.rolled_back``). The server does the real work, its
query plans stay cached, and the database is left exactly as it was.

Short-lived processes (the CLI, the MCP server, tests) do not warm: they would pay for it themselves.
"""

from __future__ import annotations

import logging
import threading
import time

from persona.demo import demo_journal
from persona.importers import parse_markdown
from persona.ingest import ingest_many
from persona.llm.embedding import HashEmbedder
from persona.llm.offline import OfflineProvider
from persona.retrieval import RetrievalQuery, retrieve
from persona.store.neo4j import Neo4jStore
from persona.views import graph_view

log = logging.getLogger(__name__)

WARM_UP_USER = "persona-warm-up"
"""The user the warm-up writes as, inside its rolled-back transaction (never committed, so never listed)."""
WARM_UP_ENTRIES = 8
WARM_UP_CHUNK = 4
"""Two chunks: the second plans its changes against memories the first wrote, as a real import does."""


def warm_up(store: Neo4jStore) -> int:
    """Run a small import, a retrieval and the graph page's reads against ``store`` in one transaction that is rolled
    back. Returns how many entries the import finished inside it (``WARM_UP_ENTRIES`` when the server did all the
    work). The database is unchanged afterwards; a failure propagates (see ``start_warm_up`` for the quiet kind)."""
    # Vectors of the store's dimension without loading a model: the server's work does not depend on their values.
    provider = OfflineProvider(embedder=HashEmbedder(store.embedder.dimension))
    items = [(item.text, item.occurred_at) for item in parse_markdown(demo_journal())[:WARM_UP_ENTRIES]]
    with store.rolled_back() as scratch:
        scratch.ensure_user(WARM_UP_USER, display_name="Warm-up (rolled back)")
        results = ingest_many(scratch, provider, WARM_UP_USER, items, chunk_size=WARM_UP_CHUNK, source="warm-up")
        retrieve(scratch, provider.embedder, WARM_UP_USER, RetrievalQuery(text="Who did I meet this week?", limit=10))
        graph_view(scratch, provider, WARM_UP_USER)
    return sum(1 for result in results if result.ok)


def start_warm_up(store: Neo4jStore) -> threading.Thread:
    """Warm the server in a background thread and return it. Failures are logged, never raised: warming only saves
    time, and the store works the same without it (a store closed meanwhile simply ends it)."""

    def run() -> None:
        began = time.perf_counter()
        try:
            done = warm_up(store)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            log.info("the Neo4j warm-up stopped early (%s); the store works the same without it", exc)
            return
        log.info("Neo4j warmed up in %.1f s (%d entries imported and rolled back)", time.perf_counter() - began, done)

    thread = threading.Thread(target=run, name="persona-neo4j-warm-up", daemon=True)
    thread.start()
    return thread
