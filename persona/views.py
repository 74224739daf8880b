"""View models for the app: what a page shows, computed from the store with no Streamlit in sight.

Pages stay thin (read widgets, call these, render). Everything here is plain Python and testable on its own; the
functions that read the store take it as their first argument, like the rest of the library.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from persona.context import describe_change
from persona.dates import month_text
from persona.entities import name_match_blocker
from persona.errors import ValidationError
from persona.importers import ImportItem, detect_and_parse
from persona.ingest import IngestResult, ingest_many
from persona.llm.base import Provider
from persona.models import (
    MEMORY_TYPES,
    AnyNode,
    Entity,
    Entry,
    EntryStatus,
    Episode,
    Evolving,
    Goal,
    GoalStatus,
    LinkType,
    MemoryBatch,
    NodeType,
    Psyche,
    Revision,
    Subgraph,
    node_text,
)
from persona.retrieval import RetrievalQuery, RetrievedMemory, retrieve
from persona.store.base import GRAPH_TYPES, Store
from persona.transfer import restore_export
from persona.viz import NodeGroup, group_left_out, node_date, node_kind, node_title, short
from persona.zones import local_zone

TIMELINE_CAP = 150
"""The timeline draws at most this many episodes at once (the newest in the range); the range picks others."""
MEMORY_TABLE_CAP = 2_000
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=^&])")
STATUS_ICONS = {EntryStatus.DONE: "✅", EntryStatus.PENDING: "⏳", EntryStatus.FAILED: "⚠️"}


# -- text and time ---------------------------------------------------------------------------------------------
def safe_markdown(text: str) -> str:
    """User or model text made inert for ``st.markdown``: every markdown, HTML, LaTeX (``$``) and Streamlit
    directive (``:red[...]``) character is backslash-escaped, and line breaks are kept as hard breaks.

    Journal text is data: an imported ``![](http://...)`` must not make the browser fetch anything.
    """
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))
    return escaped.replace("\r\n", "\n").replace("\n", "  \n")


def local_timezone() -> tzinfo:
    """The machine's time zone, with its rules: the day a person picks in the app is their local day."""
    return local_zone()


def entry_datetime(
    day: date, at: time | None = None, *, now: datetime | None = None, tz: tzinfo | None = None
) -> datetime:
    """When an entry happened, from the app's date and optional time: the time given; else now for today, or noon
    for another day (a neutral hour that keeps the day the same in nearby time zones)."""
    zone = tz or local_timezone()
    current = (now or datetime.now(zone)).astimezone(zone)
    if at is not None:
        return datetime.combine(day, at.replace(tzinfo=None), zone)
    if day == current.date():
        return current
    return datetime.combine(day, time(12, 0), zone)


def day_bounds(
    start: date | None, end: date | None, *, tz: tzinfo | None = None
) -> tuple[datetime | None, datetime | None]:
    """A date range picked in the app as the store's half-open [start, end) datetimes (end day included)."""
    zone = tz or local_timezone()
    low = datetime.combine(start, time.min, zone) if start else None
    high = datetime.combine(end + timedelta(days=1), time.min, zone) if end else None
    return low, high


def date_span(store: Store, user_id: str) -> tuple[date, date] | None:
    """The first and last day of the user's entries, or None when there are none."""
    first = store.list_nodes(user_id, NodeType.ENTRY, limit=1, newest_first=False)
    last = store.list_nodes(user_id, NodeType.ENTRY, limit=1, newest_first=True)
    if not first or not last:
        return None
    return first[0].occurred_at.date(), last[0].occurred_at.date()  # type: ignore[union-attr]


def node_label(node: AnyNode, *, limit: int = 70) -> str:
    """A one-line label for pickers: ``Goal · 12 Jun 2026 · Run a half marathon``."""
    parts = [node.type.value, node_date(node), short(node_title(node), limit)]
    return " · ".join(p for p in parts if p)


# -- journal ---------------------------------------------------------------------------------------------------
@dataclass
class MemoryCard:
    """One extracted memory as the journal page shows it."""

    id: str
    type: str
    kind: str
    title: str
    text: str
    entities: list[str] = field(default_factory=list)
    status: str = ""


def memory_cards(batch: MemoryBatch | None, entity_ids: dict[str, str] | None = None) -> list[MemoryCard]:
    """The episodes, psyche and goals of an ingested batch, each with the names of the entities it mentions."""
    if batch is None:
        return []
    names = {e.id: e.name for e in batch.entities}
    mentions: dict[str, list[str]] = defaultdict(list)
    for link in batch.links:
        if link.type is LinkType.MENTIONS and link.target_id in names:
            mentions[link.source_id].append(names[link.target_id])
    cards = []
    for node in [*batch.episodes, *batch.psyche, *batch.goals]:
        text = node.summary if isinstance(node, Episode) else getattr(node, "text", "")
        status = node.status.value if isinstance(node, Goal) else ""
        cards.append(
            MemoryCard(node.id, node.type.value, node_kind(node), node_title(node), text, mentions[node.id], status)
        )
    return cards


def recent_entries(store: Store, user_id: str, *, limit: int = 10) -> list[Entry]:
    """The user's latest entries (by when they happened), failed ones included."""
    return store.list_nodes(user_id, NodeType.ENTRY, limit=limit)  # type: ignore[return-value]


def failed_entries(store: Store, user_id: str) -> list[Entry]:
    """Entries whose processing failed or never finished: the ones a retry would pick up."""
    found: list[Entry] = []
    for status in (EntryStatus.FAILED, EntryStatus.PENDING):
        found.extend(store.list_nodes(user_id, NodeType.ENTRY, status=status.value, limit=1_000))  # type: ignore[arg-type]
    return found


@dataclass
class ImportSummary:
    """What an import did, in counts a page can print."""

    kind: str
    total: int = 0
    done: int = 0
    duplicates: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def message(self) -> str:
        """One sentence for the page."""
        if self.kind == "export":
            return f"Restored {self.done} entries from a Persona export ({self.duplicates} already there)."
        return f"Imported {self.total} entries: {self.done} new, {self.duplicates} already there, {self.failed} failed."


def summarise(results: Iterable[IngestResult]) -> ImportSummary:
    """Counts of an ``ingest_many`` run."""
    summary = ImportSummary(kind="journal")
    for result in results:
        summary.total += 1
        if result.duplicate:
            summary.duplicates += 1
        elif result.ok:
            summary.done += 1
        else:
            summary.failed += 1
            summary.errors.append(f"{result.entry.occurred_at:%Y-%m-%d}: {result.error}")
    return summary


def import_file(
    store: Store,
    provider: Provider,
    user_id: str,
    name: str,
    raw: bytes,
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Import a journal file (markdown, JSON Lines, Day One) or a Persona export into ``user_id``.

    The whole file is parsed and checked before anything is written (``ValidationError`` says what is wrong).
    """
    parsed = detect_and_parse(name, raw)
    if isinstance(parsed, dict):
        report = restore_export(store, provider.embedder, parsed, user_id=user_id, on_progress=on_progress)
        return ImportSummary(
            kind="export",
            total=report.entries + report.skipped_duplicates,
            done=report.entries,
            duplicates=report.skipped_duplicates,
        )
    if not parsed:
        raise ValidationError(f"{name} holds no entries")
    return summarise(
        ingest_many(
            store,
            provider,
            user_id,
            [(item.text, item.occurred_at) for item in parsed if isinstance(item, ImportItem)],
            on_progress=(lambda n, total, _result: on_progress(n, total)) if on_progress else None,
        )
    )


# -- timeline --------------------------------------------------------------------------------------------------
@dataclass
class TimelineItem:
    """An episode of the chain with what hangs off it."""

    episode: Episode
    psyche: list[Psyche] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)
    entry: Entry | None = None
    previous_id: str | None = None
    next_id: str | None = None


@dataclass
class Timeline:
    """The episodes to show (chain order), how many the range held, and every episode of the chain."""

    items: list[TimelineItem]
    in_range: int
    episodes: list[Episode]


def timeline(
    store: Store,
    user_id: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    cap: int = TIMELINE_CAP,
) -> Timeline:
    """The user's chained episodes in order within [start, end), each with its psyche, goals, entities and entry.

    At most ``cap`` are detailed (the newest of the range): the chain walk stays complete through ``chain``.
    """
    chain = store.chain(user_id)
    episodes = [n for n in store.get_nodes(user_id, chain) if isinstance(n, Episode)]
    chosen = [e for e in episodes if (start is None or e.occurred_at >= start) and (end is None or e.occurred_at < end)]
    in_range = len(chosen)
    chosen = chosen[-cap:] if cap else chosen
    return Timeline(items=attach(store, user_id, chosen, chain), in_range=in_range, episodes=episodes)


def attach(store: Store, user_id: str, episodes: Sequence[Episode], chain: Sequence[str]) -> list[TimelineItem]:
    """Fetch, in a few queries, the psyche, goals, entities and entry of each episode."""
    ids = [e.id for e in episodes]
    links = store.neighbours(user_id, ids, link_types=[LinkType.DERIVED_FROM, LinkType.FROM_ENTRY, LinkType.MENTIONS])
    nodes = {
        n.id: n for n in store.get_nodes(user_id, list({lk.source_id for lk in links} | {lk.target_id for lk in links}))
    }
    position = {node_id: i for i, node_id in enumerate(chain)}
    items = {e.id: TimelineItem(episode=e) for e in episodes}
    for link in links:
        if link.type is LinkType.DERIVED_FROM and link.target_id in items:
            node = nodes.get(link.source_id)
            item = items[link.target_id]
            if isinstance(node, Psyche):
                item.psyche.append(node)
            elif isinstance(node, Goal):
                item.goals.append(node)
        elif link.type is LinkType.FROM_ENTRY and link.source_id in items:
            entry = nodes.get(link.target_id)
            items[link.source_id].entry = entry if isinstance(entry, Entry) else None
        elif link.type is LinkType.MENTIONS and link.source_id in items:
            entity = nodes.get(link.target_id)
            if isinstance(entity, Entity):
                items[link.source_id].entities.append(entity)
    for item in items.values():
        at = position.get(item.episode.id)
        if at is not None:
            item.previous_id = chain[at - 1] if at > 0 else None
            item.next_id = chain[at + 1] if at + 1 < len(chain) else None
        item.entities.sort(key=lambda e: e.name.casefold())
    return [items[i] for i in ids]


def timeline_item(store: Store, user_id: str, episode_id: str) -> TimelineItem | None:
    """One episode with its psyche, goals, entities, entry and chain neighbours (None when it is not an episode)."""
    found = store.get_nodes(user_id, [episode_id])
    if not found or not isinstance(found[0], Episode):
        return None
    return attach(store, user_id, [found[0]], store.chain(user_id))[0]


def group_by_month(items: Iterable[TimelineItem]) -> list[tuple[str, list[TimelineItem]]]:
    """Items grouped under ``June 2026`` headings, keeping their order."""
    groups: dict[str, list[TimelineItem]] = {}
    for item in items:
        groups.setdefault(month_text(item.episode.occurred_at), []).append(item)
    return list(groups.items())


def on_this_day(episodes: Iterable[Episode], today: date) -> list[Episode]:
    """Episodes that happened on today's month and day in other years, most recent first."""
    same = [
        e
        for e in episodes
        if (e.occurred_at.month, e.occurred_at.day) == (today.month, today.day) and e.occurred_at.year != today.year
    ]
    return sorted(same, key=lambda e: e.occurred_at, reverse=True)


def entry_density(store: Store, user_id: str, *, limit: int = 100_000) -> list[dict[str, Any]]:
    """Entries per week (weeks start on Monday) for a density chart: ``[{"week": date, "entries": n}]``."""
    entries = store.list_nodes(user_id, NodeType.ENTRY, limit=limit, newest_first=False)
    weeks: dict[date, int] = defaultdict(int)
    for entry in entries:
        day = entry.occurred_at.date()  # type: ignore[union-attr]
        weeks[day - timedelta(days=day.weekday())] += 1
    return [{"week": week, "entries": count} for week, count in sorted(weeks.items())]


# -- graph -----------------------------------------------------------------------------------------------------
@dataclass
class GraphView:
    """What the graph page draws and why: the subgraph, the nodes it is centred on, and the search hits."""

    subgraph: Subgraph
    centre_ids: list[str] = field(default_factory=list)
    hits: list[RetrievedMemory] = field(default_factory=list)
    note: str = ""
    highlight_ids: list[str] = field(default_factory=list)


def graph_view(
    store: Store,
    provider: Provider,
    user_id: str,
    *,
    types: Sequence[NodeType] = GRAPH_TYPES,
    start: datetime | None = None,
    end: datetime | None = None,
    search: str = "",
    focus_id: str | None = None,
    depth: int = 1,
    highlight_ids: Sequence[str] = (),
    limit: int = 300,
) -> GraphView:
    """The subgraph for the graph page. The centre is, in order of precedence: the focused node, the search hits,
    the highlighted chat sources; with none of them, the user's most recent memories and their entities.

    Highlighted passages (chat sources that are an entry's exact words) stand for their episode, which is drawn.
    """
    hits: list[RetrievedMemory] = []
    if highlight_ids:
        drawn = drawable_ids(store, user_id, store.get_nodes(user_id, list(highlight_ids)))
        highlight_ids = list(dict.fromkeys([*highlight_ids, *drawn]))
    else:
        drawn = []
    if focus_id:
        centre, note = [focus_id], "Centred on the focused node."
    elif search.strip():
        query = RetrievalQuery(text=search, limit=12, start=start, end=end)
        hits = retrieve(store, provider.embedder, user_id, query)
        centre = drawable_ids(store, user_id, [h.node for h in hits])
        note = f"Centred on {len(centre)} matches of the search." if centre else "Nothing matches the search."
    elif drawn:
        centre, note = drawn, "Centred on the sources of the last chat answer."
    else:
        centre, note = [], "The most recent memories and the entities they mention."
    if (search.strip() or focus_id) and not centre:
        return GraphView(Subgraph(), [], hits, note, list(highlight_ids))
    subgraph = store.subgraph(
        user_id, center_ids=centre or None, depth=depth, types=types, start=start, end=end, limit=limit
    )
    return GraphView(subgraph, centre, hits, note, list(highlight_ids))


def drawable_ids(store: Store, user_id: str, nodes: Iterable[AnyNode]) -> list[str]:
    """Ids to centre the graph on: drawable nodes as they are; a passage or an entry stands for its episodes."""
    ids: list[str] = []
    entry_ids: list[str] = []
    for node in nodes:
        if node.type in GRAPH_TYPES:
            ids.append(node.id)
        else:
            entry_ids.append(getattr(node, "entry_id", None) or node.id)
    if entry_ids:
        links = store.neighbours(user_id, entry_ids, link_types=[LinkType.FROM_ENTRY])
        ids.extend(lk.source_id for lk in links if lk.target_id in set(entry_ids))
    return list(dict.fromkeys(ids))


GROUP_SCAN_CAP = 5_000
"""At most this many nodes per type are read to group what the node cap left out."""
EXPAND_CAP = 80
"""A double-click adds at most this many neighbours: expanding a hub must not bury the graph."""


def left_out_groups(
    store: Store,
    user_id: str,
    view: GraphView,
    *,
    types: Sequence[NodeType] = GRAPH_TYPES,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[NodeGroup]:
    """Boxes for what the default view's node cap left out: memories by month, entities by kind.

    Only the default (uncentred) view is grouped: a focused or searched view is a neighbourhood, and listing
    everything else the person wrote as "left out" of it would mislead; its cap message says what was cut.
    """
    if not view.subgraph.truncated or view.centre_ids:
        return []
    drawn = {n.id for n in view.subgraph.nodes}
    left_out = [
        node
        for kind in types
        for node in store.list_nodes(user_id, kind, start=start, end=end, limit=GROUP_SCAN_CAP)
        if node.id not in drawn
    ]
    return group_left_out(left_out)


def expand_view(
    store: Store, user_id: str, view: GraphView, node_ids: Sequence[str], *, types: Sequence[NodeType] = GRAPH_TYPES
) -> GraphView:
    """The view with the neighbours of ``node_ids`` added (what a double-click on a node asks for)."""
    if not node_ids:
        return view
    extra = store.subgraph(user_id, center_ids=list(node_ids), depth=1, types=types, limit=EXPAND_CAP)
    nodes = {n.id: n for n in view.subgraph.nodes}
    nodes.update({n.id: n for n in extra.nodes if n.id not in nodes})
    links = {(lk.source_id, lk.target_id, lk.type): lk for lk in [*view.subgraph.links, *extra.links]}
    merged = Subgraph(
        nodes=list(nodes.values()),
        links=list(links.values()),
        truncated=view.subgraph.truncated or extra.truncated,
        total_nodes=max(view.subgraph.total_nodes, len(nodes)),
    )
    added = len(nodes) - len(view.subgraph.nodes)
    note = f"{view.note} Expanded {len(node_ids)} node{'s' if len(node_ids) != 1 else ''} (+{added} neighbours)."
    return GraphView(merged, view.centre_ids, view.hits, note, view.highlight_ids)


@dataclass
class LinkView:
    """One link of a node as the details panel lists it."""

    type: str
    direction: str
    other_id: str
    other_label: str


@dataclass
class NodeDetails:
    """Everything the details panel shows about one node."""

    node: AnyNode
    text: str
    links: list[LinkView]
    entry: Entry | None


def node_details(store: Store, user_id: str, node_id: str, *, max_links: int = 60) -> NodeDetails | None:
    """A node's text, its links (with the label of the node at the other end) and its source entry."""
    found = store.get_nodes(user_id, [node_id])
    if not found:
        return None
    node = found[0]
    links = [lk for lk in store.neighbours(user_id, [node_id]) if lk.type is not LinkType.PART_OF]
    others = {
        n.id: n
        for n in store.get_nodes(user_id, [lk.target_id if lk.source_id == node_id else lk.source_id for lk in links])
    }
    views = []
    for link in links[:max_links]:
        outgoing = link.source_id == node_id
        other = others.get(link.target_id if outgoing else link.source_id)
        if other is not None:
            views.append(LinkView(link.type.value, "→" if outgoing else "←", other.id, node_label(other)))
    entry_id = getattr(node, "entry_id", None)
    entry = None
    if entry_id:
        fetched = store.get_nodes(user_id, [entry_id])
        entry = fetched[0] if fetched and isinstance(fetched[0], Entry) else None
    return NodeDetails(node=node, text=full_text(node), links=views, entry=entry)


def full_text(node: AnyNode) -> str:
    """The whole text of a node: an episode's summary, a goal's or psyche's text, an entity's names."""
    match node:
        case Episode():
            return node.summary
        case Entity():
            return ", ".join([node.name, *node.aliases])
    return getattr(node, "text", "")


# -- chat ------------------------------------------------------------------------------------------------------
def share_text(shares: dict[str, float]) -> str:
    """Signal shares as small percentages: ``vector 46% · text 31% · recency 9%`` (zero shares left out)."""
    parts = sorted(((k, v) for k, v in shares.items() if v >= 0.005), key=lambda kv: -kv[1])
    return " · ".join(f"{k} {v:.0%}" for k, v in parts)


def source_rows(sources: Iterable[RetrievedMemory]) -> list[dict[str, str]]:
    """The sources of an answer as plain, serialisable rows (kept in the chat history)."""
    return [
        {
            "id": s.node.id,
            "type": s.node.type.value,
            "kind": node_kind(s.node),
            "date": node_date(s.node),
            "text": short(full_text(s.node) if isinstance(s.node, Episode) else node_title(s.node), 300),
            "title": short(node_title(s.node), 120),
            "reason": s.reason,
            "shares": share_text(s.shares),
        }
        for s in sources
    ]


# -- memories --------------------------------------------------------------------------------------------------
def memory_rows(
    store: Store,
    user_id: str,
    *,
    types: Sequence[NodeType] = MEMORY_TYPES,
    status: str | None = None,
    contains: str = "",
    limit: int = MEMORY_TABLE_CAP,
) -> list[dict[str, Any]]:
    """The user's memories as table rows, newest first, filtered by type, goal status and text; ``until`` is when a
    goal or psyche memory stopped being true (None while it is)."""
    if status:
        types = [t for t in types if t is NodeType.GOAL]  # a status filter is about goals: other types have none
    nodes = store.list_many(user_id, types, status=status or None, limit=limit) if types else []
    needle = contains.strip().casefold()
    if needle:
        nodes = [n for n in nodes if needle in f"{node_title(n)} {full_text(n)}".casefold()]
    return [
        {
            "id": n.id,
            "type": n.type.value,
            "kind": node_kind(n),
            "date": getattr(n, "occurred_at", None),
            "title": node_title(n) if not isinstance(n, Psyche) else "",
            "text": full_text(n),
            "status": n.status.value if isinstance(n, Goal) else "",
            "until": n.valid_until if isinstance(n, Evolving) else None,
        }
        for n in nodes[:limit]
    ]


def memory_changes(node: AnyNode, *, title: str | None, text: str | None, status: str | None) -> dict[str, Any]:
    """The fields to change on ``node`` for the edits made in the app (only what actually changed)."""
    changes: dict[str, Any] = {}
    text_field = "summary" if isinstance(node, Episode) else "text"
    if title is not None and hasattr(node, "title") and title.strip() != node.title:
        changes["title"] = title.strip()
    if text is not None and hasattr(node, text_field) and text.strip() != getattr(node, text_field):
        changes[text_field] = text.strip()
    if status is not None and isinstance(node, Goal) and status != node.status.value:
        changes["status"] = GoalStatus(status)
    return changes


def entities(store: Store, user_id: str, *, limit: int = 5_000) -> list[Entity]:
    """The user's entities by name (for the merge pickers)."""
    found = store.list_nodes(user_id, NodeType.ENTITY, limit=limit)
    return sorted((e for e in found if isinstance(e, Entity)), key=lambda e: e.name.casefold())


def change_rows(store: Store, user_id: str, *, limit: int = 200) -> list[dict[str, object]]:
    """The user's memory changes, newest first, as the Changes page lists them (see ``rows_of_changes``)."""
    from persona.revisions import changes_of  # imported here: revisions imports ingest, which views imports too

    return rows_of_changes(store, user_id, changes_of(store, user_id, limit=limit))  # read once: every goal and belief


def rows_of_changes(
    store: Store, user_id: str, changes: Sequence[tuple[Evolving, Revision]]
) -> list[dict[str, object]]:
    """Changes as the Changes and Home pages list them: when, what changed (goal done, dropped, postponed; "changed
    your mind": old -> new), the sentence that said so, and whether it was confirmed."""
    replacements = store.get_nodes(user_id, [r.by_id for _, r in changes if r.by_id])
    new_text = {n.id: _memory_words(n) for n in replacements}
    return [
        {
            "memory_id": node.id,
            "revision_id": revision.id,
            "date": revision.at,
            "change": revision.change,
            "memory": changed_what(_memory_words(node), new_text.get(revision.by_id or "")),
            "description": describe_change(revision),
            "confirmed": revision.confirmed,
        }
        for node, revision in changes
    ]


def name_match_rows(store: Store, user_id: str) -> list[dict[str, object]]:
    """The automatic name matches, newest first, as the Changes page lists them: the name as written, who it was
    taken for, by which rule, when, and whether it can be undone now (only an entity's latest match can)."""
    from persona.revisions import name_matches  # imported here: revisions imports ingest, which views imports too

    rows: list[dict[str, object]] = []
    for entity, match in name_matches(store, user_id):
        rows.append(
            {
                "entity_id": entity.id,
                "match_id": match["id"],
                "date": datetime.fromisoformat(match["at"]),
                "name": match["name"],
                "entity": entity.name,
                "rule": match["rule"],
                "entry_id": match["entry_id"],
                "undoable": name_match_blocker(entity, match) is None,
            }
        )
    return rows


def _memory_words(node: AnyNode) -> str:
    return node.title if isinstance(node, Goal) else node_text(node)


# -- changes on the timeline, a memory's history -------------------------------------------------------------------
CHANGE_HEADLINES = {
    "done": "Goal done",
    "dropped": "Goal dropped",
    "postponed": "Goal postponed",
    "superseded": "Changed your mind",
}
"""How each kind of change is named where it is marked (the Timeline, a memory's history)."""
CHANGE_COLOURS = {"done": "green", "dropped": "red", "postponed": "blue", "superseded": "violet"}
"""Badge colour per kind of change, so a change stands out from the memories around it."""
MEMORY_FOCUS_KEY = "memories_focus"
"""Session key a page sets to open one memory (its history) on the Memories page."""


@dataclass
class ChangeMark:
    """A change Persona made to a memory, dated by the entry that caused it: ``headline`` says what changed
    ("Goal dropped: Learn the cello", "Changed your mind: I love coffee → I quit coffee")."""

    memory_id: str
    revision_id: str
    at: datetime
    change: str
    label: str
    what: str
    sentence: str
    entry_id: str | None
    confirmed: bool

    @property
    def headline(self) -> str:
        """``<label>: <what>``, e.g. ``Changed your mind: I love coffee → I quit coffee``."""
        return f"{self.label}: {self.what}"


@dataclass
class TimelineRow:
    """One row of the timeline: an episode, or a change marked at the date of the entry that caused it."""

    at: datetime
    item: TimelineItem | None = None
    change: ChangeMark | None = None


def change_label(change: str) -> str:
    """The name of a kind of change: ``Goal done``, ``Changed your mind``."""
    return CHANGE_HEADLINES.get(change, change.capitalize())


def changed_what(memory: str, replacement: str | None = None) -> str:
    """What a change is about: the memory, or ``<old> → <new>`` when another memory replaced it."""
    return f"{memory} → {replacement}" if replacement else memory


def change_marks(
    store: Store, user_id: str, *, start: datetime | None = None, end: datetime | None = None
) -> list[ChangeMark]:
    """The user's memory changes whose causing entry falls in [start, end), oldest first."""
    from persona.revisions import changes_caused_between  # revisions imports ingest, which views imports too

    changes = changes_caused_between(store, user_id, start=start, end=end)
    replacements = {n.id: _memory_words(n) for n in store.get_nodes(user_id, [r.by_id for _, r in changes if r.by_id])}
    marks = [
        ChangeMark(
            memory_id=node.id,
            revision_id=revision.id,
            at=revision.at,
            change=revision.change,
            label=change_label(revision.change),
            what=changed_what(_memory_words(node), replacements.get(revision.by_id or "")),
            sentence=revision.sentence,
            entry_id=revision.entry_id,
            confirmed=revision.confirmed,
        )
        for node, revision in changes
    ]
    return sorted(marks, key=lambda m: m.at)


def timeline_rows(
    items: Sequence[TimelineItem],
    marks: Sequence[ChangeMark],
    *,
    changes_only: bool = False,
    thread: str | None = None,
    newest_first: bool = False,
) -> list[TimelineRow]:
    """The timeline's rows: the episodes and the changes, each change right after the episode of the entry that
    caused it. ``changes_only`` keeps only the changes; with a ``thread`` (the items already follow it) a change is
    kept when it is of that memory or was caused by an entry of the thread."""
    thread_entries = {item.episode.entry_id for item in items}
    kept = [m for m in marks if thread is None or m.memory_id == thread or m.entry_id in thread_entries]
    # Sort on (time, episode before its changes, position): stable either way round, so in newest-first order a
    # change still follows the entry that caused it.
    keyed = [((m.at.timestamp(), 1, i), TimelineRow(at=m.at, change=m)) for i, m in enumerate(kept)]
    if not changes_only:
        keyed += [
            ((it.episode.occurred_at.timestamp(), 0, i), TimelineRow(at=it.episode.occurred_at, item=it))
            for i, it in enumerate(items)
        ]
    if newest_first:
        keyed.sort(key=lambda pair: (-pair[0][0], pair[0][1], pair[0][2]))
    else:
        keyed.sort(key=lambda pair: pair[0])
    return [row for _, row in keyed]


CHANGES_LANE = "Changes"
"""The timeline band's lane for changes, above the goals, psyche and episodes."""


def change_band_rows(marks: Iterable[ChangeMark]) -> list[dict[str, Any]]:
    """One row per change for the timeline band's Changes lane, in the shape of ``timeline_band.band_rows``."""
    return [
        {"when": m.at.isoformat(), "lane": CHANGES_LANE, "label": short(m.headline, 80), "id": m.memory_id, "size": 90}
        for m in marks
    ]


def group_rows_by_month(rows: Iterable[TimelineRow]) -> list[tuple[str, list[TimelineRow]]]:
    """Timeline rows grouped under ``June 2026`` headings, keeping their order."""
    groups: dict[str, list[TimelineRow]] = {}
    for row in rows:
        groups.setdefault(month_text(row.at), []).append(row)
    return list(groups.items())


@dataclass
class HistoryStep:
    """One change of a memory as its history lists it; only the ``latest`` can be undone or edited."""

    revision_id: str
    change: str
    at: datetime
    label: str
    what: str
    sentence: str
    entry_id: str | None
    confirmed: bool
    automatic: bool
    latest: bool


@dataclass
class MemoryHistory:
    """A goal's or psyche memory's life: when it became true, when it stopped (None: still true), when Persona
    learned it, what replaced it and what it replaced (SUPERSEDES), and its changes, oldest first."""

    memory: Goal | Psyche
    became_true: datetime
    stopped: datetime | None
    learned: datetime
    replaced_by: list[str]
    replaces: list[str]
    steps: list[HistoryStep]


def memory_history(store: Store, user_id: str, node_id: str) -> MemoryHistory | None:
    """The history of one goal or psyche memory (None for another kind of node, or one that is gone)."""
    found = store.get_nodes(user_id, [node_id])
    if not found or not isinstance(found[0], Goal | Psyche):
        return None
    node = found[0]
    links = store.neighbours(user_id, [node_id], link_types=[LinkType.SUPERSEDES])
    newer = [lk.source_id for lk in links if lk.target_id == node_id]
    older = [lk.target_id for lk in links if lk.source_id == node_id]
    others = {n.id: n for n in store.get_nodes(user_id, [*newer, *older])}
    replacement = {r.by_id: _memory_words(others[r.by_id]) for r in node.revisions if r.by_id in others}
    steps = [
        HistoryStep(
            revision_id=r.id,
            change=r.change,
            at=r.at,
            label=change_label(r.change),
            what=changed_what(_memory_words(node), replacement.get(r.by_id or "")),
            sentence=r.sentence,
            entry_id=r.entry_id,
            confirmed=r.confirmed,
            automatic=r.automatic,
            latest=i == len(node.revisions) - 1,
        )
        for i, r in enumerate(node.revisions)
    ]
    return MemoryHistory(
        memory=node,
        became_true=node.valid_from or node.occurred_at,
        stopped=node.valid_until,
        learned=node.learned_at or node.created_at,
        replaced_by=[node_label(others[i]) for i in newer if i in others],
        replaces=[node_label(others[i]) for i in older if i in others],
        steps=steps,
    )
