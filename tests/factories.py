"""Builders for test data: an entry and the memories one ingest would write for it; the CLI run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from persona.llm.embedding import HashEmbedder
from persona.models import (
    Entity,
    EntityKind,
    Entry,
    Episode,
    Goal,
    GoalKind,
    Link,
    LinkType,
    MemoryBatch,
    Passage,
    Psyche,
    PsycheKind,
    node_text,
)

BASE_TIME = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
EMBEDDER = HashEmbedder()


def day(n: int) -> datetime:
    """A fixed, timezone-aware date n days after 1 March 2024."""
    return BASE_TIME + timedelta(days=n)


def entry_with_memories(
    user_id: str, text: str, occurred_at: datetime, *, people: tuple[str, ...] = ()
) -> tuple[Entry, MemoryBatch]:
    """An entry, and an episode, a psyche, a goal, a passage and entities for it, with embeddings and links."""
    entry = Entry(user_id=user_id, text=text, occurred_at=occurred_at)
    common = {"user_id": user_id, "entry_id": entry.id, "occurred_at": occurred_at}
    episode = Episode(title=text[:40], summary=text, importance=0.6, **common)
    psyche = Psyche(kind=PsycheKind.PREFERENCE, text=f"likes {text[:20]}", confidence=0.7, **common)
    goal = Goal(kind=GoalKind.TASK, title=f"do {text[:20]}", text=f"I want to {text[:30]}", **common)
    passage = Passage(text=text, position=0, **common)
    entities = [Entity(user_id=user_id, name=p, kind=EntityKind.PERSON) for p in people]
    memories = [episode, psyche, goal, passage, *entities]
    for node, vector in zip(memories, EMBEDDER.embed([node_text(n) for n in memories]), strict=True):
        node.embedding = vector
    links = [
        Link(type=LinkType.FROM_ENTRY, source_id=episode.id, target_id=entry.id),
        Link(type=LinkType.DERIVED_FROM, source_id=psyche.id, target_id=episode.id),
        Link(type=LinkType.DERIVED_FROM, source_id=goal.id, target_id=episode.id),
        Link(type=LinkType.PART_OF, source_id=passage.id, target_id=entry.id),
        *[Link(type=LinkType.MENTIONS, source_id=episode.id, target_id=e.id) for e in entities],
    ]
    batch = MemoryBatch(
        episodes=[episode], psyche=[psyche], goals=[goal], passages=[passage], entities=entities, links=links
    )
    return entry, batch


def write_entry(store, user_id: str, text: str, occurred_at: datetime, **kwargs) -> tuple[Entry, MemoryBatch]:
    """Save the entry and write its memories, as ingest does."""
    entry, batch = entry_with_memories(user_id, text, occurred_at, **kwargs)
    store.save_entry(entry)
    store.write_batch(user_id, batch)
    return entry, batch


ROOT = Path(__file__).resolve().parent.parent


def persona_cli(home: Path, *args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    """``persona ARGS`` in a fresh process with ``home`` as its data folder and no OpenAI key (the offline provider);
    ``user`` sets PERSONA_USER, the user a command picks when it is given none."""
    env = os.environ | {"PERSONA_HOME": str(home), "OPENAI_API_KEY": ""}
    if user:
        env["PERSONA_USER"] = user
    return subprocess.run(
        [sys.executable, "-m", "persona.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env
    )
