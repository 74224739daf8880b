"""The timeline page's visual band and filters: rows for an Altair chart, a thread filter and "jump to a date".
Plain Python, no Streamlit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date
from typing import Any

from persona.models import Episode
from persona.views import TimelineItem
from persona.viz import short

LANES = ("Goals", "Psyche", "Episodes")
"""Top to bottom: what the person wanted and who they are, above what happened."""


def band_rows(items: Sequence[TimelineItem]) -> list[dict[str, Any]]:
    """One row per episode, psyche and goal (dated by their episode), for a chart with a lane per type."""
    rows: list[dict[str, Any]] = []
    for item in items:
        episode = item.episode
        day = episode.occurred_at.isoformat()
        rows.append(
            {
                "when": day,
                "lane": "Episodes",
                "label": short(episode.title, 80),
                "id": episode.id,
                "size": 40 + 160 * episode.importance,
            }
        )
        rows += [
            {"when": day, "lane": "Psyche", "label": short(p.text, 80), "id": episode.id, "size": 60}
            for p in item.psyche
        ]
        rows += [
            {"when": day, "lane": "Goals", "label": short(g.title, 80), "id": episode.id, "size": 60}
            for g in item.goals
        ]
    return rows


def thread_options(items: Sequence[TimelineItem], *, limit: int = 40) -> dict[str, str]:
    """The entities and goals worth following, most frequent first: id -> label (``Sarah (person, 12)``)."""
    counts: Counter[str] = Counter()
    labels: dict[str, str] = {}
    for item in items:
        for entity in item.entities:
            counts[entity.id] += 1
            labels[entity.id] = f"{entity.name} ({entity.kind.value}"
        for goal in item.goals:
            counts[goal.id] += 1
            labels[goal.id] = f"Goal: {short(goal.title, 50)} ({goal.status.value}"
    return {i: f"{labels[i]}, {n})" for i, n in counts.most_common(limit)}


def follow_thread(items: Sequence[TimelineItem], node_id: str | None) -> list[TimelineItem]:
    """The episodes that mention this entity or carry this goal (all of them when ``node_id`` is None)."""
    if not node_id:
        return list(items)
    return [
        item
        for item in items
        if any(e.id == node_id for e in item.entities) or any(g.id == node_id for g in item.goals)
    ]


def nearest_episode(episodes: Sequence[Episode], day: date) -> Episode | None:
    """The episode closest to ``day`` (the earlier one on a tie), or None when there are none."""
    if not episodes:
        return None
    return min(episodes, key=lambda e: (abs((e.occurred_at.date() - day).days), e.occurred_at))
