"""Precision and recall of memory evolution on a hand-labelled set (``tests/data/evolution_dev.jsonl``).

Each case is a small journal (dated entries in order, and now and then a merge the user made) with the changes a
person expects: goals that became done / dropped / postponed (and at which entry), earlier beliefs that a later
entry replaced, names that are one person, and names that must stay apart. Distractor cases expect nothing.

The journal runs through the offline extractor and the same decision functions ingest uses
(``persona.evolution``, ``persona.entities``), in memory, so the figures measure the rules, not a store.
Scoring: goal and belief changes are matched on (memory, kind of change, entry); aliases are scored over pairs of
differently written names (a pair predicted to be one entity is right when the labels put both in one group).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import combinations
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from persona.entities import (
    described_as_other,
    known_mentions,
    merge_facts,
    relation_fact,
    relations_in,
    resolve,
    stated_nicknames,
)
from persona.evolution import POSTPONED, Similarity, detect_belief_changes, detect_goal_changes
from persona.llm.base import Embedder
from persona.llm.offline import extract_offline
from persona.models import Entity, EntityKind, Goal, GoalStatus, Psyche, canonical_name

KINDS = ("goals", "beliefs", "aliases", "relations")


@dataclass
class Tally:
    """True positives, false positives and false negatives of one kind, with the misses for reading."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass
class _Journal:
    """The memories of one case as they evolve."""

    goals: list[Goal] = field(default_factory=list)
    psyche: list[Psyche] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)
    mentions: dict[str, str] = field(default_factory=dict)  # canonical surface name -> entity id
    goal_changes: list[tuple[str, str, int]] = field(default_factory=list)
    belief_changes: list[tuple[str, int]] = field(default_factory=list)
    relation_facts: list[tuple[str, str, int]] = field(default_factory=list)  # (entity id, relation, entry)


def embedder_similarity(embedder: Embedder) -> Similarity:
    """Cosine similarity of two texts by ``embedder`` (vectors cached per text)."""
    cache: dict[str, np.ndarray] = {}

    def vector(text: str) -> np.ndarray:
        if text not in cache:
            cache[text] = np.asarray(embedder.embed([text])[0], dtype=np.float32)
        return cache[text]

    return lambda a, b: float(vector(a) @ vector(b))


def load_cases(path: Path) -> list[dict[str, Any]]:
    """The cases of a JSONL file, one per line."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _when(day: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC).replace(hour=12)


def run_case(case: dict[str, Any], similarity: Similarity | None) -> _Journal:
    """Play one journal through extraction and the evolution rules."""
    journal = _Journal()
    for number, step in enumerate(case["entries"]):
        if "merge" in step:
            _merge(journal, *step["merge"])
            continue
        when = _when(step["date"])
        extraction = extract_offline(step["text"], occurred_at=when)
        for entity in extraction.entities:
            _mention(journal, entity.name, entity.kind, other=described_as_other(step["text"], entity.name))
        people = [e.name for e in extraction.entities if e.kind in (EntityKind.PERSON, EntityKind.THING)]
        for nick, full in stated_nicknames(step["text"], people).items():
            _nickname(journal, nick, full)
        extracted = {canonical_name(n) for e in extraction.entities for n in (e.name, *e.name.split())}
        for word, _entity in known_mentions(step["text"], journal.entities, extracted):
            _mention(journal, word, EntityKind.PERSON)
        _relations(journal, step["text"], when, number)
        active = [g for g in journal.goals if g.status is GoalStatus.ACTIVE]
        for change in detect_goal_changes(step["text"], active, today=when.date(), similarity=similarity):
            goal = next(g for g in journal.goals if g.id == change.goal_id)
            journal.goal_changes.append((goal.title, change.status, number))
            if change.status != POSTPONED:
                goal.status = GoalStatus(change.status)
        for change in detect_belief_changes(step["text"], journal.psyche, similarity=similarity):
            old = next(p for p in journal.psyche if p.id == change.old_id)
            journal.belief_changes.append((old.text, number))
            journal.psyche.remove(old)
        common = {"user_id": "eval", "entry_id": f"e{number}", "occurred_at": when}
        journal.goals += [
            Goal(kind=g.kind, title=g.title, text=g.text, status=g.status, **common) for g in extraction.goals
        ]
        journal.psyche += [Psyche(kind=p.kind, text=p.text, **common) for p in extraction.psyche]
    return journal


def _mention(journal: _Journal, name: str, kind: Any, *, other: bool = False) -> None:
    key = canonical_name(name)
    found = resolve(name, kind, journal.entities, introduced_as_other=other)
    if found is None:
        found = Entity(user_id="eval", name=name, kind=kind)
        journal.entities.append(found)
    elif canonical_name(found.name) != key and name not in found.aliases:
        found.aliases = [*found.aliases, name]
    journal.mentions[key] = found.id


def _relations(journal: _Journal, text: str, when: datetime, number: int) -> None:
    """Relations the entry states, kept as the store keeps them (``merge_facts``): a new or changed one is a fact."""
    for key, relation in relations_in(text).items():
        entity = next((e for e in journal.entities if e.id == journal.mentions.get(key)), None)
        if entity is None:
            continue
        facts = merge_facts(entity.facts, [relation_fact(relation, when, f"e{number}")])
        if len(facts) > len(entity.facts):
            journal.relation_facts.append((entity.id, relation, number))
        entity.facts = facts


def _nickname(journal: _Journal, nick: str, full: str) -> None:
    """A nickname the entry states joins the full name's entity (as ``resolve_entities`` points it there)."""
    if canonical_name(full) not in journal.mentions:  # "Robert, or Bobby as ...": named by the statement itself
        _mention(journal, full, EntityKind.PERSON)
    full_id = journal.mentions.get(canonical_name(full))
    holder = next((e for e in journal.entities if e.id == full_id), None)
    if holder is None:
        return
    journal.mentions[canonical_name(nick)] = holder.id
    holder.aliases = [*holder.aliases, nick]
    used = set(journal.mentions.values())
    journal.entities = [e for e in journal.entities if e.id in used]  # the nickname's own entity, if one was made


def _merge(journal: _Journal, keep_name: str, drop_name: str) -> None:
    keep_id, drop_id = journal.mentions[canonical_name(keep_name)], journal.mentions[canonical_name(drop_name)]
    keep = next(e for e in journal.entities if e.id == keep_id)
    drop = next(e for e in journal.entities if e.id == drop_id)
    keep.aliases = [*keep.aliases, drop.name, *drop.aliases]
    journal.entities.remove(drop)
    journal.mentions = {k: keep_id if v == drop_id else v for k, v in journal.mentions.items()}


F = TypeVar("F")  # a detection
G = TypeVar("G")  # a label


def _score(
    case: dict[str, Any],
    tally: Tally,
    found: Iterable[F],
    gold: Iterable[G],
    *,
    hits: Callable[[F, G], bool],
    wrong: Callable[[F], str],
    missed: Callable[[G], str],
) -> None:
    """Score one case's detections against its labels, one to one: each detection takes the first label left that
    it ``hits`` (a true positive) or is a false positive (``wrong`` says what); labels left over are misses."""
    left = list(gold)
    for item in found:
        hit = next((g for g in left if hits(item, g)), None)
        if hit is None:
            tally.fp += 1
            tally.errors.append(f"{case['id']}: {wrong(item)}")
        else:
            tally.tp += 1
            left.remove(hit)
    tally.fn += len(left)
    tally.errors += [f"{case['id']}: {missed(g)}" for g in left]


def _score_goals(case: dict[str, Any], journal: _Journal, tally: Tally) -> None:
    _score(
        case,
        tally,
        journal.goal_changes,
        case["expect"]["goals"],
        hits=lambda c, g: g["goal"] in c[0].lower() and g["status"] == c[1] and g["entry"] == c[2],
        wrong=lambda c: f"wrongly {c[1]}: {c[0]!r} at entry {c[2]}",
        missed=lambda g: f"missed {g['status']} of {g['goal']!r}",
    )


def _score_beliefs(case: dict[str, Any], journal: _Journal, tally: Tally) -> None:
    _score(
        case,
        tally,
        journal.belief_changes,
        case["expect"]["beliefs"],
        hits=lambda c, b: b["old"] in c[0].lower() and b["entry"] == c[1],
        wrong=lambda c: f"wrongly replaced {c[0]!r} at entry {c[1]}",
        missed=lambda b: f"missed the change of {b['old']!r}",
    )


def _score_relations(case: dict[str, Any], journal: _Journal, tally: Tally) -> None:
    """Relation facts (who the writer names how, from which entry), scored only in cases that label them."""
    if "relations" not in case["expect"]:
        return
    gold = [
        (journal.mentions.get(canonical_name(r["name"])), r["relation"], r["entry"])
        for r in case["expect"]["relations"]
    ]
    names = {e.id: e.name for e in journal.entities}
    _score(
        case,
        tally,
        journal.relation_facts,
        gold,
        hits=lambda fact, label: fact == label,
        wrong=lambda f: f"wrongly {f[1]!r} for {names.get(f[0])!r} at entry {f[2]}",
        missed=lambda g: f"missed {g[1]!r} for {names.get(g[0] or '', 'an unknown name')!r} at entry {g[2]}",
    )


def _pairs(groups: Iterable[Iterable[str]]) -> set[frozenset[str]]:
    pairs = set()
    for group in groups:
        names = sorted({canonical_name(n) for n in group})
        pairs |= {frozenset(p) for p in combinations(names, 2)}
    return pairs


def _score_aliases(case: dict[str, Any], journal: _Journal, tally: Tally) -> None:
    gold = _pairs(case["expect"]["aliases"])
    predicted = {
        frozenset(p)
        for p in combinations(sorted(journal.mentions), 2)
        if journal.mentions[p[0]] == journal.mentions[p[1]]
    }
    tally.tp += len(predicted & gold)
    tally.fp += len(predicted - gold)
    tally.fn += len(gold - predicted)
    tally.errors += [f"{case['id']}: wrongly joined {sorted(p)}" for p in predicted - gold]
    tally.errors += [f"{case['id']}: did not join {sorted(p)}" for p in gold - predicted]


def evaluate_evolution(path: Path, *, embedder: Embedder | None = None) -> dict[str, Any]:
    """Precision, recall and counts per kind over the cases in ``path``, and the time per entry."""
    tallies = {kind: Tally() for kind in KINDS}
    similarity = embedder_similarity(embedder) if embedder is not None else None
    cases = load_cases(path)
    entries = sum(1 for c in cases for s in c["entries"] if "text" in s)
    started = time.perf_counter()
    for case in cases:
        journal = run_case(case, similarity)
        _score_goals(case, journal, tallies["goals"])
        _score_beliefs(case, journal, tallies["beliefs"])
        _score_aliases(case, journal, tallies["aliases"])
        _score_relations(case, journal, tallies["relations"])
    elapsed = time.perf_counter() - started
    return {
        "file": str(path),
        "cases": len(cases),
        "entries": entries,
        "ms_per_entry": round(1000 * elapsed / max(1, entries), 2),
        "embedder": embedder.info.name if embedder is not None else None,
        "kinds": {
            kind: {"tp": t.tp, "fp": t.fp, "fn": t.fn, "precision": round(t.precision, 3), "recall": round(t.recall, 3)}
            for kind, t in tallies.items()
        },
        "errors": [e for t in tallies.values() for e in t.errors],
    }


def format_evolution_report(report: dict[str, Any], *, details: bool = False) -> str:
    """The report as a small table (and the misses when ``details``)."""
    lines = [
        f"{report['file']}: {report['cases']} cases, {report['entries']} entries, {report['ms_per_entry']} ms/entry"
        f" (embedder: {report['embedder'] or 'none'})",
        f"{'kind':<8} {'precision':>9} {'recall':>7} {'tp':>4} {'fp':>4} {'fn':>4}",
    ]
    for kind, row in report["kinds"].items():
        lines.append(
            f"{kind:<9} {row['precision']:>9.3f} {row['recall']:>7.3f} {row['tp']:>4} {row['fp']:>4} {row['fn']:>4}"
        )
    if details:
        lines += ["", *report["errors"]]
    return "\n".join(lines)
