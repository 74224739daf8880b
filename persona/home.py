"""The home page's view: what a person (or a demo audience) wants first. Plain Python, no Streamlit.

Active goals sorted into overdue / due soon / the rest, episodes from this day in other years, recent entries and
entries per week, and what changed lately (goals Persona saw finished, dropped or postponed, beliefs that changed;
the section is shown only when there is something in it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from persona.models import AnyNode, Entry, Episode, Evolving, Goal, GoalStatus, LinkType, NodeType, Revision
from persona.store.base import Store
from persona.views import entry_density, on_this_day, recent_entries, rows_of_changes

DUE_SOON_DAYS = 14
"""A goal due within this many days counts as due soon."""
RECENT_CHANGES = 5
"""How many of the latest memory changes the home page lists (the Changes page has them all)."""
CHANGE_SCAN_ENTRIES = 1_000
""""What changed lately" looks for changes caused by at most this many of the newest entries (read a page at a
time, stopping once the latest changes are found), instead of reading every goal and belief of the person."""
CHANGE_PAGE = 100
GOAL_SCAN_CAP = 2_000
DAY_CAP = 1_000
"""Episodes read per day of another year for "on this day" (a day with more is not a journal)."""


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
    """The home page for ``user_id`` as of ``today`` (the person's local day). Reads what it shows: the active
    goals, this day's episodes of other years (one small read a year), the newest entries and changes, counts."""
    goals = store.list_nodes(user_id, NodeType.GOAL, status=GoalStatus.ACTIVE.value, limit=GOAL_SCAN_CAP)
    return HomeView(
        goals=goals_due(goals, today),  # type: ignore[arg-type]
        on_this_day=episodes_on_this_day(store, user_id, today),
        recent=recent_entries(store, user_id, limit=recent),
        weekly=entry_density(store, user_id),
        counts=store.stats(user_id),
        changes=recent_change_rows(store, user_id, limit=RECENT_CHANGES),
    )


def episodes_on_this_day(store: Store, user_id: str, today: date) -> list[Episode]:
    """Episodes on today's month and day in earlier years, newest first: a read of a few days around that date
    per year back to the first episode (the margin covers any time zone), not a read of every episode."""
    first = store.list_nodes(user_id, NodeType.EPISODE, limit=1, newest_first=False)
    if not first:
        return []
    found: list[AnyNode] = []
    for year in range(today.year - 1, first[0].occurred_at.year - 1, -1):  # type: ignore[union-attr]
        try:
            day = datetime(year, today.month, today.day, tzinfo=UTC)
        except ValueError:  # 29 February in a year without one
            continue
        window = {"start": day - timedelta(days=1), "end": day + timedelta(days=2)}
        found += store.list_nodes(user_id, NodeType.EPISODE, limit=DAY_CAP, **window)  # type: ignore[arg-type]
    return on_this_day(found, today)  # type: ignore[arg-type]


def recent_changes(
    store: Store, user_id: str, *, limit: int = RECENT_CHANGES, scan: int = CHANGE_SCAN_ENTRIES
) -> list[tuple[Evolving, Revision]]:
    """The latest memory changes, newest first: (memory as it is now, the change). A change is dated by the entry
    that caused it, so the newest entries are read a page at a time, with the memories they changed (their
    ``CHANGED_BY`` links), until ``limit`` changes are found that no older entry can outrank."""
    found: dict[str, tuple[Evolving, Revision]] = {}
    for offset in range(0, scan, CHANGE_PAGE):
        entries = store.list_nodes(user_id, NodeType.ENTRY, limit=min(CHANGE_PAGE, scan - offset), offset=offset)
        if not entries:
            break
        entry_ids = {e.id for e in entries}
        links = store.neighbours(user_id, list(entry_ids), link_types=[LinkType.CHANGED_BY])
        for node in store.get_nodes(user_id, [lk.source_id for lk in links if lk.target_id in entry_ids]):
            if isinstance(node, Evolving):
                found |= {r.id: (node, r) for r in node.revisions if r.entry_id in entry_ids}
        newest = sorted(found.values(), key=lambda pair: (pair[1].at, pair[1].learned_at), reverse=True)
        if len(newest) >= limit and newest[limit - 1][1].at > entries[-1].occurred_at:
            break  # every change of an older entry is dated no later than that entry
    return sorted(found.values(), key=lambda pair: (pair[1].at, pair[1].learned_at), reverse=True)[:limit]


def recent_change_rows(store: Store, user_id: str, *, limit: int = RECENT_CHANGES) -> list[dict[str, object]]:
    """The latest memory changes as the home page lists them, in the Changes page's row shape."""
    return rows_of_changes(store, user_id, recent_changes(store, user_id, limit=limit))
