"""Evaluation on LoCoMo-format conversations, following ``shared/eval/README.md``.

Headline: answer recall within a context budget (B = 500 / 1,000 / 2,000 whitespace tokens) for categories 1, 2
and 4. Secondary: session recall@k (categories 1-4). Baselines in the same run: the raw turns ranked by BM25 alone
and by embedding similarity alone, with the same embedder as the system.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dateutil import parser as date_parser

from persona.context import format_items
from persona.ingest import ingest_many
from persona.llm.base import Provider
from persona.models import Entry, MemoryBatch, NodeType, Passage
from persona.retrieval import RetrievalPreset, RetrievalQuery, retrieve
from persona.store.sqlite import SqliteStore
from persona.text import content_words as text_words
from persona.text import words

HEADLINE_CATEGORIES = (1, 2, 4)
SESSION_CATEGORIES = (1, 2, 3, 4)
CATEGORY_NAMES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
_EVAL_STOPWORD_TEXT = """a an the of in on at to for and or is was were be been it its this that with by from as i you
he she they we my your his her their our me him them us do did does not no yes"""
EVAL_STOPWORDS = frozenset(_EVAL_STOPWORD_TEXT.split())
_EVIDENCE = re.compile(r"D(\d+):\d+")
SYSTEMS = ("persona", "bm25-turns", "embedding-turns")


@dataclass
class Turn:
    dia_id: str
    speaker: str
    text: str


@dataclass
class Session:
    number: int
    when: datetime
    date_text: str
    turns: list[Turn]

    def entry_text(self) -> str:
        """The journal entry for a session: one line per turn, ``<speaker>: <text>`` (+ ``[image: ...]``)."""
        return "\n".join(f"{t.speaker}: {t.text}" for t in self.turns)


@dataclass
class Question:
    text: str
    answer: str
    category: int
    sessions: set[int]


@dataclass
class Conversation:
    sample_id: str
    sessions: list[Session]
    questions: list[Question]


def parse_session_date(text: str) -> datetime:
    """LoCoMo's ``"1:56 pm on 8 May, 2023"`` as an aware datetime (UTC: the data gives no zone)."""
    parsed = date_parser.parse(text.replace(" on ", " "), fuzzy=True)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def load_conversations(path: str | Path) -> list[Conversation]:
    """Read a LoCoMo-format JSON file (sessions with no turns are skipped)."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    conversations = []
    for sample in raw:
        conv = sample["conversation"]
        sessions = []
        numbers = sorted(int(m.group(1)) for k in conv if (m := re.fullmatch(r"session_(\d+)", k)))
        for number in numbers:
            turns_raw = conv.get(f"session_{number}") or []
            date_text = conv.get(f"session_{number}_date_time")
            if not turns_raw or not date_text:
                continue
            turns = [Turn(t["dia_id"], t["speaker"], _turn_text(t)) for t in turns_raw]
            sessions.append(Session(number, parse_session_date(date_text), date_text, turns))
        questions = [
            Question(q["question"], str(q.get("answer", "")), int(q["category"]), _evidence_sessions(q))
            for q in sample["qa"]
            if int(q["category"]) != 5 and "answer" in q
        ]
        conversations.append(Conversation(sample["sample_id"], sessions, questions))
    return conversations


def _turn_text(turn: dict[str, Any]) -> str:
    text = turn.get("text", "")
    return f"{text} [image: {turn['blip_caption']}]" if turn.get("blip_caption") else text


def _evidence_sessions(qa: dict[str, Any]) -> set[int]:
    return {int(n) for item in qa.get("evidence") or [] for n in _EVIDENCE.findall(str(item))}


def content_words(text: str) -> list[str]:
    """Lowercased ``\\w+`` runs that are not in the protocol's stopword list."""
    return text_words(text, stopwords=EVAL_STOPWORDS)


def cut_to_budget(items: Sequence[str], budget: int) -> list[str]:
    """Items in order until the next one would pass ``budget`` whitespace-separated tokens."""
    kept, used = [], 0
    for item in items:
        cost = len(item.split())
        if used + cost > budget:
            break
        kept.append(item)
        used += cost
    return kept


def answer_hit(answer: str, context: Iterable[str]) -> bool:
    """True when at least 80% of the answer's content words appear among the context's words."""
    wanted = content_words(answer)
    if not wanted:
        return False
    have = {w for item in context for w in words(item)}
    return sum(w in have for w in wanted) >= 0.8 * len(wanted)


def session_recall(ranked_sessions: Sequence[int | None], gold: set[int], k: int) -> float:
    """Share of the gold sessions found among the first ``k`` distinct sessions of the ranking."""
    seen: list[int] = []
    for session in ranked_sessions:
        if session is not None and session not in seen:
            seen.append(session)
        if len(seen) == k:
            break
    return len(gold & set(seen)) / len(gold)


@dataclass
class Ranking:
    """One system's answer to one question: context items in rank order and the session of each."""

    items: list[str]
    sessions: list[int | None]


@dataclass
class Tally:
    """Sums per system, per category, per metric (hit counts and recall sums, with their question counts)."""

    sums: dict[tuple[str, int, str], float] = field(default_factory=lambda: defaultdict(float))
    counts: dict[tuple[str, int, str], int] = field(default_factory=lambda: defaultdict(int))

    def add(self, system: str, category: int, metric: str, value: float) -> None:
        self.sums[(system, category, metric)] += value
        self.counts[(system, category, metric)] += 1

    def mean(self, system: str, metric: str, categories: Iterable[int]) -> float | None:
        keys = [(system, c, metric) for c in categories]
        count = sum(self.counts[k] for k in keys)
        return sum(self.sums[k] for k in keys) / count if count else None

    def count(self, system: str, metric: str, categories: Iterable[int]) -> int:
        return sum(self.counts[(system, c, metric)] for c in categories)


def _ingest_conversation(store: SqliteStore, provider: Provider, user: str, conv: Conversation) -> dict[str, int]:
    results = ingest_many(store, provider, user, [(s.entry_text(), s.when) for s in conv.sessions], source="locomo")
    failed = [r.error for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} sessions failed to ingest: {failed[0]}")
    return {r.entry.id: s.number for r, s in zip(results, conv.sessions, strict=True)}


def _build_turn_store(
    store: SqliteStore, provider: Provider, user: str, conv: Conversation
) -> dict[str, tuple[int, str]]:
    """The baselines' items: every raw turn as its own passage, ``[<session date>] <speaker>: <text>``."""
    store.ensure_user(user)
    by_id: dict[str, tuple[int, str]] = {}
    for session in conv.sessions:
        entry = Entry(user_id=user, text=session.entry_text(), occurred_at=session.when, source="locomo")
        store.save_entry(entry)
        texts = [f"[{session.date_text}] {t.speaker}: {t.text}" for t in session.turns]
        passages = [
            Passage(user_id=user, entry_id=entry.id, occurred_at=session.when, text=text, position=i)
            for i, text in enumerate(texts)
        ]
        for passage, vector in zip(passages, provider.embedder.embed(texts), strict=True):
            passage.embedding = vector
            by_id[passage.id] = (session.number, passage.text)
        store.write_batch(user, MemoryBatch(passages=passages))
    return by_id


def evaluate_locomo(
    path: str | Path,
    provider: Provider,
    *,
    budgets: Sequence[int] = (500, 1000, 2000),
    ks: Sequence[int] = (1, 3, 5, 10),
    preset: RetrievalPreset | str = "default",
    retrieve_limit: int = 80,
    on_progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the protocol on every conversation of the file; return a JSON-ready report."""
    tally = Tally()
    say = on_progress or (lambda _: None)
    for conv in load_conversations(path):
        user = re.sub(r"[^a-z0-9_-]", "-", conv.sample_id.lower())
        system_store = SqliteStore(None, embedder=provider.embedder.info)
        turn_store = SqliteStore(None, embedder=provider.embedder.info)
        say(f"{conv.sample_id}: ingesting {len(conv.sessions)} sessions")
        session_of_entry = _ingest_conversation(system_store, provider, user, conv)
        turns = _build_turn_store(turn_store, provider, user, conv)
        say(f"{conv.sample_id}: {len(conv.questions)} questions")
        for question in conv.questions:
            rankings = {
                "persona": _persona_ranking(
                    system_store, provider, user, question, session_of_entry, preset, retrieve_limit
                ),
                "bm25-turns": _turn_ranking(turn_store.text_search(user, question.text, k=retrieve_limit), turns),
                "embedding-turns": _turn_ranking(
                    turn_store.vector_search(user, provider.embedder.embed([question.text])[0], k=retrieve_limit), turns
                ),
            }
            for system, ranking in rankings.items():
                _score_question(tally, system, question, ranking, budgets, ks)
        system_store.close()
        turn_store.close()
    return _report(tally, budgets, ks, provider, preset)


def _persona_ranking(
    store: SqliteStore,
    provider: Provider,
    user: str,
    question: Question,
    session_of_entry: dict[str, int],
    preset: RetrievalPreset | str,
    limit: int,
) -> Ranking:
    results = retrieve(store, provider.embedder, user, RetrievalQuery(text=question.text, limit=limit), preset=preset)
    sessions = [
        None if r.type is NodeType.ENTITY else session_of_entry.get(getattr(r.node, "entry_id", "")) for r in results
    ]
    return Ranking(format_items(results), sessions)


def _turn_ranking(hits: Sequence[Any], turns: dict[str, tuple[int, str]]) -> Ranking:
    return Ranking([turns[h.id][1] for h in hits], [turns[h.id][0] for h in hits])


def _score_question(
    tally: Tally, system: str, question: Question, ranking: Ranking, budgets: Sequence[int], ks: Sequence[int]
) -> None:
    if question.category in HEADLINE_CATEGORIES:
        for budget in budgets:
            hit = answer_hit(question.answer, cut_to_budget(ranking.items, budget))
            tally.add(system, question.category, f"answer@{budget}", float(hit))
    if question.category in SESSION_CATEGORIES and question.sessions:
        for k in ks:
            tally.add(system, question.category, f"session@{k}", session_recall(ranking.sessions, question.sessions, k))


def _report(
    tally: Tally, budgets: Sequence[int], ks: Sequence[int], provider: Provider, preset: RetrievalPreset | str
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "embedder": provider.embedder.info.name,
        "preset": preset if isinstance(preset, str) else preset.name,
        "systems": {},
    }
    for system in SYSTEMS:
        figures: dict[str, Any] = {}
        for budget in budgets:
            metric = f"answer@{budget}"
            figures[metric] = {
                "overall": tally.mean(system, metric, HEADLINE_CATEGORIES),
                "n": tally.count(system, metric, HEADLINE_CATEGORIES),
                **{CATEGORY_NAMES[c]: tally.mean(system, metric, [c]) for c in HEADLINE_CATEGORIES},
            }
        for k in ks:
            metric = f"session@{k}"
            figures[metric] = {
                "overall": tally.mean(system, metric, SESSION_CATEGORIES),
                "n": tally.count(system, metric, SESSION_CATEGORIES),
                **{CATEGORY_NAMES[c]: tally.mean(system, metric, [c]) for c in SESSION_CATEGORIES},
            }
        report["systems"][system] = figures
    return report


def format_report(report: dict[str, Any]) -> str:
    """The report as a plain-text table: one row per system and metric, overall then per category."""
    first = next(iter(report["systems"].values()))
    lines = [f"embedder: {report['embedder']}   preset: {report['preset']}", ""]
    for metric in first:
        categories = [k for k in first[metric] if k not in ("overall", "n")]
        lines.append(f"{metric:<14}{'system':<18}{'overall':>8}" + "".join(f"{c:>13}" for c in categories))
        for system, figures in report["systems"].items():
            row = figures[metric]
            cells = "".join(f"{_pct(row[c]):>13}" for c in categories)
            lines.append(f"{'':<14}{system:<18}{_pct(row['overall']):>8}{cells}")
        lines.append(f"{'':<14}(n = {first[metric]['n']})")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


# -- paraphrase questions over the demo persona ------------------------------------------------------------------------
PARAPHRASE_KS = (1, 3, 5)


@dataclass
class ParaphraseQuestion:
    """A question phrased in other words than its answer entries; ``gold`` holds those entries' dates."""

    text: str
    gold: set[str]


def load_paraphrase_questions(path: str | Path) -> list[ParaphraseQuestion]:
    """One JSON object a line: ``{"question": "...", "gold": ["2026-06-21", ...]}`` (ISO dates of entries)."""
    questions = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            questions.append(ParaphraseQuestion(item["question"], set(item["gold"])))
    return questions


def ranked_dates(store: SqliteStore, user: str, ids: Sequence[str]) -> list[str]:
    """The distinct entry dates of the nodes ``ids``, in their order (entities, which have no date, are skipped)."""
    dates: list[str] = []
    for node in store.get_nodes(user, list(ids)):
        when = getattr(node, "occurred_at", None)
        if when is not None and when.date().isoformat() not in dates:
            dates.append(when.date().isoformat())
    return dates


def evaluate_paraphrase(
    path: str | Path,
    providers: dict[str, Provider],
    *,
    presets: dict[str, str] | None = None,
    ks: Sequence[int] = PARAPHRASE_KS,
    limit: int = 30,
) -> dict[str, dict[str, float]]:
    """hit@k over the demo persona for each embedder (vector search alone and the full hybrid retrieval, with the
    preset ``presets`` names for it, else the default) and for BM25 alone: a question is a hit when one of its gold
    dates is among the first ``k`` distinct entry dates."""
    from persona.demo import load_demo

    questions = load_paraphrase_questions(path)
    presets = presets or {}
    hits: dict[str, list[list[bool]]] = {}
    for label, provider in providers.items():
        store = SqliteStore(None, embedder=provider.embedder.info)
        load_demo(store, provider, "demo")
        preset = presets.get(label, "default")
        systems: dict[str, Callable[[str], list[str]]] = {
            f"vector ({label})": lambda q, s=store, p=provider: [
                h.id for h in s.vector_search("demo", p.embedder.embed([q])[0], k=limit)
            ],
            f"hybrid ({label})": lambda q, s=store, p=provider, r=preset: [
                m.id for m in retrieve(s, p.embedder, "demo", RetrievalQuery(text=q, limit=limit), preset=r)
            ],
        }
        if "bm25" not in hits:
            systems["bm25"] = lambda q, s=store: [h.id for h in s.text_search("demo", q, k=limit)]
        for system, search in systems.items():
            dates = [ranked_dates(store, "demo", search(q.text)) for q in questions]
            hits[system] = [[bool(q.gold & set(d[:k])) for k in ks] for q, d in zip(questions, dates, strict=True)]
        store.close()
    return {
        system: {f"hit@{k}": sum(row[i] for row in rows) / len(rows) for i, k in enumerate(ks)} | {"n": len(rows)}
        for system, rows in hits.items()
    }


def format_paraphrase_report(report: dict[str, dict[str, float]]) -> str:
    """The paraphrase figures as a plain-text table, one row per system."""
    metrics = [m for m in next(iter(report.values())) if m != "n"]
    lines = [f"{'system':<34}" + "".join(f"{m:>8}" for m in metrics)]
    for system, figures in report.items():
        lines.append(f"{system:<34}" + "".join(f"{figures[m]:>8.3f}" for m in metrics))
    lines.append(f"(n = {next(iter(report.values()))['n']} questions)")
    return "\n".join(lines)
