"""What the terminal and the assistants share: checking that a user exists, searching memories with filters given as
text, the user's context (recent psyche, active goals, latest episodes), the timeline, and one JSON shape per
memory. Used by ``persona.cli`` and ``persona.mcp_server``; it knows nothing of either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from persona.chat import episode_text
from persona.errors import UserNotFoundError, ValidationError
from persona.llm.base import Embedder
from persona.models import (
    AnyNode,
    Entity,
    Episode,
    Goal,
    GoalStatus,
    NodeType,
    Passage,
    Psyche,
    check_user_id,
    node_text,
)
from persona.retrieval import RetrievalQuery, RetrievedMemory, retrieve
from persona.store.base import Store
from persona.store.common import as_node_types

MAX_RESULTS = 50


class UnknownUserError(UserNotFoundError):
    """A user that is not in the store, with the users that are, so a person can correct the name."""

    def __init__(self, user_id: str, known: Sequence[str]) -> None:
        super().__init__(user_id)
        listed = ", ".join(known[:10]) + (", …" if len(known) > 10 else "") if known else "none yet"
        self.args = (
            f"no user {user_id!r} in this store (users: {listed}); "
            "create one with `persona import FILE --user ID` or `persona demo`",
        )


def require_user(store: Store, user_id: str) -> str:
    """``user_id`` when the store has that user; ``UnknownUserError`` otherwise (a bad id is a ``ValidationError``)."""
    check_user_id(user_id)
    known = [user.id for user in store.list_users()]
    if user_id not in known:
        raise UnknownUserError(user_id, known)
    return user_id


def parse_when(value: str | None, *, field: str, end_of_day: bool = False) -> datetime | None:
    """A date or datetime given as ISO 8601 text (``2024-03-01`` or ``2024-03-01T09:00:00+01:00``); a bare date
    means the start of that day in UTC (its end with ``end_of_day``, for inclusive "until" bounds), a datetime
    without a timezone means UTC."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time.max if end_of_day else time.min, tzinfo=UTC)
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError(f"{field}: {text[:40]!r} is not a date (use YYYY-MM-DD or ISO 8601)") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def search(
    store: Store,
    embedder: Embedder,
    user_id: str,
    question: str,
    *,
    types: Iterable[str] | None = None,
    since: str | None = None,
    until: str | None = None,
    as_of: str | None = None,
    limit: int = 10,
) -> list[RetrievedMemory]:
    """The user's memories that best answer ``question``, best first, filtered by node types (names such as
    ``Episode`` or ``goal``), an inclusive date range and an "as of" moment (dates as ISO text)."""
    require_user(store, user_id)
    if not isinstance(question, str) or not question.strip():
        raise ValidationError("the question is empty")
    if not 1 <= limit <= MAX_RESULTS:
        raise ValidationError(f"limit must be between 1 and {MAX_RESULTS}")
    chosen = tuple(as_node_types(_type_names(types))) if types else None
    query = RetrievalQuery(
        text=question.strip(),
        types=chosen,
        start=parse_when(since, field="since"),
        end=parse_when(until, field="until", end_of_day=True),
        as_of=parse_when(as_of, field="as_of", end_of_day=True),
        limit=limit,
    )
    return retrieve(store, embedder, user_id, query)


def _type_names(types: Iterable[str]) -> list[str]:
    """Node type names as a person writes them ("goal", "Goals") in the form the store knows ("Goal")."""
    known = {t.value.lower(): t.value for t in NodeType}
    names = []
    for name in types:
        key = str(name).strip().lower()
        key = key[:-1] if key not in known and key.endswith("s") else key
        if key not in known:
            raise ValidationError(f"unknown memory type {str(name)[:40]!r}: use {', '.join(t.value for t in NodeType)}")
        names.append(known[key])
    return names


@dataclass
class UserContext:
    """Who the user is now, as far as the memory knows: recent psyche, active goals, the latest episodes."""

    user_id: str
    psyche: list[Psyche]
    goals: list[Goal]
    episodes: list[Episode]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "user_id": self.user_id,
            "psyche": [memory_dict(n) for n in self.psyche],
            "active_goals": [memory_dict(n) for n in self.goals],
            "recent_episodes": [memory_dict(n) for n in self.episodes],
        }


def user_context(store: Store, user_id: str, *, psyche: int = 10, goals: int = 20, episodes: int = 5) -> UserContext:
    """The user's most recent psyche, active goals (newest first) and latest episodes. (Until memories carry when
    they stopped being true, "current" means "most recently written".)"""
    require_user(store, user_id)
    return UserContext(
        user_id=user_id,
        psyche=store.list_nodes(user_id, NodeType.PSYCHE, limit=psyche),  # type: ignore[arg-type]
        goals=store.list_nodes(user_id, NodeType.GOAL, status=GoalStatus.ACTIVE.value, limit=goals),  # type: ignore[arg-type]
        episodes=store.list_nodes(user_id, NodeType.EPISODE, limit=episodes),  # type: ignore[arg-type]
    )


def active_goals(store: Store, user_id: str, *, limit: int = 100) -> list[Goal]:
    """The user's active goals, newest first."""
    require_user(store, user_id)
    return store.list_nodes(user_id, NodeType.GOAL, status=GoalStatus.ACTIVE.value, limit=limit)  # type: ignore[return-value]


def timeline(
    store: Store, user_id: str, *, since: str | None = None, until: str | None = None, limit: int = 50
) -> list[Episode]:
    """The user's episodes in time order (the NEXT chain), within an inclusive date range, the latest ``limit``."""
    require_user(store, user_id)
    start, end = parse_when(since, field="since"), parse_when(until, field="until", end_of_day=True)
    episodes = [
        n
        for n in store.get_nodes(user_id, store.chain(user_id))
        if isinstance(n, Episode)
        and (start is None or n.occurred_at >= start)
        and (end is None or n.occurred_at <= end)
    ]
    return episodes[-limit:] if limit > 0 else []


def _within(when: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or when >= start) and (end is None or when <= end)


def memory_dict(node: AnyNode) -> dict[str, Any]:
    """One memory as JSON-ready data: id, type, date, the text a person reads, and the fields of its kind."""
    when = getattr(node, "occurred_at", None)
    data: dict[str, Any] = {
        "id": node.id,
        "type": node.type.value,
        "date": when.isoformat() if when else None,
        "text": node_text(node),
    }
    match node:
        case Episode():
            data |= {"title": node.title, "text": episode_text(node), "importance": node.importance}
        case Psyche():
            data |= {"kind": node.kind.value, "confidence": node.confidence}
        case Goal():
            data |= {"kind": node.kind.value, "title": node.title, "status": node.status.value}
            data["due"] = node.due.isoformat() if node.due else None
        case Entity():
            data |= {"kind": node.kind.value, "name": node.name}
        case Passage():
            data |= {"entry_id": node.entry_id}
    return data


def result_dict(result: RetrievedMemory, rank: int) -> dict[str, Any]:
    """One search result as JSON-ready data: its rank, score and the reason it was found."""
    return {"rank": rank, "score": round(result.score, 6), "reason": result.reason, **memory_dict(result.node)}
