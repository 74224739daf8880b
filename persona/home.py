"""The home page's view: what a person (or a demo audience) wants first. Plain Python, no Streamlit.

Active goals sorted into overdue / due soon / the rest, episodes from this day in other years, recent entries and
entries per week, and what changed lately (goals Persona saw finished, dropped or postponed, beliefs that changed;
the section is shown only when there is something in it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from persona.models import Entry, Episode, Goal, GoalStatus, NodeType
from persona.store.base import Store
from persona.views import change_rows, entry_density, on_this_day, recent_entries

DUE_SOON_DAYS = 14
RECENT_CHANGES = 5
"""How many of the latest memory changes the home page lists (the Changes page has them all)."""
"""A goal due within this many days counts as due soon."""
GOAL_SCAN_CAP = 2_000
EPISODE_SCAN_CAP = 20_000


@dataclass
class GoalsDue:
    """The person's active goals, by urgency: each list sorted by due date (no due date last)."""

    overdue: list[Goal] = field(default_factory=list)
    due_soon: list[Goal] = field(default_factory=list)
    later: list[Goal] = field(default_factory=list)

    @property
    def count(self) -> int:
        """How many active goals there are in all."""
        return len(self.overdue) + len(self.due_soon) + len(self.later)


@dataclass
class HomeView:
    """Everything the home page shows for one person on one day."""

    goals: GoalsDue
    on_this_day: list[Episode]
    recent: list[Entry]
    weekly: list[dict[str, Any]]
    counts: dict[str, int]
    changes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True for a persona with nothing written yet."""
        return not self.counts.get(NodeType.ENTRY.value)


def goals_due(goals: list[Goal], today: date, *, soon_days: int = DUE_SOON_DAYS) -> GoalsDue:
    """Sort active goals into overdue (due before today), due soon (today to ``soon_days`` ahead) and later."""
    due = GoalsDue()
    for goal in sorted(goals, key=lambda g: (g.due is None, g.due or date.max, g.title)):
        if goal.status is not GoalStatus.ACTIVE:
            continue
        if goal.due is not None and goal.due < today:
            due.overdue.append(goal)
        elif goal.due is not None and (goal.due - today).days <= soon_days:
            due.due_soon.append(goal)
        else:
            due.later.append(goal)
    return due


def days_text(due: date, today: date) -> str:
    """``due today``, ``due in 3 days``, ``5 days overdue``."""
    delta = (due - today).days
    if delta == 0:
        return "due today"
    if delta > 0:
        return f"due in {delta} day{'s' if delta != 1 else ''}"
    return f"{-delta} day{'s' if delta != -1 else ''} overdue"


def home_view(store: Store, user_id: str, *, today: date, recent: int = 5) -> HomeView:
    """The home page for ``user_id`` as of ``today`` (the person's local day)."""
    goals = store.list_nodes(user_id, NodeType.GOAL, status=GoalStatus.ACTIVE.value, limit=GOAL_SCAN_CAP)
    episodes = store.list_nodes(user_id, NodeType.EPISODE, limit=EPISODE_SCAN_CAP)
    return HomeView(
        goals=goals_due(goals, today),  # type: ignore[arg-type]
        on_this_day=on_this_day(episodes, today),  # type: ignore[arg-type]
        recent=recent_entries(store, user_id, limit=recent),
        weekly=entry_density(store, user_id),
        counts=store.stats(user_id),
        changes=change_rows(store, user_id, limit=RECENT_CHANGES),
    )
