"""Where Neo4j's time goes: one retrieval (at ``--memories`` memories) and one demo-entry ingest, broken down into
transactions, statements (each a network round trip), time per store primitive and the PROFILE plan of each query.

The counters wrap the store's own methods for this process only (a measurement, not a change); PROFILE re-runs a
captured statement with its captured parameters inside a transaction that is rolled back.

Usage: .venv/bin/python bench/neo4j_profile.py [--memories 10000] [--uri bolt://127.0.0.1:7687] [--embedder hash|neural]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from _common import make_embedder, question_text
from neo4j import GraphDatabase
from neo4j._sync.work.transaction import TransactionBase
from neo4j.exceptions import Neo4jError
from retrieval_bench import grow_to

from persona.demo import demo_journal, load_demo
from persona.importers import parse_markdown
from persona.ingest import OFFLINE_IMPORT_CHUNK, ingest_entry
from persona.llm.offline import OfflineProvider
from persona.retrieval import RetrievalQuery, retrieve
from persona.store import neo4j as neo4j_store
from persona.views import graph_view
from tests.neo4j_server import Neo4jServer


class Tally:
    """Counts and times what the store sends while it is active."""

    def __init__(self) -> None:
        self.transactions = 0
        self.statements: Counter[str] = Counter()
        self.primitive_ms: dict[str, float] = defaultdict(float)
        self.primitive_calls: Counter[str] = Counter()
        self.captured: dict[str, tuple[str, dict[str, Any]]] = {}

    def report(self, title: str) -> str:
        lines = [f"### {title}", "", f"- transactions: {self.transactions}"]
        lines.append(f"- statements (round trips): {sum(self.statements.values())}")
        lines += ["", "| primitive | calls | ms |", "| --- | --- | --- |"]
        for name, ms in sorted(self.primitive_ms.items(), key=lambda kv: -kv[1]):
            lines.append(f"| {name} | {self.primitive_calls[name]} | {ms:.1f} |")
        return "\n".join(lines)


ACTIVE: list[Tally] = []


def _wrap(owner: type, name: str, label: str) -> None:
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            for tally in ACTIVE:
                tally.primitive_ms[label] += (time.perf_counter() - began) * 1000
                tally.primitive_calls[label] += 1

    setattr(owner, name, wrapper)


def _instrument() -> None:
    """Count transactions (the store's two entry points) and statements (every ``run`` on a transaction)."""
    # _run_write goes through _write, so counting _write counts every write transaction once.
    for name in ("_run_read", "_write", "_read"):
        original = getattr(neo4j_store.Neo4jStore, name)

        def counted(self: Any, *args: Any, _original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            for tally in ACTIVE:
                tally.transactions += 1
            return _original(self, *args, **kwargs)

        setattr(neo4j_store.Neo4jStore, name, counted)
    run = TransactionBase.run

    def counted_run(self: Any, query: Any, parameters: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        text = str(query)
        key = " ".join(text.split())[:70]
        for tally in ACTIVE:
            tally.statements[key] += 1
            tally.captured.setdefault(key, (text, dict(parameters or {}, **kwargs)))
        return run(self, query, parameters, **kwargs)

    TransactionBase.run = counted_run
    for name in dir(neo4j_store._Neo4jTransaction):
        if not name.startswith("_"):
            _wrap(neo4j_store._Neo4jTransaction, name, f"tx.{name}")
    for name in ("_vector_search", "_text_search"):
        _wrap(neo4j_store.Neo4jStore, name, name)


@contextmanager
def tallied() -> Iterator[Tally]:
    tally = Tally()
    ACTIVE.append(tally)
    try:
        yield tally
    finally:
        ACTIVE.remove(tally)


def _flatten(plan: dict[str, Any], depth: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    yield depth, plan
    for child in plan.get("children", []):
        yield from _flatten(child, depth + 1)


def _plan(session: Any, text: str, params: dict[str, Any]) -> dict[str, Any]:
    """The PROFILE plan, rolled back; a write that cannot run twice (a unique id) gets its EXPLAIN plan."""
    for mode in ("PROFILE", "EXPLAIN"):
        tx = session.begin_transaction()
        try:
            summary = tx.run(f"{mode} {text}", params).consume()
            return (summary.profile if mode == "PROFILE" else summary.plan) or {}
        except Neo4jError:
            continue
        finally:
            tx.rollback()
    return {}


def profile_plans(uri: str, tally: Tally) -> str:
    """PROFILE each captured statement (rolled back) and list its operators with rows and db hits."""
    lines = []
    with GraphDatabase.driver(uri, auth=None) as driver, driver.session() as session:
        for key, (text, params) in tally.captured.items():
            plan = _plan(session, text, params)
            total = sum(p.get("dbHits", 0) for _, p in _flatten(plan))
            lines.append(f"\n`{key}` x{tally.statements[key]}: {total} db hits")
            for depth, op in _flatten(plan):
                args = op.get("args", {})
                detail = str(args.get("Details", ""))[:90]
                lines.append(
                    f"    {'  ' * depth}{op['operatorType']} rows={op.get('rows', 0)} hits={op.get('dbHits', 0)} "
                    f"{detail}"
                )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--uri", default=None, help="a running server (default: start one for this run)")
    parser.add_argument(
        "--embedder", choices=["hash", "neural"], default="hash", help="hash keeps the figures about the stores"
    )
    args = parser.parse_args()
    server = None if args.uri else Neo4jServer()
    uri = args.uri or (server.uri if server else None)
    if uri is None:
        raise SystemExit(f"Neo4j is not available: {server.error if server else ''}")
    provider = OfflineProvider(embedder=make_embedder(args.embedder))
    _instrument()
    try:
        store = neo4j_store.Neo4jStore(uri, auth=None, embedder=provider.embedder.info)
        rng = random.Random(5)
        user = f"profile-{uuid.uuid4().hex[:8]}"  # a fresh user, so a server reused across runs gives the same picture
        grow_to(store, user, args.memories, rng, 0)
        questions = [question_text(rng) for _ in range(30)]
        for question in questions[:10]:  # warm the plan cache and the page cache
            retrieve(store, provider.embedder, user, RetrievalQuery(text=question, limit=10))
        with tallied() as tally:
            began = time.perf_counter()
            retrieve(store, provider.embedder, user, RetrievalQuery(text=questions[10], limit=10))
            total = (time.perf_counter() - began) * 1000
        print(tally.report(f"one retrieval at {args.memories} memories: {total:.1f} ms"))
        print(profile_plans(uri, tally))
        items = parse_markdown(demo_journal())
        longest = max(items, key=lambda i: len(i.text))
        store.ensure_user(f"{user}-demo")
        with tallied() as tally:
            began = time.perf_counter()
            ingest_entry(store, provider, f"{user}-demo", longest.text, occurred_at=longest.occurred_at)
            total = (time.perf_counter() - began) * 1000
        print(tally.report(f"one demo entry ingested ({len(longest.text.split())} words): {total:.1f} ms"))
        print(profile_plans(uri, tally))
        with tallied() as tally:
            began = time.perf_counter()
            load_demo(store, provider, f"{user}-whole-demo")
            total = (time.perf_counter() - began) * 1000
        title = f"the whole demo persona ({len(items)} entries, chunks of {OFFLINE_IMPORT_CHUNK}): {total:.0f} ms"
        print(tally.report(title))
        print("\n| statement | times |\n| --- | --- |")
        for key, times in tally.statements.most_common():
            print(f"| `{key}` | {times} |")
        graph_view(store, provider, f"{user}-whole-demo", limit=300)  # warm
        with tallied() as tally:
            began = time.perf_counter()
            shown = graph_view(store, provider, f"{user}-whole-demo", limit=300)
            total = (time.perf_counter() - began) * 1000
        print(tally.report(f"the graph page's default view ({len(shown.subgraph.nodes)} nodes): {total:.0f} ms"))
        store.close()
    finally:
        if server is not None:
            server.stop()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
