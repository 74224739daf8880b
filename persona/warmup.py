"""Warming a fresh Neo4j server before a person's first import.

A Neo4j server that has just started pays for its first queries: the JVM compiles the code that plans and runs them,
and each query shape is planned once. On this project's 2-core machine that made the demo persona's first load take
5-8 s on a fresh server against ~2 s on one that had done the same work before (``bench/README.md``). The app and the
API open their store once per process and a person reads the home page before importing, so they warm the server in
the background: a small import (two chunks of the demo journal's first entries), a retrieval and the graph page's
reads, all in ONE transaction that is rolled back (``Neo4jStore.rolled_back``). The server does the real work, its
query plans stay cached, and the database is left exactly as it was.

The warm-up's writes are its own (a user of its own, new nodes), so no person's write waits for it; a schema change
from another process (``persona reembed`` rebuilding the vector index) waits until it ends, seconds at most.

Short-lived processes (the CLI, the MCP server) do not warm: they would pay for it themselves. ``NEO4J_WARM_UP=false``
turns it off (the test suite does, except where it tests the warm-up).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from persona.demo import demo_journal
from persona.errors import StoreUnavailableError
from persona.importers import parse_markdown
from persona.ingest import ingest_many
from persona.llm.embedding import HashEmbedder
from persona.llm.offline import OfflineProvider
from persona.retrieval import RetrievalQuery, retrieve
from persona.store.neo4j import Neo4jStore
from persona.views import graph_view

log = logging.getLogger(__name__)

WARM_UP_USER_PREFIX = "persona-warm-up-"
"""Each warm-up writes as a user of its own (this prefix and a random part), inside its rolled-back transaction:
never committed, so never listed, and never the lock of a real user or of another process's warm-up."""
WARM_UP_ENTRIES = 8
"""Enough for the import's every query shape to run twice (its second chunk), few enough to take seconds on a cold
server: the warm-up must be over before a person who opened the app starts an import."""
WARM_UP_CHUNK = 4
"""Two chunks: the second plans its changes against memories the first wrote, as a real import does."""


class WarmUpIncomplete(RuntimeError):
    """The server refused part of the warm-up (the transaction was rolled back all the same)."""


def warm_up(store: Neo4jStore) -> int:
    """Run a small import, a retrieval and the graph page's reads against ``store`` in one transaction that is rolled
    back, and return how many entries the import finished inside it (``WARM_UP_ENTRIES``). The database is unchanged
    afterwards. Raises ``WarmUpIncomplete`` when an entry failed, or the store's error when a read did."""
    # Vectors of the store's dimension without loading a model: the server's work does not depend on their values.
    provider = OfflineProvider(embedder=HashEmbedder(store.embedder.dimension))
    items = [(item.text, item.occurred_at) for item in parse_markdown(demo_journal())[:WARM_UP_ENTRIES]]
    user_id = f"{WARM_UP_USER_PREFIX}{uuid.uuid4().hex[:12]}"
    with store.rolled_back() as scratch:
        scratch.ensure_user(user_id, display_name="Warm-up (rolled back)")
        results = ingest_many(scratch, provider, user_id, items, chunk_size=WARM_UP_CHUNK, source="warm-up")
        failed = [r.error for r in results if not r.ok]
        if failed:
            raise WarmUpIncomplete(f"{len(failed)} of {len(results)} warm-up entries failed: {failed[0]}")
        retrieve(scratch, provider.embedder, user_id, RetrievalQuery(text="Who did I meet this week?", limit=10))
        graph_view(scratch, provider, user_id)
    return len(results)


def start_warm_up(store: Neo4jStore) -> threading.Thread:
    """Warm the server in a background thread and return it. Failures are logged, never raised: warming only saves
    time, and the store works the same without it. A store closed or a server lost meanwhile ends it with one line;
    anything else is logged with its traceback, since it points at a bug."""

    def run() -> None:
        began = time.perf_counter()
        try:
            done = warm_up(store)
        except StoreUnavailableError as exc:
            log.info("the Neo4j warm-up stopped early (%s); the store works the same without it", exc)
            return
        except Exception:
            log.warning("the Neo4j warm-up failed; the store works the same without it", exc_info=True)
            return
        log.info("Neo4j warmed up in %.1f s (%d entries imported and rolled back)", time.perf_counter() - began, done)

    thread = threading.Thread(target=run, name="persona-neo4j-warm-up", daemon=True)
    thread.start()
    return thread
