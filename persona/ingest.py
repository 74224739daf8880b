"""From a journal entry to typed memories in the store.

The order is what makes "nothing the user wrote is ever lost" true: the Entry is saved (status ``pending``) before
any LLM call; extraction, embedding and planning what the entry changes among earlier memories happen outside the
store; all memories, entities, passages, links and those changes are written in ONE store transaction that also
places the episode in the NEXT chain and marks the entry ``done``.
A failure at any step leaves the Entry stored with status ``failed`` and the reason; ``retry_failed`` re-runs them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from persona.errors import ChangedMeanwhileError, DuplicateError, ValidationError
from persona.llm.base import Extraction, Provider
from persona.models import (
    MAX_ENTRY_CHARS,
    AnyNode,
    Entity,
    Entry,
    EntryStatus,
    Episode,
    Goal,
    Link,
    LinkType,
    MemoryBatch,
    NodeType,
    Passage,
    Psyche,
    canonical_name,
    check_aware,
    check_user_id,
    clean_text,
    node_text,
    utc_now,
)
from persona.revisions import ChunkChanges, plan_chunk, resolve_entities
from persona.store.base import Store
from persona.timeref import annotate

log = logging.getLogger(__name__)

PASSAGE_WORDS = 60
"""Sentences are grouped into passages of about this many words: small enough to quote, big enough to mean
something. Retrieval returns passages so the exact words a person wrote reach the LLM."""

IMPORT_CHUNK = 16
"""Bulk imports with a language model write this many entries per transaction (and per embeddings call): each entry
is a model call of seconds, and progress is reported when a chunk is written, so a chunk stays small."""
OFFLINE_IMPORT_CHUNK = 32
"""Bulk imports with the offline provider, whose extraction takes milliseconds: twice the chunk halves the store's
round trips and transactions per entry (500 generated entries on a warm Neo4j: ~97 -> ~130 entries/s, see
``bench/README.md``). Progress moves once per chunk: every 1-3 s with the sentence model for journal-sized entries,
longer for very long ones."""

MAX_PASSAGES = 2_000
"""An entry gives at most this many passages: a 2,000,000-character entry of short lines would give 125,000 (97 s,
2.6 GB). Beyond it, neighbouring passages are joined (nothing is dropped): 2,000,000 characters make passages of
about 1,000 characters, which still fit the local embedder's 256 tokens."""

PASSAGE_WRITE_CHUNK = 500
"""Passages beyond this many are written in transactions of their own before the entry's memories, so one big
entry never holds the store's write lock for long while another user waits."""

ProgressCallback = Callable[[int, int, "IngestResult"], None]
StepCallback = Callable[[str], None]

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=[\"'“‘(\[]?[A-Z0-9À-ÖØ-Þ])")


@dataclass
class IngestResult:
    """What one ingest did: the entry (with its final status) and, when it succeeded, the memories it wrote."""

    entry: Entry
    batch: MemoryBatch | None = None
    duplicate: bool = False
    entity_ids: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.entry.status is EntryStatus.DONE

    @property
    def error(self) -> str | None:
        return self.entry.error


def validate_entry_input(user_id: str, text: str, occurred_at: datetime | None) -> tuple[str, datetime]:
    """Check what the user gave before anything is written; return the cleaned text and the date."""
    check_user_id(user_id)
    if not isinstance(text, str):
        raise ValidationError("entry text must be a string")
    if len(text) > MAX_ENTRY_CHARS:
        raise ValidationError(
            f"entry is {len(text):,} characters; the limit is {MAX_ENTRY_CHARS:,}. Split it into several entries."
        )
    cleaned = clean_text(text)
    if not cleaned.strip():
        raise ValidationError("entry text is empty")
    when = occurred_at or utc_now()
    if not isinstance(when, datetime):
        raise ValidationError("occurred_at must be a datetime")
    try:
        check_aware(when)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    return cleaned, when


def ingest_entry(
    store: Store,
    provider: Provider,
    user_id: str,
    text: str,
    *,
    occurred_at: datetime | None = None,
    source: str = "journal",
    on_step: StepCallback | None = None,
) -> IngestResult:
    """Save an entry and turn it into memories. Never loses the text: on failure the entry stays, ``failed``.

    Bad input raises ``ValidationError`` before anything is written. Ingesting the same text again for the same
    user is a no-op that returns the stored entry with ``duplicate=True`` (a failed one is retried).
    """
    step = on_step or (lambda _: None)
    step("Saving the entry")
    saved, fresh = _save(store, user_id, text, occurred_at, source)
    if not fresh:
        if saved.status is EntryStatus.DONE:
            step("Already in your journal: nothing to do")
            return IngestResult(entry=saved, duplicate=True)
        step("Seen before but not finished: processing it again")
    return process_entry(store, provider, saved, on_step=step, fresh=fresh)


def _entry(user_id: str, text: str, occurred_at: datetime | None, source: str) -> Entry:
    """The entry for what the user gave, validated (nothing stored yet)."""
    cleaned, when = validate_entry_input(user_id, text, occurred_at)
    return Entry(user_id=user_id, text=cleaned, occurred_at=when, source=source)


def _save(store: Store, user_id: str, text: str, occurred_at: datetime | None, source: str) -> tuple[Entry, bool]:
    """Validate and store the entry; return the stored entry and whether it is new (not the same text again)."""
    entry = _entry(user_id, text, occurred_at, source)
    saved = store.save_entry(entry)
    return saved, saved.id == entry.id


def process_entry(
    store: Store, provider: Provider, entry: Entry, *, on_step: StepCallback | None = None, fresh: bool = False
) -> IngestResult:
    """Extract, embed and write the memories of a stored entry, marking it done in the same transaction (or failed,
    with the reason). ``fresh`` says the entry was just saved, so it cannot have memories yet."""
    step = on_step or (lambda _: None)
    if not fresh and _memories_written(store, entry):
        # Memories from an earlier run are there (a crash before the status was written): finish the job.
        store.set_entry_status(entry.user_id, entry.id, EntryStatus.DONE)
        return IngestResult(entry=_with_status(entry, EntryStatus.DONE))
    try:
        step("Extracting memories")
        batch = build_batch(entry, provider.extract(entry.text, occurred_at=entry.occurred_at))
        resolve_entities(store, entry, batch)
        step(f"Embedding {len(batch.nodes())} items")
        embed_batch(provider, batch)
        step("Finding what it changes among earlier memories")
        batch, changes, entity_ids = _plan_and_write(store, provider, entry, batch, on_step=step)
    except DuplicateError:
        step("Already processed elsewhere meanwhile: nothing more to do")
        return IngestResult(entry=_with_status(entry, EntryStatus.DONE), duplicate=True)
    except Exception as exc:  # noqa: BLE001 - any failure must leave the entry stored and marked, never lost
        step(f"Failed: {_reason(exc)}")
        return _failed(store, entry, exc)
    except BaseException:
        # Interrupted (Ctrl-C, a Streamlit rerun): say so on the entry, so it is retried rather than left pending.
        _mark(store, entry, EntryStatus.FAILED, "interrupted before its memories were written")
        raise
    if changes.by_entry.get(entry.id):
        step(f"Updated {len(changes.by_entry[entry.id])} earlier memories (see Changes)")
    step("Done")
    return _done(entry, batch, entity_ids)


def _plan_and_write(
    store: Store, provider: Provider, entry: Entry, batch: MemoryBatch, *, on_step: StepCallback | None = None
) -> tuple[MemoryBatch, ChunkChanges, dict[str, str]]:
    """Plan what one embedded entry changes and write it with its memories. When a memory it changes was changed
    meanwhile (an edit, an undo, another entry's change: ``ChangedMeanwhileError``, nothing written), plan once more
    against the memory as it is now. Returns the batch as written (with the replacements planning made), the
    changes and the entity ids."""
    try:
        return _plan_and_write_once(store, provider, entry, batch, on_step)
    except ChangedMeanwhileError:
        log.info("a memory that entry %s changes was changed meanwhile: planning again", entry.id)
        return _plan_and_write_once(store, provider, entry, batch, on_step)


def _plan_and_write_once(
    store: Store, provider: Provider, entry: Entry, batch: MemoryBatch, on_step: StepCallback | None
) -> tuple[MemoryBatch, ChunkChanges, dict[str, str]]:
    # Planning adds the replacements of beliefs it finds replaced: each attempt starts from the extracted batch.
    planned = batch.model_copy(update={"psyche": list(batch.psyche), "links": list(batch.links)})
    changes = _plan(store, provider, [(entry, planned)])
    if on_step is not None:
        on_step("Writing to the graph")
    return planned, changes, _write_with_changes(store, entry.user_id, planned, changes, [entry.id])


def _plan(store: Store, provider: Provider, items: list[tuple[Entry, MemoryBatch]]) -> ChunkChanges:
    """What the entries change among earlier memories (goals done, beliefs replaced), planned before they are
    written. A failure here is logged and changes nothing: the entries are still written (a missed change is not a
    lost entry, and re-processing the entry finds it again)."""
    try:
        return plan_chunk(store, provider.embedder, items, model=None if provider.offline else provider)
    except Exception:  # noqa: BLE001 - see above
        log.exception("could not plan the memory changes of %d entries", len(items))
        return ChunkChanges()


def _write_with_changes(
    store: Store, user_id: str, batch: MemoryBatch, changes: ChunkChanges, done_entry_ids: Sequence[str]
) -> dict[str, str]:
    """The memories, the done marks and the changes they cause, in one transaction (big entries' early passages
    excepted, see ``write_memories``): a crash or a failing write leaves all of it or none."""
    return write_memories(
        store, user_id, changes.apply_to(batch), done_entry_ids=done_entry_ids, revised=list(changes.stored.values())
    )


def _with_status(entry: Entry, status: EntryStatus, error: str | None = None) -> Entry:
    return entry.model_copy(update={"status": status, "error": error})


def _failed(store: Store, entry: Entry, exc: Exception) -> IngestResult:
    """Record the failure on the stored entry and return it as the result."""
    reason = _reason(exc)
    log.warning("entry %s failed: %s", entry.id, reason)
    _mark(store, entry, EntryStatus.FAILED, reason)
    return IngestResult(entry=_with_status(entry, EntryStatus.FAILED, reason))


def _memories_written(store: Store, entry: Entry) -> bool:
    """Whether an earlier run wrote the entry's memories: its episode exists (it is written in the final transaction,
    with the memories). Passages alone are what a crash between passage chunks left: they are removed, so the
    retry writes each passage once."""
    if store.neighbours(entry.user_id, [entry.id], link_types=[LinkType.FROM_ENTRY]):
        return True
    for link in store.neighbours(entry.user_id, [entry.id], link_types=[LinkType.PART_OF]):
        store.delete_node(entry.user_id, link.source_id)
    return False


def _mark(store: Store, entry: Entry, status: EntryStatus, error: str | None) -> None:
    try:
        store.set_entry_status(entry.user_id, entry.id, status, error=error)
    except Exception:  # noqa: BLE001 - the entry stays pending, which retry_failed also picks up
        log.exception("could not record status %s for entry %s", status, entry.id)


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


def retry_failed(
    store: Store, provider: Provider, user_id: str, *, on_progress: ProgressCallback | None = None
) -> list[IngestResult]:
    """Process again every entry of the user that failed or was left pending (a crash mid-way)."""
    todo: list[Entry] = []
    for status in (EntryStatus.FAILED, EntryStatus.PENDING):
        todo.extend(store.list_nodes(user_id, NodeType.ENTRY, status=status.value, limit=10**9, newest_first=False))
    results = []
    for number, entry in enumerate(todo, start=1):
        result = process_entry(store, provider, entry)  # type: ignore[arg-type]
        results.append(result)
        if on_progress:
            on_progress(number, len(todo), result)
    return results


def ingest_many(
    store: Store,
    provider: Provider,
    user_id: str,
    items: Iterable[tuple[str, datetime | None]],
    *,
    source: str = "import",
    chunk_size: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> list[IngestResult]:
    """Ingest many (text, occurred_at) items in order, reporting progress after each. The whole input is checked
    before anything is written; every entry is saved before it is processed; one failing entry is recorded as
    failed and the import goes on. Entries are written ``chunk_size`` at a time (by default ``OFFLINE_IMPORT_CHUNK``
    offline, else ``IMPORT_CHUNK``): one embeddings call and one store transaction per chunk (a chunk whose joint
    write fails is written entry by entry)."""
    pending = list(items)
    for text, when in pending:
        validate_entry_input(user_id, text, when)
    results: list[IngestResult] = []
    if chunk_size is None:
        chunk_size = OFFLINE_IMPORT_CHUNK if provider.offline else IMPORT_CHUNK
    size = max(1, chunk_size)
    for start in range(0, len(pending), size):
        for result in _ingest_chunk(store, provider, user_id, pending[start : start + size], source):
            results.append(result)
            if on_progress:
                on_progress(len(results), len(pending), result)
    return results


def _ingest_chunk(
    store: Store, provider: Provider, user_id: str, items: list[tuple[str, datetime | None]], source: str
) -> list[IngestResult]:
    results: list[IngestResult | None] = [None] * len(items)
    built: list[tuple[int, Entry, MemoryBatch]] = []
    seen: set[str] = set()
    known: list[Entity] | None = None
    repeats: dict[int, int] = {}  # index of an item repeated within the chunk -> index of its first occurrence
    first: dict[str, int] = {}
    given = [_entry(user_id, text, when, source) for text, when in items]
    for index, entry in enumerate(store.save_entries(given)):  # every entry saved before any is processed
        fresh, when = entry.id == given[index].id, given[index].occurred_at
        if entry.id in seen:
            repeats[index] = first[entry.id]
        elif not fresh and entry.status is EntryStatus.DONE:
            results[index] = IngestResult(entry=entry, duplicate=True)
        elif not fresh:
            results[index] = process_entry(store, provider, entry)
        else:
            try:
                batch = build_batch(entry, provider.extract(entry.text, occurred_at=when))
                known = resolve_entities(store, entry, batch, known)
                built.append((index, entry, batch))
            except Exception as exc:  # noqa: BLE001 - recorded on the entry, the import goes on
                results[index] = _failed(store, entry, exc)
        seen.add(entry.id)
        first.setdefault(entry.id, index)
    if built:
        for index, result in _write_chunk(store, provider, user_id, built):
            results[index] = result
    for index, original in repeats.items():
        # The same text twice in one chunk is one entry: the repeat is "already there" with the entry as it ended
        # (done, or failed with its reason), never a pending entry counted as a failure.
        results[index] = IngestResult(entry=results[original].entry, duplicate=True)  # type: ignore[union-attr]
    return [r for r in results if r is not None]


def _write_chunk(
    store: Store, provider: Provider, user_id: str, built: list[tuple[int, Entry, MemoryBatch]]
) -> list[tuple[int, IngestResult]]:
    """Embed and write several entries' memories at once; on failure, fall back to one entry at a time."""
    try:
        embed_batch(provider, MemoryBatch.combine([b for _, _, b in built]))
        # In date order, so a change is found against the memories of the entries before it (in the chunk too).
        changes = _plan(store, provider, [(e, b) for _, e, b in built])
        combined = MemoryBatch.combine([b for _, _, b in built])  # with the replacements planning added
        entity_ids = _write_with_changes(store, user_id, combined, changes, [e.id for _, e, _ in built])
    except Exception:  # noqa: BLE001 - one bad entry must not fail its neighbours
        log.warning("a chunk of %d entries failed as a whole; writing them one by one", len(built))
        return [(i, _write_one(store, provider, entry, batch)) for i, entry, batch in built]
    return [(i, _done(e, b, entity_ids)) for i, e, b in built]


def _done(entry: Entry, batch: MemoryBatch, entity_ids: dict[str, str]) -> IngestResult:
    """The result of one written entry, with only its own entities (a chunk's write maps all of them) and without
    its vectors: they are stored, and a result keeps what a person reads. Kept, the vectors of a 10,000-entry
    import (tens of millions of Python floats) took ~900 MB until the import returned."""
    for node in batch.nodes():
        node.embedding = None
    own = {e.id: entity_ids.get(e.id, e.id) for e in batch.entities}
    return IngestResult(entry=_with_status(entry, EntryStatus.DONE), batch=batch, entity_ids=own)


def _write_one(store: Store, provider: Provider, entry: Entry, batch: MemoryBatch) -> IngestResult:
    try:
        embed_batch(provider, batch)
        # Planned again: the chunk's earlier entries may be missing, or a memory it changes was changed meanwhile.
        batch, _, entity_ids = _plan_and_write(store, provider, entry, batch)
    except DuplicateError:
        return IngestResult(entry=_with_status(entry, EntryStatus.DONE), duplicate=True)
    except Exception as exc:  # noqa: BLE001 - recorded on the entry
        return _failed(store, entry, exc)
    return _done(entry, batch, entity_ids)


def edit_memory(store: Store, provider: Provider, user_id: str, node_id: str, changes: dict[str, Any]) -> AnyNode:
    """Change a memory's fields; when its searchable text changes, its embedding is recomputed in the same write,
    so vector search finds it by what it now says."""
    node = store.get_node(user_id, node_id)
    updated = type(node).model_validate(node.model_dump() | changes)  # refuses bad values before any write
    if hasattr(node, "embedding") and node_text(updated) != node_text(node):
        changes = changes | {"embedding": provider.embedder.embed([node_text(updated)])[0]}
    return store.update_node(user_id, node_id, changes)


# -- building the batch ----------------------------------------------------------------------------------------
def chunk_passages(text: str, *, max_words: int = PASSAGE_WORDS, min_words: int = 8) -> list[str]:
    """Passages that follow the writer's lines: a line is one passage, a long line is split at sentence ends into
    parts of at most ``max_words`` words (a run-on sentence by words), and very short lines join the next one."""
    passages: list[str] = []
    pending = ""
    for line in (ln.strip() for ln in text.splitlines()):
        if not line:
            continue
        line = f"{pending} {line}" if pending else line
        pending = ""
        if len(line.split()) < min_words:
            pending = line
            continue
        passages.extend(_split_long(line, max_words))
    if pending:
        passages.append(pending)
    return passages


def bound_passages(passages: list[str], limit: int | None = None) -> list[str]:
    """At most ``limit`` (default ``MAX_PASSAGES``) passages: beyond it, runs of neighbouring passages are joined (in
    order, nothing dropped)."""
    limit = limit or MAX_PASSAGES
    if len(passages) <= limit:
        return passages
    size = -(-len(passages) // limit)  # ceiling division
    return ["\n".join(passages[start : start + size]) for start in range(0, len(passages), size)]


def write_memories(
    store: Store,
    user_id: str,
    batch: MemoryBatch,
    *,
    done_entry_ids: Sequence[str],
    revised: Sequence[AnyNode] = (),
) -> dict[str, str]:
    """``store.write_batch``, with the passages of a big batch written first in transactions of
    ``PASSAGE_WRITE_CHUNK``: each holds the store's lock briefly. The episodes, memories, the rest of the passages,
    the ``done`` mark and the ``revised`` memories (the changes the entries cause) still go in one final transaction,
    so an entry is never done without its memories and changes; a crash before it leaves the entry pending with some
    passages, which a retry removes before writing them again."""
    passages = batch.passages
    if len(passages) <= PASSAGE_WRITE_CHUNK:
        return store.write_batch(user_id, batch, done_entry_ids=done_entry_ids, revised=revised)
    early, last = passages[:-PASSAGE_WRITE_CHUNK], passages[-PASSAGE_WRITE_CHUNK:]
    part_of = {lk.source_id: lk for lk in batch.links if lk.type is LinkType.PART_OF}
    for start in range(0, len(early), PASSAGE_WRITE_CHUNK):
        chunk = early[start : start + PASSAGE_WRITE_CHUNK]
        store.write_batch(user_id, MemoryBatch(passages=chunk, links=[part_of[p.id] for p in chunk if p.id in part_of]))
    written = {p.id for p in early}
    rest = batch.model_copy(
        update={"passages": last, "links": [lk for lk in batch.links if lk.source_id not in written]}
    )
    return store.write_batch(user_id, rest, done_entry_ids=done_entry_ids, revised=revised)


def _split_long(line: str, max_words: int) -> list[str]:
    """A line cut at sentence ends into parts of at most ``max_words`` words; nothing is dropped."""
    parts: list[str] = []
    current: list[str] = []
    for sentence in _SENTENCE_END.split(line):
        words = sentence.split()
        while len(words) > max_words:  # a run-on sentence: cut it by words
            if current:
                parts.append(" ".join(current))
                current = []
            parts.append(" ".join(words[:max_words]))
            words = words[max_words:]
        if current and len(current) + len(words) > max_words:
            parts.append(" ".join(current))
            current = []
        current.extend(words)
    if current:
        parts.append(" ".join(current))
    return parts


def build_batch(entry: Entry, extraction: Extraction) -> MemoryBatch:
    """Turn an extraction into stored models with links (embeddings are added by ``embed_batch``)."""
    common = {"user_id": entry.user_id, "entry_id": entry.id, "occurred_at": entry.occurred_at}
    title = clean_text(extraction.title).strip()[:300] or _fallback_title(entry.text)
    summary = clean_text(extraction.summary).strip() or entry.text[:1000]
    episode = Episode(title=title, summary=summary, importance=extraction.importance, **common)
    entities = _entities(entry.user_id, extraction)
    by_name = {e.canonical: e for e in entities}
    for entity in entities:
        for alias in entity.aliases:
            by_name.setdefault(canonical_name(alias), entity)
    links = [Link(type=LinkType.FROM_ENTRY, source_id=episode.id, target_id=entry.id)]
    links += [Link(type=LinkType.MENTIONS, source_id=episode.id, target_id=e.id) for e in entities]
    psyche = []
    for item in extraction.psyche:
        if not clean_text(item.text).strip():
            continue
        node = Psyche(
            kind=item.kind, text=item.text, confidence=item.confidence, source_sentence=item.sentence, **common
        )
        psyche.append(node)
        links += _derived_links(node.id, episode.id, item.entities, by_name)
    goals = []
    for item in extraction.goals:
        if not clean_text(item.title).strip() and not clean_text(item.text).strip():
            continue
        title_text = clean_text(item.title).strip() or item.text
        node = Goal(
            kind=item.kind,
            title=title_text[:300],
            text=item.text if clean_text(item.text).strip() else title_text,
            status=item.status,
            due=item.due,
            source_sentence=item.sentence,
            **common,
        )
        goals.append(node)
        links += _derived_links(node.id, episode.id, item.entities, by_name)
    # Relative dates ("yesterday") get the date they mean in brackets, so a question months later can find it.
    chunks = [annotate(t, entry.occurred_at) for t in bound_passages(chunk_passages(entry.text))]
    passages = [Passage(text=t, position=i, **common) for i, t in enumerate(chunks)]
    links += [Link(type=LinkType.PART_OF, source_id=p.id, target_id=entry.id) for p in passages]
    return MemoryBatch(
        episodes=[episode], psyche=psyche, goals=goals, entities=entities, passages=passages, links=links
    )


def _fallback_title(text: str) -> str:
    words = text.split()
    return " ".join(words[:10]) + ("…" if len(words) > 10 else "")


def _entities(user_id: str, extraction: Extraction) -> list[Entity]:
    """One Entity per canonical name in the extraction (the store merges them with the user's existing ones)."""
    merged: dict[str, Entity] = {}
    for item in extraction.entities:
        name = clean_text(item.name).strip()
        if not canonical_name(name):
            continue
        key = canonical_name(name)
        if key in merged:
            known = merged[key]
            merged[key] = known.model_copy(update={"aliases": sorted({*known.aliases, *item.aliases})})
            continue
        merged[key] = Entity(user_id=user_id, name=name[:200], kind=item.kind, aliases=item.aliases)
    return list(merged.values())


def _derived_links(node_id: str, episode_id: str, names: Sequence[str], by_name: dict[str, Entity]) -> list[Link]:
    links = [Link(type=LinkType.DERIVED_FROM, source_id=node_id, target_id=episode_id)]
    targets = {by_name[canonical_name(n)].id for n in names if canonical_name(n) in by_name}
    links += [Link(type=LinkType.MENTIONS, source_id=node_id, target_id=t) for t in sorted(targets)]
    return links


def embed_batch(provider: Provider, batch: MemoryBatch) -> None:
    """Embed every node of the batch with ONE call to the provider's embedder."""
    nodes = batch.nodes()
    vectors = provider.embedder.embed([node_text(n) for n in nodes])
    if len(vectors) != len(nodes):
        raise ValueError(f"the embedder returned {len(vectors)} vectors for {len(nodes)} texts")
    for node, vector in zip(nodes, vectors, strict=True):
        node.embedding = vector
