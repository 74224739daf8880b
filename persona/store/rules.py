"""The domain rules both stores share, written once over a backend's ``StoreTransaction`` primitives: fetching
what a caller named, the cascade plan of a delete, alias merging, marking entries done, the chain walk."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from persona.entities import current_relation, merge_facts, name_match_blocker
from persona.errors import DuplicateError, NodeNotFoundError, ValidationError
from persona.models import AnyNode, Entity, EntityFact, Entry, EntryStatus, LinkType, NodeType, new_id
from persona.store.common import possible_id

if TYPE_CHECKING:
    from persona.store.base import StoreTransaction

N = TypeVar("N")
BATCH = 500
"""Ids per primitive call: SQLite binds at most 32,766 values per statement, and a smaller list plans better."""


def get_one(tx: StoreTransaction, user_id: str, node_id: str) -> AnyNode:
    """One node of this user, or ``NodeNotFoundError`` (an id that cannot exist is not sent to the database)."""
    found = tx.get(user_id, [node_id]) if possible_id(node_id) else []
    if not found:
        raise NodeNotFoundError(node_id, user_id)
    return found[0]


def as_entry(node: AnyNode) -> Entry:
    """``node`` if it is an entry, else a clear ``ValidationError``."""
    if not isinstance(node, Entry):
        raise ValidationError(f"{node.id} is not an entry")
    return node


def get_batched(tx: StoreTransaction, user_id: str, ids: Sequence[str]) -> list[AnyNode]:
    """The user's nodes among ``ids``, fetched ``BATCH`` at a time."""
    return [node for start in range(0, len(ids), BATCH) for node in tx.get(user_id, ids[start : start + BATCH])]


def links_batched(
    tx: StoreTransaction, user_id: str, ids: Sequence[str], kinds: Sequence[str]
) -> list[tuple[str, str, str]]:
    """The links touching ``ids``, fetched ``BATCH`` ids at a time."""
    parts = (ids[start : start + BATCH] for start in range(0, len(ids), BATCH))
    return [link for part in parts for link in tx.links(user_id, part, kinds)]


def mark_done(tx: StoreTransaction, user_id: str, entry_ids: Sequence[str]) -> None:
    """Set entries' status to done and clear their error; an entry done already (processed meanwhile elsewhere)
    raises ``DuplicateError`` so its memories are not written twice."""
    if not entry_ids:
        return
    wanted = list(dict.fromkeys(entry_ids))
    found = {node.id: node for node in get_batched(tx, user_id, [i for i in wanted if possible_id(i)])}
    done = []
    for entry_id in wanted:
        if entry_id not in found:
            raise NodeNotFoundError(entry_id, user_id)
        entry = as_entry(found[entry_id])
        if entry.status is EntryStatus.DONE:
            raise DuplicateError(f"entry {entry_id} is already processed", existing_id=entry_id)
        done.append(entry.model_copy(update={"status": EntryStatus.DONE, "error": None}))
    tx.rewrite(user_id, done, reindex=False)  # the text is unchanged: no full-text work


def merged_aliases(keep: Entity, name: str, aliases: Iterable[str]) -> list[str]:
    """The aliases ``keep`` has after taking another entity's name and aliases (never its own name)."""
    return sorted({*keep.aliases, *aliases, name} - {keep.name})


def merged_update(stored: Entity, entity: Entity) -> dict[str, Any]:
    """What changes on ``stored`` when ``entity`` (a new mention of it) is written: its name as an alias, the facts
    it states (a changed relation closes the old one, kept), and the name matches that landed it here, each with
    what ``stored`` was before it so it can be undone exactly. Empty when nothing changes."""
    update: dict[str, Any] = {}
    names = set(stored.aliases) | set(entity.aliases) | ({entity.name} - {stored.name})
    if names != set(stored.aliases):
        update["aliases"] = sorted(names)
    facts = merge_facts(stored.facts, entity.facts) if entity.facts else stored.facts
    if facts != stored.facts:
        update["facts"] = facts
        update["relation"] = current_relation(facts) or stored.relation
    if entity.matches:
        before = {
            "aliases": list(stored.aliases),
            "relation": stored.relation,
            "facts": [f.model_dump(mode="json") for f in stored.facts],
            "merges": len(stored.merges),
        }
        update["matches"] = [*stored.matches, *({**m, "before": before} for m in entity.matches)]
    return update


def merge_batch_entities(tx: StoreTransaction, user_id: str, entities: Sequence[Entity]) -> dict[str, str]:
    """Store a batch's entities: a canonical name the user already has (stored, or earlier in this batch) keeps
    its node and gains the new names as aliases. Returns given id -> stored id."""
    if not entities:
        return {}
    canonicals = list(dict.fromkeys(e.canonical for e in entities))
    known: dict[str, Entity] = {e.canonical: e for e in tx.entities_by_canonical(user_id, canonicals)}
    created: dict[str, Entity] = {}
    updated: dict[str, Entity] = {}
    mapping: dict[str, str] = {}
    for entity in entities:
        stored = known.get(entity.canonical)
        if stored is None:
            # A name match recorded against an entity that is not there (yet) has nothing to undo.
            entity = entity.model_copy(update={"matches": []}) if entity.matches else entity
            known[entity.canonical] = created[entity.id] = entity
            mapping[entity.id] = entity.id
            continue
        update = merged_update(stored, entity)
        if update:
            stored = stored.model_copy(update=update)
            known[entity.canonical] = stored
            (created if stored.id in created else updated)[stored.id] = stored
        mapping[entity.id] = stored.id
    stored_ids = tx.create_entities(list(created.values()))
    tx.rewrite(user_id, list(updated.values()))
    return {given: stored_ids.get(held, held) for given, held in mapping.items()}


REEXTRACT_NOTE = (
    "its episode was deleted, and everything extracted from it with it; the text is kept: "
    "extract it again with Retry (Journal page) or `persona retry`, or delete the entry"
)
"""Why an entry whose episode was deleted is pending again (shown beside the Retry button)."""


def dependants(tx: StoreTransaction, user_id: str, node: AnyNode) -> dict[str, NodeType]:
    """What belongs to ``node``: an entry's memories and passages; for an episode, everything extracted from its
    entry (see ``entry_to_reextract``), or its derived memories when its entry is gone."""
    if node.type is NodeType.ENTRY:
        return tx.entry_members(user_id, node.id)
    if node.type is NodeType.EPISODE and entry_to_reextract(tx, user_id, node) is not None:
        return {i: t for i, t in tx.entry_members(user_id, node.entry_id).items() if i != node.id}  # type: ignore[attr-defined]
    if node.type is NodeType.EPISODE:
        derived = tx.links(user_id, [node.id], [LinkType.DERIVED_FROM.value])
        sources = [source for _, source, target in derived if target == node.id]
        return {n.id: n.type for n in get_batched(tx, user_id, sources)}
    return {}


def entry_to_reextract(tx: StoreTransaction, user_id: str, node: AnyNode) -> Entry | None:
    """The entry a deleted episode leaves without memories, if it is still there.

    An episode is what the entry says happened; without it the entry would stay "done" with nothing extracted and
    no way to extract it again. So deleting an episode deletes the entry's whole extraction (the episode, the
    psyche and goals derived from it, the passages) and keeps the entry, pending: the person decides whether to
    extract it again (Retry) or delete it. It is not re-extracted by itself, which would bring back what they
    just deleted."""
    if node.type is not NodeType.EPISODE:
        return None
    found = get_batched(tx, user_id, [node.entry_id]) if possible_id(node.entry_id) else []  # type: ignore[attr-defined]
    return found[0] if found and isinstance(found[0], Entry) else None


def mark_for_reextraction(tx: StoreTransaction, user_id: str, entry: Entry) -> None:
    """Set an entry whose extraction was deleted back to pending, with the reason a person reads."""
    tx.rewrite(
        user_id, [entry.model_copy(update={"status": EntryStatus.PENDING, "error": REEXTRACT_NOTE})], reindex=False
    )


def walk_chain(following: dict[str, str]) -> list[str]:
    """The NEXT chain from its head (the episode nothing points to), each episode once."""
    heads = set(following) - set(following.values())
    path: list[str] = []
    node = min(heads) if heads else None
    while node is not None and len(path) <= len(following):
        path.append(node)
        node = following.get(node)
    return path


def without_embedding(node: N) -> N:
    """A node as write methods return it: the vector stays in the store."""
    return node.model_copy(update={"embedding": None}) if hasattr(node, "embedding") else node  # type: ignore[attr-defined]


def unmatched(
    tx: StoreTransaction, user_id: str, entity_id: str, match_id: str
) -> tuple[Entity, Entity, dict[str, Any]]:
    """For undoing a name match: the matched entity as it was before the match, the mention as its own entity, and
    the match's record (the mention's entity is the one of that name when there is one now). Refuses
    (``ValidationError``) a match that is not the entity's latest, and one under a later merge."""
    keep = get_one(tx, user_id, entity_id)
    if not isinstance(keep, Entity):
        raise ValidationError(f"{entity_id} is not an entity: only entities have name matches")
    record = next((m for m in keep.matches if m.get("id") == match_id), None)
    if record is None:
        raise ValidationError(f"{keep.name!r} has no name match {match_id[:80]!r}")
    before = record.get("before")
    if not isinstance(before, dict) or not {"aliases", "relation", "facts", "merges"} <= set(before):
        raise ValidationError(f"the name match {match_id[:80]!r} of {keep.name!r} has an incomplete record")
    if blocker := name_match_blocker(keep, record):
        raise ValidationError(blocker)
    mention = Entity.model_validate(record["entity"] | {"user_id": user_id})
    kept = keep.model_copy(update=_without_match(keep, before, mention))  # a copy keeps a newer release's fields
    restored = mention
    if tx.taken([restored.id]):  # held by another node (a restored copy of this store, or a crafted file)
        restored = restored.model_copy(update={"id": new_id()})
    for same in tx.entities_by_canonical(user_id, [restored.canonical]):
        # The name has its own entity by now (a later mention, undone first): the mention joins it, as a write would.
        update = merged_update(same, restored)
        restored = same.model_copy(update=update) if update else same
    return kept, restored, record


def _without_match(keep: Entity, before: dict[str, Any], mention: Entity) -> dict[str, Any]:
    """``keep``'s aliases, facts and relation with only what the match of ``mention`` added taken back: a later entry
    naming the entity exactly (so with no match record of its own) may have added facts and aliases since; they stay.
    """
    earlier = [EntityFact.model_validate(f) for f in before["facts"]]
    taken_back = {f.id for f in earlier} | {f.id for f in mention.facts}
    later = [  # reopened and merged again: the match's fact may have closed one of them
        f.model_copy(update={"valid_until": None}) for f in keep.facts if f.id not in taken_back
    ]
    facts = merge_facts(earlier, later) if later else earlier
    names = set(keep.aliases) - {mention.name, *mention.aliases} - set(before["aliases"])
    return {
        "aliases": sorted({*before["aliases"], *names}) if names else before["aliases"],
        "facts": facts,
        "relation": (current_relation(facts) or before["relation"]) if later else before["relation"],
        "matches": keep.matches[:-1],
    }
