"""Applying memory changes to a store, and undoing them exactly.

During ingest, ``plan_chunk`` reads the candidates of an entry (or of every entry of an import chunk, in one store
call: the user's current goals and psyche that happened before it) and asks the rules (``persona.evolution``) what
each entry changes, in date order; a belief that is replaced gets its replacement as a memory of the entry (the
extracted one, or one made from the sentence). The changes are written in the same transaction as the entries'
memories: the old memories' validity closed (a goal done or dropped, a belief replaced) or a goal's due date moved, a
``Revision`` on each with what it was before, and links: ``CHANGED_BY`` to the causing entry, ``SUPERSEDES`` from the
new memory. (``evolve`` / ``apply_changes`` do the same for memories written already.)
Nothing is deleted. ``undo_change`` restores the memory exactly as it was and removes the revision and its links;
``confirm_change`` marks a detected change as seen and kept.

The people of an entry are resolved here too (``resolve_entities``): titles, first or last names alone, aliases
from the user's merges, and relations ("my sister Layla"), so the store merges them into the one entity they mean.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np

from persona.entities import (
    current_relation,
    described_as_other,
    known_mentions,
    match_rule,
    merge_facts,
    name_match_blocker,
    relation_fact,
    relations_in,
    resolve,
    stated_nicknames,
)
from persona.errors import ValidationError
from persona.evolution import (
    POSTPONED,
    Similarity,
    detect_belief_changes,
    detect_goal_changes,
)
from persona.evolution_llm import decide_with_model
from persona.llm.base import Embedder, Provider
from persona.models import (
    Entity,
    EntityKind,
    Entry,
    Evolving,
    Goal,
    GoalStatus,
    Link,
    LinkType,
    MemoryBatch,
    NodeType,
    Psyche,
    Revision,
    canonical_name,
    new_id,
    node_text,
    utc_now,
)
from persona.store.base import EvolutionProbe, Store
from persona.store.common import fts_words

log = logging.getLogger(__name__)

ALL = 10**9


@dataclass(frozen=True)
class PlannedChange:
    """A change the rules found for one existing memory (``new_id``: the memory that replaces it, for beliefs)."""

    target_id: str
    change: str  # done, dropped, postponed, superseded
    sentence: str
    due: date | None = None
    new_id: str | None = None


_VECTOR_CACHE: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
VECTOR_CACHE_SIZE = 8_192
"""Texts compared by meaning are kept embedded for the process: the same goals and beliefs are candidates for entry
after entry (a journal import compares every entry with the same few dozen), so each is embedded once, not per entry."""


_VECTOR_CACHE_LOCK = threading.Lock()
"""Planning runs in several threads at once (the API's pool, app sessions, the Neo4j warm-up): one thread's eviction
between another's lookup and use would lose a vector it had just checked."""


def _cached_vectors(embedder: Embedder, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """The vectors of ``texts`` by ``embedder``: cached ones reused, the others embedded in ONE call and cached."""
    name = embedder.info.name
    with _VECTOR_CACHE_LOCK:
        missing = [t for t in dict.fromkeys(texts) if (name, t) not in _VECTOR_CACHE]
    # Embedded outside the lock (the sentence model takes milliseconds per text); kept here even if evicted meanwhile.
    fresh = dict(zip(missing, embedder.embed(missing), strict=True)) if missing else {}
    found = {}
    with _VECTOR_CACHE_LOCK:
        for text, vector in fresh.items():
            _VECTOR_CACHE[(name, text)] = np.asarray(vector, dtype=np.float32)
        for text in texts:
            key = (name, text)
            if key in _VECTOR_CACHE:
                _VECTOR_CACHE.move_to_end(key)
                found[text] = _VECTOR_CACHE[key]
            else:  # evicted by another thread since the lookup: embed it again, here, rather than fail
                found[text] = np.asarray(embedder.embed([text])[0], dtype=np.float32)
        while len(_VECTOR_CACHE) > VECTOR_CACHE_SIZE:
            _VECTOR_CACHE.popitem(last=False)
    return found


def batched_similarity(embedder: Embedder, texts: Sequence[str]) -> Similarity:
    """Cosine similarity by ``embedder`` with the texts known in advance embedded in ONE call (others on demand);
    texts already embedded earlier in the process are not embedded again."""
    vectors = _cached_vectors(embedder, [t for t in dict.fromkeys(texts) if t.strip()])

    def vector(text: str) -> np.ndarray:
        if text not in vectors:
            vectors.update(_cached_vectors(embedder, [text]))
        return vectors[text]

    return lambda a, b: float(vector(a) @ vector(b))


CANDIDATES = 40
"""Existing goals and psyche memories an entry is compared with: the best full-text matches of its words, and the
nearest by meaning to each of its passages (so the cost per entry does not grow with the store)."""
NEAREST = 5
"""Candidates per vector of an entry (its episode and first two passages)."""


def _probe(entry: Entry, batch: MemoryBatch) -> EvolutionProbe:
    """What the store is asked for an entry's candidates: its text and the vectors of what it is about (the episode
    says what the entry is about; two passages add its own words)."""
    vectors = [n.embedding for n in [*batch.episodes, *batch.passages[:2]] if n.embedding is not None]
    return EvolutionProbe(entry.id, entry.occurred_at, entry.text[:4000], vectors)


def candidate_memories(
    store: Store, entry: Entry, vectors: Sequence[Sequence[float]] = ()
) -> tuple[list[Goal], list[Psyche]]:
    """The user's active goals and current psyche memories an entry may change: found by its words and by the
    meaning of its passages, learned from earlier entries (never the entry's own memories, never later ones)."""
    probe = EvolutionProbe(entry.id, entry.occurred_at, entry.text[:4000], vectors)
    found = store.evolution_candidates(entry.user_id, [probe], k_text=CANDIDATES, k_vector=NEAREST)[0]
    return _split(found)


def _split(nodes: Sequence[Evolving]) -> tuple[list[Goal], list[Psyche]]:
    return [n for n in nodes if isinstance(n, Goal)], [n for n in nodes if isinstance(n, Psyche)]


def plan_changes(
    goals: Sequence[Goal], psyche: Sequence[Psyche], entry: Entry, *, similarity: Similarity | None = None
) -> list[PlannedChange]:
    """What ``entry`` changes among these memories (the replacement of a belief is found or made by
    ``evolve``)."""
    planned = [
        PlannedChange(c.goal_id, c.status, c.sentence, c.due)
        for c in detect_goal_changes(entry.text, goals, today=entry.occurred_at.date(), similarity=similarity)
    ]
    planned += [
        PlannedChange(c.old_id, "superseded", c.sentence)
        for c in detect_belief_changes(entry.text, psyche, similarity=similarity)
    ]
    return planned


def decide_changes(
    embedder: Embedder | None,
    entry: Entry,
    batch: MemoryBatch,
    goals: Sequence[Goal],
    psyche: Sequence[Psyche],
    *,
    model: Provider | None = None,
) -> list[PlannedChange]:
    """What ``entry`` changes among these candidates, without writing: with ``model`` (an LLM provider) in one call,
    by the rules offline or when its answer cannot be used. A replaced belief's replacement is the entry's own psyche
    memory saying it, or one made from the sentence and added to ``batch`` (written with it)."""
    if not goals and not psyche:
        return []
    decided = decide_with_model(model, entry, list(goals), list(psyche)) if model is not None else None
    if decided is not None:
        found = [PlannedChange(d.goal_id, d.status, d.sentence, d.due) for d in decided.goals]
        found += [PlannedChange(d.old_id, "superseded", d.sentence) for d in decided.beliefs]
    else:
        similarity = None
        if embedder is not None:
            # Goals and beliefs recur as candidates entry after entry (cached); the entry's own sentences are embedded
            # only where a detector needs their meaning.
            texts = [*(g.title for g in goals), *(p.text for p in psyche)]
            similarity = batched_similarity(embedder, texts)
        found = plan_changes(goals, psyche, entry, similarity=similarity)
    by_id = {p.id: p for p in psyche}
    planned = []
    for plan in found:
        if plan.change == "superseded":
            new = _replacement(embedder, batch, by_id[plan.target_id], plan.sentence)
            plan = PlannedChange(plan.target_id, plan.change, plan.sentence, new_id=new.id)
        planned.append(plan)
    return planned


def evolve(
    store: Store, embedder: Embedder | None, entry: Entry, batch: MemoryBatch, *, model: Provider | None = None
) -> list[Evolving]:
    """After an entry's memories are written: find what it changes among the user's earlier memories and apply it
    (a belief's replacement made from a sentence is written now). Ingest plans the changes before writing instead
    (``plan_chunk``) and writes them with the memories. Returns the changed memories."""
    goals, psyche = candidate_memories(store, entry, _probe(entry, batch).vectors)
    known = {p.id for p in batch.psyche}
    planned = decide_changes(embedder, entry, batch, goals, psyche, model=model)
    made = [p for p in batch.psyche if p.id not in known]
    if made:
        episode = batch.episodes[0]
        links = [Link(type=LinkType.DERIVED_FROM, source_id=p.id, target_id=episode.id) for p in made]
        store.write_batch(entry.user_id, MemoryBatch(psyche=made, links=links))
    return apply_changes(store, entry, planned)


def _replacement(embedder: Embedder | None, batch: MemoryBatch, old: Psyche, sentence: str) -> Psyche:
    """The entry's psyche memory that says ``sentence``, or a new one made from it (of the old one's kind), added to
    the batch with its ``DERIVED_FROM`` link."""
    for node in batch.psyche:
        if node.source_sentence == sentence or node.text in sentence:
            return node
    episode = batch.episodes[0]
    text = re.sub(r"\s+", " ", sentence).strip().rstrip(".!")
    new = Psyche(
        user_id=old.user_id, entry_id=episode.entry_id, occurred_at=episode.occurred_at, kind=old.kind, text=text,
        confidence=0.6, source_sentence=sentence,
        embedding=embedder.embed([text])[0] if embedder is not None else None,
    )  # fmt: skip
    batch.psyche.append(new)
    batch.links.append(Link(type=LinkType.DERIVED_FROM, source_id=new.id, target_id=episode.id))
    return new


_CHANGED_FIELDS = ("status", "due", "valid_until")


def _before(node: Evolving) -> dict[str, Any]:
    dumped = node.model_dump(mode="json")
    return {k: dumped[k] for k in _CHANGED_FIELDS if k in dumped}


def changed_versions(
    entry: Entry, planned: Sequence[PlannedChange], current: Mapping[str, Evolving]
) -> tuple[list[Evolving], list[Link]]:
    """The new versions of the memories ``planned`` changes (each with a ``Revision`` saying what it was before) and
    the links saying why: ``CHANGED_BY`` to the entry, ``SUPERSEDES`` from a belief's replacement. ``current``: the
    memories as they are now by id (a planned target missing from it is skipped). Writes nothing."""
    latest = dict(current)
    changed: dict[str, Evolving] = {}
    links: list[Link] = []
    for plan in planned:
        old = latest.get(plan.target_id)
        if not isinstance(old, Evolving):
            continue
        revision = Revision(
            change=plan.change, at=entry.occurred_at, entry_id=entry.id, by_id=plan.new_id, sentence=plan.sentence,
            before=_before(old),
        )  # fmt: skip
        update: dict[str, Any] = {"revisions": [*old.revisions, revision]}
        if plan.change == POSTPONED:
            update["due"] = plan.due or getattr(old, "due", None)
        else:
            update["valid_until"] = entry.occurred_at
        if plan.change in (GoalStatus.DONE.value, GoalStatus.DROPPED.value):
            update["status"] = GoalStatus(plan.change)
        latest[old.id] = changed[old.id] = old.model_copy(update=update)
        links.append(Link(type=LinkType.CHANGED_BY, source_id=old.id, target_id=entry.id))
        if plan.new_id:
            links.append(Link(type=LinkType.SUPERSEDES, source_id=plan.new_id, target_id=old.id))
    return list(changed.values()), links


def apply_changes(store: Store, entry: Entry, planned: Sequence[PlannedChange]) -> list[Evolving]:
    """Write planned changes in one transaction; return the changed memories (nothing is deleted)."""
    if not planned:
        return []
    found = {n.id: n for n in store.get_nodes(entry.user_id, [p.target_id for p in planned]) if isinstance(n, Evolving)}
    changed, links = changed_versions(entry, planned, found)
    store.revise(entry.user_id, changed, add_links=links)
    return changed


@dataclass
class ChunkChanges:
    """What the entries of an import chunk change, planned before anything of theirs is written: new versions of
    stored memories (``stored``), of memories the chunk itself brings (``fresh``), the links saying why, and the
    memories each entry changed (by entry id)."""

    stored: dict[str, Evolving] = field(default_factory=dict)
    fresh: dict[str, Evolving] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)
    by_entry: dict[str, list[Evolving]] = field(default_factory=dict)

    def apply_to(self, batch: MemoryBatch) -> MemoryBatch:
        """The batch with the chunk's own changed memories in their new versions and the change links added."""
        goals = [self.fresh.get(g.id, g) for g in batch.goals]
        psyche = [self.fresh.get(p.id, p) for p in batch.psyche]
        update = {"goals": goals, "psyche": psyche, "links": [*batch.links, *self.links]}
        return batch.model_copy(update=update)


def plan_chunk(
    store: Store,
    embedder: Embedder | None,
    items: Sequence[tuple[Entry, MemoryBatch]],
    *,
    model: Provider | None = None,
) -> ChunkChanges:
    """Plan what each entry of a chunk (one user's, not yet written, embedded) changes, in date order: candidates
    are the stored memories that happened by its date (ONE store read for the whole chunk) and the memories of the
    chunk's earlier entries, as the earlier entries left them. An entry whose planning fails changes nothing (logged;
    its memories are still written). Writes nothing."""
    ordered = sorted(items, key=lambda item: item[0].occurred_at)  # stable: same date keeps the chunk's order
    if not ordered:
        return ChunkChanges()
    probes = [_probe(entry, batch) for entry, batch in ordered]
    found = store.evolution_candidates(ordered[0][0].user_id, probes, k_text=CANDIDATES, k_vector=NEAREST)
    plan = ChunkChanges()
    earlier: list[Evolving] = []  # memories of the chunk's entries planned so far
    for (entry, batch), probe, stored in zip(ordered, probes, found, strict=True):
        latest = {**plan.stored, **plan.fresh}
        nearby = _found_in_chunk([n for n in earlier if n.occurred_at <= entry.occurred_at], probe)
        candidates = [latest.get(n.id, n) for n in [*stored, *nearby]]
        goals, psyche = _split(_changeable(candidates))
        try:
            planned = decide_changes(embedder, entry, batch, goals, psyche, model=model)
        except Exception:  # noqa: BLE001 - a missed change is not a lost entry: its memories are written all the same
            log.exception("could not plan the memory changes of entry %s", entry.id)
            planned = []
        changed, links = changed_versions(entry, planned, {n.id: n for n in [*goals, *psyche]})
        for node in changed:
            (plan.fresh if node.entry_id in plan.by_entry else plan.stored)[node.id] = node
        plan.links += links
        plan.by_entry[entry.id] = changed
        earlier += [*batch.goals, *batch.psyche]
    return plan


def _found_in_chunk(memories: Sequence[Evolving], probe: EvolutionProbe) -> list[Evolving]:
    """Among the memories of a chunk's earlier entries (not stored yet), the ones the store's search would find for
    the probe: those sharing a word with it (the most shared first, at most ``CANDIDATES``) and the ``NEAREST`` to
    each of its vectors."""
    words = set(fts_words(probe.text))
    shared = {m.id: len(words & set(fts_words(node_text(m)))) for m in memories}
    by_words = sorted((m for m in memories if shared[m.id]), key=lambda m: -shared[m.id])[:CANDIDATES]
    embedded = [m for m in memories if m.embedding is not None]
    near: list[Evolving] = []
    if embedded and probe.vectors:
        matrix = np.asarray([m.embedding for m in embedded], dtype=np.float32)
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        for vector in probe.vectors:
            scores = matrix @ np.asarray(vector, dtype=np.float32)
            near += [embedded[i] for i in np.argsort(-scores, kind="stable")[:NEAREST]]
    return list({m.id: m for m in [*by_words, *near]}.values())


def _changeable(nodes: Sequence[Evolving]) -> list[Evolving]:
    """Each current goal (active) or psyche memory once, in order."""
    kept: dict[str, Evolving] = {}
    for node in nodes:
        if node.open_to_change:
            kept.setdefault(node.id, node)
    return list(kept.values())


def _revision(node: Any, revision_id: str) -> Revision:
    if not isinstance(node, Evolving):
        raise ValidationError(f"{node.id} is a {node.type.value}: only goals and psyche memories have changes")
    for revision in node.revisions:
        if revision.id == revision_id:
            return revision
    raise ValidationError(f"memory {node.id} has no change {revision_id[:80]!r}")


def undo_change(store: Store, user_id: str, node_id: str, revision_id: str) -> Evolving:
    """Undo one change exactly: the memory's fields as they were, the revision and its links gone. Only a memory's
    latest change can be undone (an earlier one is what the later ones started from)."""
    node = store.get_node(user_id, node_id)
    revision = _revision(node, revision_id)
    assert isinstance(node, Evolving)
    if node.revisions[-1].id != revision_id:
        raise ValidationError("undo the later changes of this memory first: only the latest change can be undone")
    restored = type(node).model_validate(
        node.model_dump() | revision.before | {"revisions": [r.model_dump() for r in node.revisions[:-1]]}
    )
    remove: list[Link] = []
    same_entry = [r for r in node.revisions[:-1] if r.entry_id == revision.entry_id]
    if revision.entry_id and not same_entry:
        remove.append(Link(type=LinkType.CHANGED_BY, source_id=node.id, target_id=revision.entry_id))
    if revision.by_id:
        remove.append(Link(type=LinkType.SUPERSEDES, source_id=revision.by_id, target_id=node.id))
    store.revise(user_id, [restored], remove_links=remove)
    return restored


def confirm_change(store: Store, user_id: str, node_id: str, revision_id: str) -> Evolving:
    """Mark a detected change as seen and right (it stays undoable)."""
    node = store.get_node(user_id, node_id)
    _revision(node, revision_id)
    assert isinstance(node, Evolving)
    revisions = [r.model_copy(update={"confirmed": True}) if r.id == revision_id else r for r in node.revisions]
    confirmed = node.model_copy(update={"revisions": revisions})
    store.revise(user_id, [confirmed])
    return confirmed


def changes_of(store: Store, user_id: str, *, limit: int = 200) -> list[tuple[Evolving, Revision]]:
    """The user's memory changes, newest first: (memory as it is now, the revision)."""
    found: list[tuple[Evolving, Revision]] = []
    for node_type in (NodeType.GOAL, NodeType.PSYCHE):
        for node in store.list_nodes(user_id, node_type, limit=ALL):
            if isinstance(node, Evolving):
                found.extend((node, r) for r in node.revisions)
    found.sort(key=lambda pair: (pair[1].at, pair[1].learned_at), reverse=True)
    return found[:limit]


def changes_caused_between(
    store: Store, user_id: str, *, start: datetime | None = None, end: datetime | None = None
) -> list[tuple[Evolving, Revision]]:
    """The memory changes caused by the user's entries written in [start, end), oldest first: read through those
    entries' ``CHANGED_BY`` links (a change is dated by its entry), so the cost follows the range, not the number of
    goals and beliefs the user has."""
    entries = store.list_nodes(user_id, NodeType.ENTRY, start=start, end=end, limit=ALL)
    entry_ids = {e.id for e in entries}
    links = store.neighbours(user_id, list(entry_ids), link_types=[LinkType.CHANGED_BY]) if entry_ids else []
    found: dict[str, tuple[Evolving, Revision]] = {}
    for node in store.get_nodes(
        user_id, list(dict.fromkeys(lk.source_id for lk in links if lk.target_id in entry_ids))
    ):
        if isinstance(node, Evolving):
            found |= {r.id: (node, r) for r in node.revisions if r.entry_id in entry_ids}
    return sorted(found.values(), key=lambda pair: (pair[1].at, pair[1].learned_at))


# -- entities --------------------------------------------------------------------------------------------------------
def resolve_entities(store: Store, entry: Entry, batch: MemoryBatch, known: list[Entity] | None = None) -> list[Entity]:
    """Point the batch's entities at the user's entity each one means (the store then merges them, keeping the new
    name as an alias), add mentions of known people the extractor could not tell from a capitalised word, and keep
    relations ("my sister Layla") as dated facts. Each match a rule made is recorded on the entity it lands on (see
    ``unmatch_entity``), so the user can see it and undo it. Reads only. ``known``: the user's entities when the
    caller has them (entries of one import chunk see each other's); returns them with this batch's new ones added."""
    if known is None:
        known = [e for e in store.list_nodes(entry.user_id, NodeType.ENTITY, limit=ALL) if isinstance(e, Entity)]
    relations = relations_in(entry.text)
    people = [e.name for e in batch.entities if e.kind in (EntityKind.PERSON, EntityKind.THING)]
    nicknames = {canonical_name(nick): (nick, full) for nick, full in stated_nicknames(entry.text, people).items()}
    seen: list[Entity] = list(known)
    resolved: list[Entity] = []
    named: list[Entity] = []  # nicknames the entry states: resolved once the full names are
    for entity in batch.entities:
        if entity.canonical in nicknames:
            named.append(entity)
            continue
        target = resolve(
            entity.name, entity.kind, seen, introduced_as_other=described_as_other(entry.text, entity.name)
        )
        if entity.canonical in relations:
            fact = relation_fact(relations[entity.canonical], entry.occurred_at, entry.id)
            entity = entity.model_copy(update={"relation": fact.value, "facts": [fact]})
        if target is not None and target.canonical != entity.canonical:
            entity = _matched(entity, target, entry, relation=entity.canonical in relations)
        resolved.append(entity)
        if target is None:
            seen.append(entity)
    given = {e.id for e in batch.entities}
    resolved += _stated_nicknames(entry, resolved, named, nicknames)
    _learn_nicknames(seen, resolved)
    batch.entities[:] = resolved
    extracted = {canonical_name(n) for e in resolved for n in (e.name, *e.name.split())}
    episode = batch.episodes[0]
    for entity in resolved:
        if entity.id not in given:  # a full name only the nickname statement named
            batch.links.append(Link(type=LinkType.MENTIONS, source_id=episode.id, target_id=entity.id))
            seen.append(entity)
    for word, target in known_mentions(entry.text, seen, extracted):
        mention = Entity(user_id=entry.user_id, name=word, kind=EntityKind.PERSON)
        if mention.canonical != target.canonical:
            mention = _matched(mention, target, entry)
        batch.entities.append(mention)
        batch.links.append(Link(type=LinkType.MENTIONS, source_id=episode.id, target_id=mention.id))
    _record_sources(batch)
    return seen


def _matched(entity: Entity, target: Entity, entry: Entry, *, relation: bool = False) -> Entity:
    """``entity`` pointed at ``target``, with a record of the match. A name already learned as the target's alias
    is an ordinary mention (recording each would grow the entity with every entry): it is recorded only when it
    states a fact (a relation) the undo must take back."""
    rule = match_rule(entity.name, target) + (" (relation)" if relation else "")
    if rule == "alias":
        return entity.model_copy(update={"canonical": target.canonical})
    match = _match_record(entity, entry, rule)
    return entity.model_copy(update={"canonical": target.canonical, "matches": [match]})


def _stated_nicknames(
    entry: Entry, resolved: list[Entity], named: list[Entity], nicknames: dict[str, tuple[str, str]]
) -> list[Entity]:
    """The entry's nickname mentions pointed at the person it says they name ("Sasha" at Alexander Petrov), each a
    recorded match; they come after the full names, so the store merges them into the full name's entity. A stated
    nickname the extractor did not take as a mention becomes an alias of the full name."""
    by_name = {canonical_name(e.name): i for i, e in enumerate(resolved)}
    for _nick, full in nicknames.values():
        if canonical_name(full) not in by_name:  # "Robert, or Bobby as ...": a name the extractor did not take
            by_name[canonical_name(full)] = len(resolved)
            resolved.append(Entity(user_id=entry.user_id, name=full, kind=EntityKind.PERSON))
    for key, (nick, full) in nicknames.items():
        index = by_name.get(canonical_name(full))
        if index is not None and not any(e.canonical == key for e in named):
            holder = resolved[index]
            resolved[index] = holder.model_copy(update={"aliases": sorted({*holder.aliases, nick})})
    pointed = []
    for entity in named:
        index = by_name.get(canonical_name(nicknames[entity.canonical][1]))
        if index is None:
            pointed.append(entity)  # the full name is not a mention of this entry: the nickname stands alone
            continue
        match = _match_record(entity, entry, "stated nickname")
        pointed.append(entity.model_copy(update={"canonical": resolved[index].canonical, "matches": [match]}))
    return pointed


def _learn_nicknames(seen: list[Entity], resolved: list[Entity]) -> None:
    """Give the known entities (the ones later entries of an import chunk resolve against) the names this batch
    lands on them, so a nickname stated in one entry is known in the next."""
    index = {e.canonical: i for i, e in enumerate(seen)}
    for entity in resolved:
        i = index.get(entity.canonical)
        if i is None:
            continue
        names = {*entity.aliases, entity.name} - {seen[i].name}
        if not names <= set(seen[i].aliases):
            seen[i] = seen[i].model_copy(update={"aliases": sorted({*seen[i].aliases, *names})})


def _match_record(entity: Entity, entry: Entry, rule: str) -> dict[str, Any]:
    """What undoing a name match needs: the mention as its own entity (its own name and facts), the rule, the
    entry that caused it (the store adds what the matched entity was before)."""
    return {
        "id": new_id(),
        "name": entity.name,
        "rule": rule,
        "entry_id": entry.id,
        "at": entry.occurred_at.isoformat(),
        "learned_at": utc_now().isoformat(),
        "entity": entity.model_dump(mode="json", exclude={"embedding", "matches"}),
    }


def _record_sources(batch: MemoryBatch) -> None:
    """Add to each name match the batch's nodes that mention it (``sources``), and those an undo takes away from
    the matched entity (``moved``: not also mentioning it by another name in this batch)."""
    mentions = [lk for lk in batch.links if lk.type is LinkType.MENTIONS]
    by_canonical: dict[str, set[str]] = {}
    for entity in batch.entities:
        by_canonical.setdefault(entity.canonical, set()).add(entity.id)
    for entity in batch.entities:
        if not entity.matches:
            continue
        others = by_canonical[entity.canonical] - {entity.id}
        sources = {lk.source_id for lk in mentions if lk.target_id == entity.id}
        shared = {lk.source_id for lk in mentions if lk.target_id in others}
        entity.matches[-1] |= {"sources": sorted(sources), "moved": sorted(sources - shared)}


def name_matches(store: Store, user_id: str) -> list[tuple[Entity, dict[str, Any]]]:
    """The user's automatic name matches, newest first: (the entity the mention landed on, the match's record: the
    name as written, the rule, the entry, when). A record without these (a hand-edited export: ``matches`` is not
    checked on import) is left out, so it breaks no list; it cannot be undone either."""
    found = [
        (entity, match)
        for entity in store.list_nodes(user_id, NodeType.ENTITY, limit=ALL)
        if isinstance(entity, Entity)
        for match in entity.matches
        if _listable(match)
    ]
    found.sort(key=lambda pair: (pair[1]["at"], str(pair[1].get("learned_at", ""))), reverse=True)
    return found


def _listable(match: Any) -> bool:
    """Whether a name match record has what the lists show: its id, the name, the rule, the entry and a date."""
    if not isinstance(match, dict) or not all(isinstance(match.get(key), str) for key in ("id", "name", "rule", "at")):
        return False
    if "entry_id" not in match or not isinstance(match.get("entity"), dict):
        return False
    try:
        return datetime.fromisoformat(match["at"]).tzinfo is not None
    except ValueError:
        return False


def undo_name_match(
    store: Store, embedder: Embedder | None, user_id: str, entity_id: str, match_id: str
) -> tuple[Entity, Entity]:
    """Undo an automatic name match exactly (``Store.unmatch_entity``): the mention is its own entity again, with
    the matching entry's mentions and a vector of its name. Returns (matched, restored)."""
    entity = store.get_node(user_id, entity_id)
    match = next((m for m in getattr(entity, "matches", []) if m.get("id") == match_id), None)
    embedding = None
    if match is not None and embedder is not None:
        name = match.get("entity", {}).get("name") if isinstance(match.get("entity"), dict) else None
        embedding = embedder.embed([name])[0] if isinstance(name, str) else None
    return store.unmatch_entity(user_id, entity_id, match_id, embedding=embedding)


USER_CONTEXT_ITEMS = 30
"""At most this many current psyche memories and as many active goals go into every chat context."""


def user_profile(store: Store, user_id: str, *, limit: int = USER_CONTEXT_ITEMS) -> tuple[list[Psyche], list[Goal]]:
    """What is true of the user now: current psyche memories (newest first) and active goals (soonest due first,
    then newest)."""
    psyche = [p for p in store.list_nodes(user_id, NodeType.PSYCHE, limit=ALL) if isinstance(p, Psyche) and p.current][
        :limit
    ]
    goals = [
        g
        for g in store.list_nodes(user_id, NodeType.GOAL, status=GoalStatus.ACTIVE.value, limit=ALL)
        if isinstance(g, Goal) and g.current
    ]
    goals.sort(key=lambda g: (g.due is None, g.due or date.max, -g.occurred_at.timestamp()))
    return psyche, goals[:limit]


def overdue_goals(goals: Sequence[Goal], today: date) -> list[Goal]:
    """Active goals whose due date has passed."""
    return [g for g in goals if g.status is GoalStatus.ACTIVE and g.due is not None and g.due < today]


def undo_changes_of_entry(store: Store, user_id: str, entry_id: str) -> int:
    """Before an entry is deleted: undo the changes it caused (a goal it marked done is active again, a belief it
    replaced is current again), so deleting what the user wrote never leaves a change without its reason. A change
    that later changes build on is left as it is; so are the name matches it made. The facts it stated about people
    already known by that exact name (no name match) go too. Returns how many were undone."""
    undone = 0
    for node, revision in changes_of(store, user_id, limit=ALL):
        if revision.entry_id == entry_id and node.revisions[-1].id == revision.id:
            undo_change(store, user_id, node.id, revision.id)
            undone += 1
    undone += _undo_matches_of_entry(store, user_id, entry_id)
    return undone + _drop_facts_of_entry(store, user_id, entry_id)


def _undo_matches_of_entry(store: Store, user_id: str, entry_id: str) -> int:
    """Undo the name matches an entry made (latest first), so the entities it landed on lose the aliases and facts
    it gave them; the mentions made their own entities again go with the entry. A match later ones build on stays."""
    undone = 0
    while True:
        undoable = [
            (entity, match)
            for entity, match in name_matches(store, user_id)
            if match.get("entry_id") == entry_id and name_match_blocker(entity, match) is None
        ]
        if not undoable:
            return undone
        entity, match = undoable[0]
        store.unmatch_entity(user_id, entity.id, match["id"])
        undone += 1


def _drop_facts_of_entry(store: Store, user_id: str, entry_id: str) -> int:
    """Take the facts an entry stated off the user's entities, so none points at a deleted entry: the ones it closed
    are current again and each entity's relation is its latest remaining one. Returns how many entities changed."""
    changed = 0
    for entity in store.list_nodes(user_id, NodeType.ENTITY, limit=ALL):
        if not isinstance(entity, Entity) or not any(f.entry_id == entry_id for f in entity.facts):
            continue
        remaining = [f.model_copy(update={"valid_until": None}) for f in entity.facts if f.entry_id != entry_id]
        facts = merge_facts([], remaining)  # closed again by the facts that remain only
        changes = {"facts": [f.model_dump() for f in facts], "relation": current_relation(facts)}
        store.update_node(user_id, entity.id, changes)
        changed += 1
    return changed


def delete_with_changes(store: Store, user_id: str, node_id: str) -> int:
    """``store.delete_node``, first undoing the changes an entry caused (see ``undo_changes_of_entry``)."""
    found = store.get_nodes(user_id, [node_id])
    if found and found[0].type is NodeType.ENTRY:
        undo_changes_of_entry(store, user_id, node_id)
    return store.delete_node(user_id, node_id)


def thread(store: Store, user_id: str, node_id: str) -> list[Entry]:
    """ "What happened to X?": the entries that tell X's story, oldest first. For a goal or psyche memory: the entry
    it came from, the entries that changed it, and the entries mentioning the people and things it mentions; for an
    entity: the entries whose memories mention it."""
    node = store.get_node(user_id, node_id)
    entry_ids: list[str] = []
    if isinstance(node, Evolving):
        entry_ids += [node.entry_id, *(r.entry_id for r in node.revisions if r.entry_id)]
    mentioned = [node_id] if node.type is NodeType.ENTITY else []
    if isinstance(node, Evolving):
        links = store.neighbours(user_id, [node_id], link_types=[LinkType.MENTIONS])
        mentioned += [lk.target_id for lk in links if lk.source_id == node_id]
    if mentioned:
        links = store.neighbours(user_id, mentioned, link_types=[LinkType.MENTIONS])
        sources = store.get_nodes(user_id, list(dict.fromkeys(lk.source_id for lk in links)))
        entry_ids += [getattr(s, "entry_id", "") for s in sources if getattr(s, "entry_id", None)]
    entries = [e for e in store.get_nodes(user_id, list(dict.fromkeys(entry_ids))) if isinstance(e, Entry)]
    return sorted(entries, key=lambda e: (e.occurred_at, e.created_at))


GOAL_CHANGES = (GoalStatus.DONE.value, GoalStatus.DROPPED.value, POSTPONED)
"""What a detected goal change can be corrected to (making the goal active again is an undo)."""


def edit_change(
    store: Store, user_id: str, node_id: str, revision_id: str, *, change: str, due: date | None = None
) -> Goal:
    """Correct a detected goal change: the rules said done and it was dropped, or it was postponed to another date.
    The goal becomes what the corrected change makes of it as it was before (``postponed`` needs ``due``); the
    revision keeps that earlier state, so undo still restores it exactly, and is marked confirmed and made by the
    user. Only a goal's latest change can be edited; bad input raises ``ValidationError`` and writes nothing."""
    node = store.get_node(user_id, node_id)
    revision = _revision(node, revision_id)
    if not isinstance(node, Goal):
        raise ValidationError("only a goal's change can be edited: a changed belief can be confirmed or undone")
    if node.revisions[-1].id != revision_id:
        raise ValidationError("undo the later changes of this goal first: only the latest change can be edited")
    if change not in GOAL_CHANGES:
        raise ValidationError(
            f"{str(change)[:40]!r} is not a goal change: choose done, dropped or postponed (undo makes it active again)"
        )
    if (change == POSTPONED) != (due is not None):
        raise ValidationError("a new due date goes with postponed, and only with postponed")
    before = Goal.model_validate(node.model_dump() | revision.before)
    update: dict[str, Any] = {"due": due} if change == POSTPONED else {"status": change, "valid_until": revision.at}
    edited = revision.model_copy(update={"change": change, "confirmed": True, "automatic": False})
    goal = Goal.model_validate(
        before.model_dump() | update | {"revisions": [r.model_dump() for r in [*node.revisions[:-1], edited]]}
    )
    store.revise(user_id, [goal])
    return goal
