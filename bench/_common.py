"""Shared pieces of the benchmarks: opening each store, synthetic journal text, percentiles, result tables."""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from persona.llm.base import Embedder  # noqa: E402
from persona.llm.embedding import HashEmbedder  # noqa: E402
from persona.store.base import Store  # noqa: E402
from persona.store.sqlite import SqliteStore  # noqa: E402
from tests.neo4j_server import Neo4jServer  # noqa: E402

PEOPLE = ["Sarah", "Tom", "Priya", "Jonas", "Helena", "Ada", "Rui", "Marta", "Carla", "Duarte", "Lena", "Omar"]
PLACES = ["Lisbon", "Porto", "the park", "the office", "the café", "the river", "Tomar", "the studio", "the beach"]
ACTIVITIES = [
    "went for a long run",
    "cooked a new curry",
    "argued about the budget",
    "read a novel",
    "planted tomatoes",
    "fixed the bike",
    "painted the kitchen",
    "walked the dog",
    "practised Portuguese",
    "made a ceramic bowl",
    "watched a film",
    "planned the trip",
    "visited grandma",
    "finished the drawings",
    "went swimming",
]
FEELINGS = ["happy", "tired", "anxious", "calm", "proud", "restless", "grateful", "bored", "excited"]
START = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)


def journal_text(rng: random.Random) -> str:
    """A short synthetic journal entry with people, places, a feeling, sometimes a goal and a preference."""
    who, where, what = rng.choice(PEOPLE), rng.choice(PLACES), rng.choice(ACTIVITIES)
    parts = [f"Today I {what} with {who} in {where}.", f"I felt {rng.choice(FEELINGS)} afterwards."]
    if rng.random() < 0.4:
        parts.append(f"I want to {rng.choice(ACTIVITIES).split(' ', 1)[1]} again by Friday.")
    if rng.random() < 0.3:
        parts.append(f"I love {rng.choice(ACTIVITIES).split(' ', 1)[1]}.")
    parts.append(f"{rng.choice(PEOPLE)} said the {rng.choice(['weather', 'food', 'music', 'news'])} was strange.")
    return " ".join(parts)


def question_text(rng: random.Random) -> str:
    """A question a person might ask their memory (what retrieval is for)."""
    templates = [
        "When did I {what} with {who}?",
        "What did {who} say about {where}?",
        "How did I feel after I {what}?",
        "Who was with me in {where}?",
        "Did I {what} last month?",
    ]
    what = rng.choice(ACTIVITIES).split(" ", 1)[1] if rng.random() < 0.5 else rng.choice(ACTIVITIES)
    return rng.choice(templates).format(what=what, who=rng.choice(PEOPLE), where=rng.choice(PLACES))


def entry_date(index: int) -> datetime:
    return START + timedelta(hours=7 * index)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Milliseconds of each of ``repeat`` calls."""
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(percentile(samples, 0.95), 2),
        "p99_ms": round(percentile(samples, 0.99), 2),
    }


@contextmanager
def open_stores(kinds: list[str], embedder: Embedder) -> Iterator[dict[str, Store]]:
    """Fresh stores of the given kinds: a SQLite file in a temp dir, and a Neo4j server started for the run."""
    stores: dict[str, Store] = {}
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if "sqlite" in kinds:
                stores["sqlite"] = SqliteStore(Path(tmp) / "bench.sqlite3", embedder=embedder.info)
            if "neo4j" in kinds:
                from persona.store.neo4j import Neo4jStore

                server = Neo4jServer()
                if server.uri is None:
                    raise SystemExit(f"Neo4j is not available: {server.error}")
                print(f"Neo4j started in {server.start_seconds or 0:.1f} s", file=sys.stderr)
                stores["neo4j"] = Neo4jStore(server.uri, auth=None, embedder=embedder.info)
            yield stores
        finally:
            for store in stores.values():
                store.close()
            if server is not None:
                server.stop()


def make_embedder(name: str) -> Embedder:
    """The embedder a benchmark runs with: ``neural`` (the offline default, the sentence model) or ``hash``."""
    if name == "hash":
        return HashEmbedder()
    from persona.llm.neural import NeuralEmbedder

    embedder = NeuralEmbedder()
    embedder.load()  # loading is measured apart (neural_bench.py), not inside the first timed call
    return embedder


def markdown_table(rows: list[dict[str, object]]) -> str:
    """Rows of equal keys as a markdown table."""
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "| " + " | ".join("---" for _ in keys) + " |"]
    lines += ["| " + " | ".join(str(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines)
