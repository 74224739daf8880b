""" "What happened to X?": find what X is (a person or thing the user has named, a goal, a belief) and tell its
story from the entries, oldest first, with the changes each entry made to it (``persona.revisions.thread`` gathers
the entries). Chat, the API, the CLI and the MCP server all answer the question through ``thread_about``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from persona.context import xml_safe
from persona.entities import resolve
from persona.errors import SubjectNotFoundError, ValidationError
from persona.models import (
    AnyNode,
    Entity,
    EntityKind,
    Entry,
    Episode,
    Evolving,
    Goal,
    LinkType,
    NodeType,
    Revision,
    canonical_name,
    check_user_id,
    node_text,
)
from persona.retrieval import RetrievedMemory
from persona.revisions import ALL, thread
from persona.store.base import Store
from persona.text import content_words, stem, words

MAX_ABOUT_CHARS = 200
_QUESTION = re.compile(
    r"^\s*(?:so\s+|and\s+)?what(?:'s|\s+has|\s+had|\s+ever)?\s+happen(?:ed|s)\s+(?:to|with)\s+(?P<about>.+?)[\s?.!]*$",
    re.IGNORECASE,
)
_LEADING = re.compile(r"^(?:my|the|our|that|this|his|her|their)\s+", re.IGNORECASE)


@dataclass(frozen=True)
class ThreadStep:
    """One entry of a thread, with the changes it made to the thread's subject (or to a memory mentioning it)."""

    entry: Entry
    episode: Episode | None = None
    changes: list[tuple[Evolving, Revision]] = field(default_factory=list)

    @property
    def cite_id(self) -> str:
        """The id an answer cites for this step: its episode (a memory chat can show), else the entry."""
        return self.episode.id if self.episode is not None else self.entry.id


@dataclass(frozen=True)
class Thread:
    """What happened to ``about``: the subject it was found to mean, and its entries in time order."""

    about: str
    subject: AnyNode
    steps: list[ThreadStep]

    @property
    def title(self) -> str:
        """The subject as a person reads it ("Dr. Amir Haddad", the goal's title, the belief)."""
        return subject_title(self.subject)


def asked_about(question: str) -> str | None:
    """What a "what happened to X?" question asks about ("what happened with Amir?" -> "Amir"), else ``None``."""
    match = _QUESTION.match(question or "")
    return match.group("about").strip() if match else None


def subject_title(node: AnyNode) -> str:
    """A node's name or title as shown in a thread."""
    if isinstance(node, Entity):
        return node.name
    if isinstance(node, Goal):
        return node.title
    return node_text(node)


def _check_about(about: str) -> str:
    if not isinstance(about, str) or not about.strip():
        raise ValidationError("say what to follow: a person, a thing, a goal or a belief (it is empty)")
    if len(about) > MAX_ABOUT_CHARS:
        raise ValidationError(f"what to follow is longer than {MAX_ABOUT_CHARS} characters")
    return about.strip()


def find_subject(store: Store, user_id: str, about: str) -> AnyNode:
    """The entity, goal or belief ``about`` names for this user: a person or thing by name (titles, first or last
    name alone, aliases), else the goal, then the belief, whose words match best. ``SubjectNotFoundError`` when
    nothing does."""
    check_user_id(user_id)
    about = _check_about(about)
    name = _LEADING.sub("", about).strip() or about
    entities = [e for e in store.list_nodes(user_id, NodeType.ENTITY, limit=ALL) if isinstance(e, Entity)]
    for kind in (EntityKind.PERSON, EntityKind.THING):
        found = resolve(name, kind, entities)
        if found is not None:
            return found
    wanted = set(canonical_name(name).split())
    for types in ([NodeType.GOAL], [NodeType.PSYCHE], [NodeType.ENTITY]):
        for hit in store.text_search(user_id, name, k=5, types=types):
            node = store.get_nodes(user_id, [hit.id])
            if node and wanted & set(canonical_name(subject_title(node[0])).split()):
                return node[0]
    raise SubjectNotFoundError(about)


def thread_about(store: Store, user_id: str, about: str) -> Thread:
    """What happened to ``about``: its subject and the entries telling its story, oldest first, each with the
    changes it made to the subject (or, for a person or thing, to the goals and beliefs that mention it)."""
    subject = find_subject(store, user_id, about)
    entries = thread(store, user_id, subject.id)
    if isinstance(subject, Evolving):
        entries = _with_entries_about(store, user_id, subject, entries)
    followed = [subject] if isinstance(subject, Evolving) else []
    if isinstance(subject, Entity):
        links = store.neighbours(user_id, [subject.id], link_types=[LinkType.MENTIONS])
        mentioning = store.get_nodes(user_id, [lk.source_id for lk in links if lk.target_id == subject.id])
        followed = [n for n in mentioning if isinstance(n, Evolving)]
    made = store.neighbours(user_id, [e.id for e in entries], link_types=[LinkType.FROM_ENTRY])
    episodes = {
        n.entry_id: n for n in store.get_nodes(user_id, [lk.source_id for lk in made]) if isinstance(n, Episode)
    }
    steps = []
    for entry in entries:
        changes = [(node, r) for node in followed for r in node.revisions if r.entry_id == entry.id]
        steps.append(ThreadStep(entry, episodes.get(entry.id), changes))
    return Thread(about, subject, steps)


TOPIC_HITS = 50
"""Passages searched for the words of a goal or belief (the entries that speak of it without a change)."""


def topic_words(subject: Evolving) -> set[str]:
    """What a goal or belief is about, as stemmed words: its content words but the first when there are more
    ("finish", "learn", "love" in "Finish my thesis", "Learn the cello", "I love coffee")."""
    text = subject.title if isinstance(subject, Goal) else node_text(subject)
    found = content_words(text)
    return {stem(w) for w in (found[1:] if len(found) > 1 else found)}


def _with_entries_about(store: Store, user_id: str, subject: Evolving, entries: list[Entry]) -> list[Entry]:
    """``entries`` and the entries whose passages say every topic word of ``subject`` ("Amir read chapter two of
    the thesis" for "Finish my thesis"), oldest first."""
    topic = topic_words(subject)
    if not topic:
        return entries
    hits = store.text_search(user_id, " ".join(sorted(topic)), k=TOPIC_HITS, types=[NodeType.PASSAGE])
    passages = store.get_nodes(user_id, [hit.id for hit in hits])
    known = {e.id for e in entries}
    more = [p.entry_id for p in passages if topic <= {stem(w) for w in words(node_text(p))}]
    found = [
        e for e in store.get_nodes(user_id, [i for i in dict.fromkeys(more) if i not in known]) if isinstance(e, Entry)
    ]
    return sorted([*entries, *found], key=lambda e: (e.occurred_at, e.created_at))


def thread_sources(found: Thread) -> list[RetrievedMemory]:
    """The thread's episodes as an answer's sources, in time order (what chat shows and lets the model cite)."""
    return [
        RetrievedMemory(node=step.episode, score=1.0, shares={"thread": 1.0}, reason=f"mentions {found.title}")
        for step in found.steps
        if step.episode is not None
    ]


CHANGE_WORDS = {"done": "done", "dropped": "dropped", "postponed": "postponed", "superseded": "no longer true"}


def change_line(node: Evolving, revision: Revision) -> str:
    """One change as a person reads it: "Submit the thesis: done"."""
    return f"{subject_title(node)}: {CHANGE_WORDS.get(revision.change, revision.change)}"


def thread_text(found: Thread, *, words: int = 50) -> str:
    """A thread as plain lines: each entry dated, shortened and cited, then the changes it made."""
    if not found.steps:
        return f"Nothing in your entries mentions {found.title} yet."
    lines = [f"What happened to {found.title}, oldest first:", ""]
    for number, step in enumerate(found.steps, start=1):
        parts = step.entry.text.split()
        text = " ".join(parts[:words]) + (" …" if len(parts) > words else "")
        lines.append(f"{number}. {step.entry.occurred_at:%d %b %Y} · {text} [{step.cite_id}]")
        lines += [f"   → {change_line(node, revision)}" for node, revision in step.changes]
    return "\n".join(lines)


def thread_xml(found: Thread, *, words: int = 120) -> str:
    """A thread for the model: the entries in time order with their changes, escaped as data."""
    rows = [f"<thread about={quoteattr(xml_safe(found.title))}>"]
    for step in found.steps:
        parts = step.entry.text.split()
        text = " ".join(parts[:words]) + (" …" if len(parts) > words else "")
        changes = "".join(
            f"<change>{xml_escape(xml_safe(change_line(node, revision)))}</change>" for node, revision in step.changes
        )
        rows.append(
            f'<entry id="{step.cite_id}" date="{step.entry.occurred_at:%Y-%m-%d}">'
            f"<text>{xml_escape(xml_safe(text))}</text>{changes}</entry>"
        )
    rows.append("</thread>")
    return "\n".join(rows)


def thread_dict(found: Thread) -> dict[str, Any]:
    """A thread as JSON-ready data (the API, ``persona thread --json`` and the MCP tool serve it)."""
    return {
        "about": found.about,
        "subject": {"id": found.subject.id, "type": found.subject.type.value, "title": found.title},
        "entries": [
            {
                "id": step.entry.id,
                "episode_id": step.episode.id if step.episode is not None else None,
                "occurred_at": step.entry.occurred_at.isoformat(),
                "text": step.entry.text,
                "changes": [
                    {
                        "memory_id": node.id,
                        "memory": subject_title(node),
                        "change": revision.change,
                        "at": revision.at.isoformat(),
                        "sentence": revision.sentence,
                    }
                    for node, revision in step.changes
                ],
            }
            for step in found.steps
        ],
        "text": thread_text(found),
    }
