"""Export and restore a person's whole graph. ``restore_export(store, embedder, store_a.export_user(u))`` gives back
the same entries, memories, entities and links (the NEXT chain is rebuilt by the store from the dates)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from persona.errors import ValidationError
from persona.llm.base import Embedder
from persona.models import (
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
)
from persona.store.base import EXPORT_FORMAT, Store
from persona.store.common import parse_node


@dataclass
class RestoreReport:
    entries: int = 0
    skipped_duplicates: int = 0
    nodes: int = 0
    links: int = 0


def _parse_export(data: dict[str, Any]) -> tuple[list[AnyNode], list[Link]]:
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise ValidationError(f"not a Persona export (expected format {EXPORT_FORMAT!r})")
    nodes: list[AnyNode] = []
    for number, raw in enumerate(data.get("nodes", []), start=1):
        try:
            nodes.append(parse_node(NodeType(raw["type"]), {k: v for k, v in raw.items() if k != "type"}))
        except (KeyError, ValueError) as exc:
            raise ValidationError(f"node {number} of the export is invalid: {exc}") from exc
    try:
        links = [Link.model_validate(raw) for raw in data.get("links", [])]
    except ValueError as exc:
        raise ValidationError(f"a link of the export is invalid: {exc}") from exc
    return nodes, links


def restore_export(
    store: Store,
    embedder: Embedder,
    data: dict[str, Any],
    *,
    user_id: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> RestoreReport:
    """Write an export back, entry by entry (each entry's memories in one transaction). Into another user the
    nodes get fresh ids; entries the user already has (same text) are skipped with their memories."""
    nodes, links = _parse_export(data)  # the whole file is checked before anything is written
    source_user = check_user_id(data.get("user_id"))
    target = check_user_id(source_user if user_id is None else user_id)  # "" is a bad id, not "the same user"
    ids = {n.id: (n.id if target == source_user else new_id()) for n in nodes}
    nodes = [n.model_copy(update={"id": ids[n.id], "user_id": target}) for n in nodes]
    links = [
        lk.model_copy(update={"source_id": ids.get(lk.source_id, ""), "target_id": ids.get(lk.target_id, "")})
        for lk in links
        if lk.type is not LinkType.NEXT
    ]
    by_entry: dict[str, list[AnyNode]] = defaultdict(list)
    for node in nodes:
        entry_id = getattr(node, "entry_id", None)
        if entry_id is not None:
            by_entry[ids.get(entry_id, entry_id)].append(
                node.model_copy(update={"entry_id": ids.get(entry_id, entry_id)})
            )
    entities = {n.id: n for n in nodes if isinstance(n, Entity)}
    entries = sorted((n for n in nodes if isinstance(n, Entry)), key=lambda e: (e.occurred_at, e.created_at))
    report = RestoreReport()
    store.ensure_user(target)
    used_entities: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        # The content hash includes the user id: recompute it for the target user.
        rehashed = Entry.model_validate(entry.model_dump() | {"content_hash": ""})
        if store.find_entry_by_hash(target, rehashed.content_hash) is not None:
            report.skipped_duplicates += 1
            # Its entities came with it the first time: they are not "loose" ones to write again.
            member_ids = {m.id for m in by_entry.get(entry.id, [])} | {entry.id}
            used_entities.update(lk.target_id for lk in links if lk.source_id in member_ids)
        else:
            # A done entry is stored pending and marked done with its memories, in their transaction: a restore
            # that stops half-way leaves it pending (retried), never "done" without memories.
            was_done = rehashed.status is EntryStatus.DONE
            store.save_entry(rehashed.model_copy(update={"status": EntryStatus.PENDING}) if was_done else rehashed)
            report.entries += 1
            members = by_entry.get(entry.id, [])
            member_ids = {m.id for m in members} | {entry.id}
            own_links = [lk for lk in links if lk.source_id in member_ids]
            mentioned = [entities[lk.target_id] for lk in own_links if lk.target_id in entities]
            used_entities.update(e.id for e in mentioned)
            unique_entities = list({e.id: e for e in mentioned}.values())
            done = [entry.id] if was_done else []
            report.nodes += _write(store, embedder, target, members, unique_entities, own_links, done=done)
            report.links += len(own_links)
        if on_progress:
            on_progress(number, len(entries))
    # Entities no entry mentions are written on their own, except those the user already has (a second restore
    # would merge them into themselves and count them as restored again).
    known = {e.canonical for e in store.list_nodes(target, NodeType.ENTITY, limit=10**9)} if entities else set()
    loose = [e for e in entities.values() if e.id not in used_entities and e.canonical not in known]
    if loose:
        report.nodes += _write(store, embedder, target, [], loose, [])
    return report


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
    for node in [*members, *entities]:
        by_type[node.type].append(node)
    batch = MemoryBatch(
        episodes=by_type[NodeType.EPISODE],  # type: ignore[arg-type]
        psyche=by_type[NodeType.PSYCHE],  # type: ignore[arg-type]
        goals=by_type[NodeType.GOAL],  # type: ignore[arg-type]
        passages=by_type[NodeType.PASSAGE],  # type: ignore[arg-type]
        entities=entities,
        links=links,
    )
    vectors = embedder.embed([node_text(n) for n in batch.nodes()])
    for node, vector in zip(batch.nodes(), vectors, strict=True):
        node.embedding = vector
    store.write_batch(user_id, batch, done_entry_ids=done or [])
    return len(batch.nodes())
