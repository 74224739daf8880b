"""Peak memory (RSS) of the documented limits: one 1 MB entry, one maximum-size entry (2,000,000 characters of short
lines), and an import of 10,000 entries, on each store. While the maximum-size entry is written, another user reads
their timeline in a loop: the table shows the longest that read waited (the store lock must not be held for long).

Each case runs in a fresh Python process (``ru_maxrss`` only ever grows, so one process per measurement); the table
shows the process's resident memory after opening the store ("baseline") and its peak during the work.

Usage: .venv/bin/python bench/limits.py [--stores sqlite,neo4j] [--entries 10000] [--entry-mb 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import ROOT, entry_date, journal_text, markdown_table

from persona.ingest import ingest_many
from persona.llm.offline import OfflineProvider
from persona.models import MAX_ENTRY_CHARS, NodeType

CASES = ("1mb-entry", "max-entry", "import")


def rss_mb() -> float:
    """The process's resident memory now (Linux /proc), in MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MB (Linux reports ru_maxrss in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def long_entry(megabytes: float) -> str:
    """A realistic long entry: journal sentences, a line break every few, about ``megabytes`` MB of text."""
    rng = random.Random(5)
    lines, size = [], 0
    while size < megabytes * 2**20:
        line = " ".join(journal_text(rng) for _ in range(3))
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)[: min(int(megabytes * 2**20), MAX_ENTRY_CHARS)]


def short_lines_entry() -> str:
    """The worst case for passages: the maximum entry size in short lines (16 characters each)."""
    line = "short line here"
    return "\n".join([line] * (MAX_ENTRY_CHARS // (len(line) + 1)))[:MAX_ENTRY_CHARS]


class OtherUser(threading.Thread):
    """Another user reading their timeline in a loop; records the longest single read."""

    def __init__(self, store, user: str) -> None:  # type: ignore[no-untyped-def]
        super().__init__(daemon=True)
        self.store, self.user = store, user
        self.longest = 0.0
        self.reads = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            began = time.perf_counter()
            self.store.list_nodes(self.user, NodeType.EPISODE, limit=50)
            self.longest = max(self.longest, time.perf_counter() - began)
            self.reads += 1
            time.sleep(0.01)


def open_store(kind: str, directory: str, uri: str | None):
    provider = OfflineProvider()
    if kind == "sqlite":
        from persona.store.sqlite import SqliteStore

        return SqliteStore(Path(directory) / "limits.sqlite3", embedder=provider.embedder.info), provider
    from persona.store.neo4j import Neo4jStore

    return Neo4jStore(uri or "", auth=None, embedder=provider.embedder.info), provider


def child(case: str, kind: str, directory: str, uri: str | None, entries: int, entry_mb: float) -> dict[str, object]:
    """One measurement, in this (fresh) process."""
    store, provider = open_store(kind, directory, uri)
    user = f"limits-{case}-{os.getpid()}"
    if case == "1mb-entry":
        items = [(long_entry(entry_mb), entry_date(0))]
    elif case == "max-entry":
        items = [(short_lines_entry(), entry_date(0))]
    else:
        rng = random.Random(11)
        items = [(f"{journal_text(rng)} (entry {i})", entry_date(i)) for i in range(entries)]
    other = OtherUser(store, f"{user}-other")
    ingest_many(store, provider, other.user, [("The other user's only entry.", entry_date(1))])
    baseline = rss_mb()
    other.start()
    began = time.perf_counter()
    results = ingest_many(store, provider, user, items)
    seconds = time.perf_counter() - began
    other.stop.set()
    other.join()
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    assert store.count_nodes(user, NodeType.ENTRY) == len(items)
    row = {
        "store": kind,
        "case": {"1mb-entry": f"{len(items[0][0]) / 2**20:.2f} MB entry", "max-entry": "2,000,000-char entry"}.get(
            case, f"{len(items):,} entries"
        ),
        "input MB": round(sum(len(t) for t, _ in items) / 2**20, 2),
        "seconds": round(seconds, 1),
        "baseline RSS MB": round(baseline, 0),
        "peak RSS MB": round(peak_rss_mb(), 0),
        "peak - baseline MB": round(peak_rss_mb() - baseline, 0),
        "nodes": sum(store.stats(user)[t.value] for t in NodeType),
        "other user's longest read s": round(other.longest, 2),
    }
    store.delete_user(user)
    store.delete_user(other.user)
    store.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stores", default="sqlite,neo4j")
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--entry-mb", type=float, default=1.0)
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.store, args.dir, args.uri, args.entries, args.entry_mb)))
        return
    kinds = args.stores.split(",")
    server = None
    uri = None
    if "neo4j" in kinds:
        from tests.neo4j_server import Neo4jServer

        server = Neo4jServer()
        if server.uri is None:
            raise SystemExit(f"Neo4j is not available: {server.error}")
        uri = server.uri
    rows = []
    try:
        for kind in kinds:
            for case in CASES:
                with tempfile.TemporaryDirectory() as directory:
                    command = [sys.executable, __file__, "--child", case, "--store", kind, "--dir", directory]
                    command += ["--entries", str(args.entries), "--entry-mb", str(args.entry_mb)]
                    command += ["--uri", uri] if uri else []
                    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
                    if done.returncode != 0:
                        raise SystemExit(f"{kind} {case} failed:\n{done.stderr[-3000:]}")
                    rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
                    print(f"{kind} {case}: {rows[-1]}", file=sys.stderr, flush=True)
    finally:
        if server is not None:
            server.stop()
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
