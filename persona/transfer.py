"""Export and restore a person's whole graph. ``restore_export(store, embedder, store_a.export_user(u))`` gives back
the same entries, memories, entities and links (the NEXT chain is rebuilt by the store from the dates).

A restore is planned in full before anything is written: the file's shape, duplicate ids, memories and links that
name nothing in the file, and every collision with what the user already has. Only then are entries written, one at
a time (each with its memories, in one transaction).

Collisions, for an entry of the backup whose id the user already has:
- same text and date: "already there", skipped with its memories (so is an entry whose text the user already has
  on that day under another id);
- changed since the backup (text or date differ): a conflict. By default the restore is refused, naming the entries;
  ``on_conflict`` chooses instead: ``keep-mine`` (skip the backup's version), ``replace`` (delete the user's entry
  with its memories and write the backup's), ``keep-both`` (write the backup's version as a new entry beside it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from persona.errors import RestoreConflictError, ValidationError
from persona.llm.base import Embedder
from persona.models import (
    LINK_ENDPOINTS,
    AnyNode,
    Entity,
    Entry,
    EntryStatus,
    Link,
    LinkType,
    MemoryBatch,
    NodeType,
    check_user_id,
    new_id,
    node_text,
    one_line_error,
)
from persona.store.base import EXPORT_FORMAT, Store
from persona.store.common import parse_node


class OnConflict(StrEnum):
    """What a restore does with an entry of the backup that the user has changed since."""

    REFUSE = "refuse"
    KEEP_MINE = "keep-mine"
    REPLACE = "replace"
    KEEP_BOTH = "keep-both"


@dataclass
class RestoreReport:
    entries: int = 0
    skipped_duplicates: int = 0
    nodes: int = 0
    links: int = 0
    conflicts_kept_mine: int = 0
    conflicts_replaced: int = 0
    conflicts_kept_both: int = 0


@dataclass
class _Plan:
    """What a restore will write, decided before the first write."""

    entries: list[Entry] = field(default_factory=list)
    members: dict[str, list[AnyNode]] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)
    entities: dict[str, Entity] = field(default_factory=dict)
    entity_targets: set[str] = field(default_factory=set)
    """entities of the file that the user already has under the same id (kept as the user has them)"""
    replace: set[str] = field(default_factory=set)
    report: RestoreReport = field(default_factory=RestoreReport)
    skipped_entities: set[str] = field(default_factory=set)
    """entities mentioned by entries the restore skips (already there, or kept as the user has them): they came with
    those entries the first time, so they are not loose entities to write again"""

    def skip_entry(self, entry_id: str) -> None:
        """Leave an entry out of the restore, and its entities out of the loose ones."""
        members = {m.id for m in self.members.get(entry_id, [])} | {entry_id}
        self.skipped_entities.update(lk.target_id for lk in self.links if lk.source_id in members)


def _items(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ValidationError(f'the export\'s "{key}" must be a list, not {type(value).__name__}')
    return value


def _parse_node(number: int, raw: Any) -> AnyNode:
    if not isinstance(raw, dict):
        raise ValidationError(f"node {number} of the export is not an object")
    try:
        node_type = NodeType(raw.get("type"))
    except (ValueError, TypeError):
        raise ValidationError(f"node {number} of the export has no known type") from None
    fields = {k: v for k, v in raw.items() if k != "type"}
    if node_type is NodeType.ENTITY:
        fields.pop("canonical", None)  # recomputed from the name: a file never decides which entity merges where
    try:
        return parse_node(node_type, fields)  # fields a newer release wrote are kept aside, as the stores keep them
    except PydanticValidationError as exc:
        raise ValidationError(f"node {number} of the export is invalid: {one_line_error(exc)}") from None


def _parse_export(data: Any) -> tuple[list[AnyNode], list[Link]]:
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise ValidationError(f"not a Persona export (expected format {EXPORT_FORMAT!r})")
    nodes = [_parse_node(number, raw) for number, raw in enumerate(_items(data, "nodes"), start=1)]
    links = []
    for number, raw in enumerate(_items(data, "links"), start=1):
        try:
            links.append(Link.model_validate(raw))
        except PydanticValidationError as exc:
            raise ValidationError(f"link {number} of the export is invalid: {one_line_error(exc)}") from None
    _check_ids(nodes, links)
    return nodes, links


def _check_ids(nodes: list[AnyNode], links: list[Link]) -> None:
    """Refuse a file whose ids repeat, whose memories name no entry of the file, or whose links name no node of it:
    restored, they would collide or be dropped without a word."""
    seen: set[str] = set()
    repeated = [n.id for n in nodes if n.id in seen or seen.add(n.id)]  # type: ignore[func-returns-value]
    if repeated:
        raise ValidationError(f"the export has {len(repeated)} repeated node id(s): {_names(repeated)}")
    entry_ids = {n.id for n in nodes if isinstance(n, Entry)}
    orphans = [n.id for n in nodes if getattr(n, "entry_id", None) is not None and n.entry_id not in entry_ids]  # type: ignore[union-attr]
    if orphans:
        raise ValidationError(
            f"the export has {len(orphans)} memory(ies) whose entry is not in the file: {_names(orphans)}"
        )
    dangling = [f"{lk.source_id} -> {lk.target_id}" for lk in links if not {lk.source_id, lk.target_id} <= seen]
    if dangling:
        raise ValidationError(f"the export has {len(dangling)} link(s) to nodes not in the file: {_names(dangling)}")


def _names(values: list[str], limit: int = 5) -> str:
    """The first few of ``values`` (each cut short), then how many more: a refusal stays one readable line."""
    shown = ", ".join(v[:80] for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def restore_export(
    store: Store,
    embedder: Embedder,
    data: dict[str, Any],
    *,
    user_id: str | None = None,
    on_conflict: OnConflict | str = OnConflict.REFUSE,
    on_progress: Callable[[int, int], None] | None = None,
) -> RestoreReport:
    """Write an export back, entry by entry (each entry's memories in one transaction), into ``user_id`` (default:
    the export's own user). Into another user the nodes get fresh ids. The whole file and every collision are
    checked before anything is written: a refusal (``ValidationError``, ``RestoreConflictError``) leaves the store
    as it was. ``on_conflict`` says what to do with entries changed since the backup (see the module docstring)."""
    policy = _policy(on_conflict)
    nodes, links = _parse_export(data)
    source_user = check_user_id(data.get("user_id"))
    target = check_user_id(source_user if user_id is None else user_id)  # "" is a bad id, not "the same user"
    plan = _plan(store, nodes, links, target, same_user=target == source_user, policy=policy)
    return _execute(store, embedder, target, plan, on_progress)


def _policy(value: OnConflict | str) -> OnConflict:
    try:
        return OnConflict(value)
    except ValueError:
        raise ValidationError(
            f"unknown conflict choice {str(value)[:40]!r}: use one of {', '.join(OnConflict)}"
        ) from None


def _plan(
    store: Store, nodes: list[AnyNode], links: list[Link], target: str, *, same_user: bool, policy: OnConflict
) -> _Plan:
    plan = _Plan()
    _check_link_types(nodes, links)
    mine = {n.id: n for n in _existing(store, target, [n.id for n in nodes])} if same_user else {}
    ids = _target_ids(store, nodes, mine, same_user=same_user)
    nodes = [_with_revision_ids(n.model_copy(update={"id": ids[n.id], "user_id": target}), ids) for n in nodes]
    for node in nodes:
        entry_id = getattr(node, "entry_id", None)
        if entry_id is not None:
            plan.members.setdefault(ids[entry_id], []).append(node.model_copy(update={"entry_id": ids[entry_id]}))
    plan.links = [
        lk.model_copy(update={"source_id": ids[lk.source_id], "target_id": ids[lk.target_id]})
        for lk in links
        if lk.type is not LinkType.NEXT
    ]
    plan.entities = {n.id: n for n in nodes if isinstance(n, Entity)}
    plan.entity_targets = {i for i in plan.entities if isinstance(mine.get(i), Entity)}
    conflicts: list[Entry] = []
    hashes: set[str] = set()
    for entry in sorted((n for n in nodes if isinstance(n, Entry)), key=lambda e: (e.occurred_at, e.created_at)):
        stored = mine.get(entry.id)
        if isinstance(stored, Entry) and (stored.text, stored.occurred_at) != (entry.text, entry.occurred_at):
            conflicts.append(stored)
            chosen = _resolve(plan, policy, _rehashed(entry))
            if chosen is not None:
                plan.entries.append(chosen)
            else:
                plan.skip_entry(entry.id)
            continue
        rehashed = _rehashed(entry)
        if (
            stored is not None
            or rehashed.content_hash in hashes
            or store.find_entry_by_hash(target, rehashed.content_hash)
        ):
            plan.report.skipped_duplicates += 1
            plan.skip_entry(entry.id)
            continue
        hashes.add(rehashed.content_hash)
        plan.entries.append(rehashed)
    if conflicts and policy is OnConflict.REFUSE:
        raise RestoreConflictError([(e.id, f"{e.occurred_at:%Y-%m-%d}", e.text) for e in conflicts])
    return plan


def _rehashed(entry: Entry) -> Entry:
    """The entry with its content hash computed again (the hash includes the user id, which may have changed)."""
    return Entry.model_validate(entry.model_dump() | {"content_hash": ""})


def _check_link_types(nodes: list[AnyNode], links: list[Link]) -> None:
    """Refuse a link between node types that never link (it would be written, or fail half-way)."""
    types = {n.id: n.type for n in nodes}
    for link in links:
        sources, targets = LINK_ENDPOINTS[link.type]
        source, target = types[link.source_id], types[link.target_id]
        if source not in sources or target not in targets:
            raise ValidationError(
                f"the export has a {link.type.value} link from a {source.value} to a {target.value}, which never link"
            )


def _resolve(plan: _Plan, policy: OnConflict, entry: Entry) -> Entry | None:
    """An entry changed since the backup: what to write for it under ``policy`` (None: nothing)."""
    if policy is OnConflict.KEEP_MINE:
        plan.report.conflicts_kept_mine += 1
        return None
    if policy is OnConflict.REPLACE:
        plan.report.conflicts_replaced += 1
        plan.replace.add(entry.id)
        return entry
    if policy is OnConflict.KEEP_BOTH:
        plan.report.conflicts_kept_both += 1
        return _renamed(plan, entry)
    return None  # refused once every conflict is known


def _renamed(plan: _Plan, entry: Entry) -> Entry:
    """The entry and its memories under fresh ids (written beside the user's own version)."""
    fresh = entry.model_copy(update={"id": new_id()})
    members = plan.members.pop(entry.id, [])
    renamed = {m.id: new_id() for m in members} | {entry.id: fresh.id}
    plan.members[fresh.id] = [m.model_copy(update={"id": renamed[m.id], "entry_id": fresh.id}) for m in members]
    plan.links = [
        lk.model_copy(
            update={
                "source_id": renamed.get(lk.source_id, lk.source_id),
                "target_id": renamed.get(lk.target_id, lk.target_id),
            }
        )
        for lk in plan.links
    ]
    return fresh


def _target_ids(store: Store, nodes: list[AnyNode], mine: dict[str, AnyNode], *, same_user: bool) -> dict[str, str]:
    """The id each node gets: fresh ones into another user; into the same user its own, unless another user's node
    holds it (a crafted file) or the user's node of that id is something else (another type or another entry)."""
    if not same_user:
        return {n.id: new_id() for n in nodes}
    taken = store.ids_in_use([n.id for n in nodes]) - set(mine)
    for node in nodes:
        held = mine.get(node.id)
        if held is not None and (
            held.type is not node.type or getattr(held, "entry_id", None) != getattr(node, "entry_id", None)
        ):
            taken.add(node.id)
    return {n.id: (new_id() if n.id in taken else n.id) for n in nodes}


def _existing(store: Store, user_id: str, ids: Iterable[str]) -> list[AnyNode]:
    ids = list(ids)
    found: list[AnyNode] = []
    for start in range(0, len(ids), 1000):
        found.extend(store.get_nodes(user_id, ids[start : start + 1000]))
    return found


def _execute(
    store: Store, embedder: Embedder, target: str, plan: _Plan, on_progress: Callable[[int, int], None] | None
) -> RestoreReport:
    report = plan.report
    store.ensure_user(target)
    if plan.replace:
        # The user's versions go first, with their memories; entities left with no mention go with them, so which
        # entities the user still has is looked up again.
        for entry_id in plan.replace:
            store.delete_node(target, entry_id)
        still = {n.id for n in _existing(store, target, plan.entity_targets)}
        plan.entity_targets &= still
    used_entities: set[str] = set()
    total = len(plan.entries)
    for number, entry in enumerate(plan.entries, start=1):
        # A done entry is stored pending and marked done with its memories, in their transaction: a restore
        # that stops half-way leaves it pending (retried), never "done" without memories.
        was_done = entry.status is EntryStatus.DONE
        store.save_entry(entry.model_copy(update={"status": EntryStatus.PENDING}) if was_done else entry)
        report.entries += 1
        members = plan.members.get(entry.id, [])
        member_ids = {m.id for m in members} | {entry.id}
        own_links = [lk for lk in plan.links if lk.source_id in member_ids and lk.type not in CHANGE_LINKS]
        mentioned = [plan.entities[lk.target_id] for lk in own_links if lk.target_id in plan.entities]
        used_entities.update(e.id for e in mentioned)
        new_entities = list({e.id: e for e in mentioned if e.id not in plan.entity_targets}.values())
        report.nodes += _write(
            store, embedder, target, members, new_entities, own_links, done=[entry.id] if was_done else []
        )
        report.links += len(own_links)
        if on_progress:
            on_progress(number, total)
    leave_out = used_entities | plan.entity_targets | plan.skipped_entities
    loose = [e for i, e in plan.entities.items() if i not in leave_out]
    if loose:
        report.nodes += _write(store, embedder, target, [], loose, [])
    # Changes of mind join memories of different entries: linked once every entry is written.
    written = {m.id for entry in plan.entries for m in plan.members.get(entry.id, [])} | {e.id for e in plan.entries}
    changes = [lk for lk in plan.links if lk.type in CHANGE_LINKS and {lk.source_id, lk.target_id} <= written]
    if changes:
        store.revise(target, [], add_links=changes)
        report.links += len(changes)
    return report


CHANGE_LINKS = (LinkType.SUPERSEDES, LinkType.CHANGED_BY)


def _with_revision_ids(node: AnyNode, ids: dict[str, str]) -> AnyNode:
    """A memory whose revisions name the causing entry and the replacing memory by their ids in the target."""
    if isinstance(node, Entity):
        return _with_entity_ids(node, ids)
    revisions = getattr(node, "revisions", None)
    if not revisions:
        return node
    moved = [
        r.model_copy(
            update={"entry_id": ids.get(r.entry_id or "", r.entry_id), "by_id": ids.get(r.by_id or "", r.by_id)}
        )
        for r in revisions
    ]
    return node.model_copy(update={"revisions": moved})


def _with_entity_ids(entity: Entity, ids: dict[str, str]) -> Entity:
    """An entity whose dated facts and name matches name entries and mentions by their ids in the target (a match
    the restored user undoes moves the target's mentions)."""
    if not entity.facts and not entity.matches:
        return entity
    facts = [f.model_copy(update={"entry_id": ids.get(f.entry_id or "", f.entry_id)}) for f in entity.facts]
    matches = [
        m
        | {
            "entry_id": ids.get(m.get("entry_id") or "", m.get("entry_id")),
            "sources": [ids.get(i, i) for i in m.get("sources", [])],
            "moved": [ids.get(i, i) for i in m.get("moved", [])],
            "entity": {**m.get("entity", {}), "user_id": entity.user_id},
        }
        for m in entity.matches
    ]
    return entity.model_copy(update={"facts": facts, "matches": matches})


def _batch(by_type: dict[NodeType, list[AnyNode]], entities: list[Entity], links: list[Link]) -> MemoryBatch:
    return MemoryBatch(
        episodes=by_type[NodeType.EPISODE],  # type: ignore[arg-type]
        psyche=by_type[NodeType.PSYCHE],  # type: ignore[arg-type]
        goals=by_type[NodeType.GOAL],  # type: ignore[arg-type]
        passages=by_type[NodeType.PASSAGE],  # type: ignore[arg-type]
        entities=entities or by_type[NodeType.ENTITY],  # type: ignore[arg-type]
        links=links,
    )


def _write(
    store: Store,
    embedder: Embedder,
    user_id: str,
    members: list[AnyNode],
    entities: list[Entity],
    links: list[Link],
    *,
    done: list[str] | None = None,
) -> int:
    by_type: dict[NodeType, list[AnyNode]] = defaultdict(list)
    for node in members:
        by_type[node.type].append(node)
    batch = _batch(by_type, entities, links)
    vectors = embedder.embed([node_text(n) for n in batch.nodes()])
    for node, vector in zip(batch.nodes(), vectors, strict=True):
        node.embedding = vector
    store.write_batch(user_id, batch, done_entry_ids=done or [])
    return len(batch.nodes())
