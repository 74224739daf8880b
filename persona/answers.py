"""Answers a person can read, and follow-up questions. Plain Python, no Streamlit.

- ``answer_items``: the sources of an answer as one item per entry (a passage, its episode, the psyche and goals
  from the same entry are one item), dated, with the sentence that matched the question and a one-line "why".
- ``resolve_follow_up``: a short follow-up ("and after that?", "what else?") is read with the earlier question,
  and "after that" / "before that" limit the search to after / before what the previous answer found.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from persona.context import no_longer_true
from persona.models import AnyNode, Episode, Goal, NodeType
from persona.retrieval import RetrievedMemory
from persona.text import content_words, stem
from persona.views import full_text, safe_markdown
from persona.viz import node_title, short

_SENTENCE = re.compile(r"(?<=[.!?…])\s+")
_FOLLOW_UP_START = re.compile(
    r"^\s*(and|then|also|so|but|what about|how about|what else|anything else|more|after that|before that)\b",
    re.IGNORECASE,
)
_AFTER = re.compile(r"\b(after that|afterwards|and then|then|next|later|after)\b", re.IGNORECASE)
_BEFORE = re.compile(r"\b(before that|before|earlier|previously)\b", re.IGNORECASE)
MAX_ITEMS = 5


@dataclass
class AnswerItem:
    """One entry's contribution to an answer."""

    key: str
    when: datetime | None
    title: str
    text: str
    sentence: str
    why: str
    ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A serialisable form (kept in the chat history)."""
        return {
            "key": self.key,
            "when": self.when.isoformat() if self.when else None,
            "date": f"{self.when:%a %d %b %Y}" if self.when else "",
            "title": self.title,
            "text": self.text,
            "sentence": self.sentence,
            "why": self.why,
            "ids": self.ids,
        }


def entry_key(node: AnyNode) -> str:
    """What a source belongs to: its entry (passages, episodes, psyche, goals), or itself (entities)."""
    return getattr(node, "entry_id", None) or node.id


def sentences(text: str) -> list[str]:
    """The sentences of a text (split after ``.``, ``!``, ``?``, ``…``)."""
    return [s.strip() for s in _SENTENCE.split(" ".join(text.split())) if s.strip()]


def best_sentence(texts: Sequence[str], question: str) -> str:
    """The sentence sharing the most word stems with the question (the first sentence when none does)."""
    wanted = {stem(w) for w in content_words(question)}
    candidates = [s for text in texts for s in sentences(text)]
    if not candidates:
        return ""
    scored = [(len(wanted & {stem(w) for w in content_words(s)}), -i, s) for i, s in enumerate(candidates)]
    return max(scored)[2]


def _item_text(memories: list[RetrievedMemory]) -> tuple[str, str]:
    """The item's title and text: an episode's title and summary when the entry has one, else the best source."""
    episode = next((m.node for m in memories if isinstance(m.node, Episode)), None)
    if episode is not None:
        return episode.title.rstrip("…. "), episode.summary
    node = memories[0].node
    stale = f" ({mark})" if (mark := no_longer_true(node)) else ""  # as the offline text answer marks it
    if isinstance(node, Goal):
        return f"Goal ({node.status.value}): {node.title}{stale}", node.text
    return f"{short(node_title(node), 90)}{stale}", full_text(node)


def _why(memories: list[RetrievedMemory]) -> str:
    best = memories[0]
    kinds = sorted({m.node.type.value.lower() for m in memories})
    also = f" · from this entry: {', '.join(kinds)}" if len(memories) > 1 else ""
    # A changed belief behind an episode's title is still named: the answer must not pass it off as current.
    stale = [f"{m.node.type.value.lower()} {mark}" for m in memories[1:] if (mark := no_longer_true(m.node))]
    return f"{best.reason}{also}" + "".join(f" · {s}" for s in stale)


def answer_items(sources: Sequence[RetrievedMemory], question: str, *, top: int = MAX_ITEMS) -> list[AnswerItem]:
    """The sources grouped into one item per entry, in the order of each entry's best source."""
    groups: dict[str, list[RetrievedMemory]] = {}
    for memory in sources:
        groups.setdefault(entry_key(memory.node), []).append(memory)
    items = []
    for key, memories in list(groups.items())[:top]:
        title, text = _item_text(memories)
        texts = [text, *(full_text(m.node) for m in memories if m.node.type is NodeType.PASSAGE)]
        dates = [d for m in memories if (d := getattr(m.node, "occurred_at", None)) is not None]
        items.append(
            AnswerItem(
                key=key,
                when=min(dates) if dates else None,
                title=title,
                text=text if text != title else "",
                sentence=best_sentence(texts, question),
                why=_why(memories),
                ids=[m.node.id for m in memories],
            )
        )
    return items


def highlight_markdown(text: str, sentence: str) -> str:
    """``text`` as inert markdown with ``sentence`` in bold; the sentence alone (bold) when it is not in the text."""
    sentence = sentence.strip()
    flat = " ".join(text.split())
    if not sentence:
        return safe_markdown(flat)
    at = flat.find(sentence)
    if at < 0:
        return f"**{safe_markdown(sentence)}**" + (f"  \n{safe_markdown(short(flat, 300))}" if flat else "")
    before, after = flat[:at], flat[at + len(sentence) :]
    return f"{safe_markdown(before)}**{safe_markdown(sentence)}**{safe_markdown(after)}"


@dataclass
class FollowUp:
    """How a question is searched: its text (with the earlier question for a follow-up) and a date window."""

    text: str
    start: datetime | None = None
    end: datetime | None = None
    note: str = ""


def is_follow_up(question: str) -> bool:
    """A question that leans on the previous one: it starts like "and…"/"what else", or has no content words."""
    return bool(_FOLLOW_UP_START.search(question)) or not content_words(question)


def resolve_follow_up(question: str, history: Sequence[dict[str, Any]]) -> FollowUp:
    """Read ``question`` in the light of the conversation so far (``history``: earlier turns, oldest first, each
    with ``role``, ``content`` and, for answers, ``when``: the ISO dates of the items they found).

    A follow-up is searched together with the previous question; "after that" searches after the latest date the
    previous answer found, "before that" before the earliest.
    """
    asked = [t for t in history if t.get("role") == "user"]
    if not asked or not is_follow_up(question):
        return FollowUp(question)
    previous = str(asked[-1].get("search") or asked[-1]["content"])
    text = f"{previous} {question}"
    answers = [t for t in history if t.get("role") == "assistant" and t.get("when")]
    dates = [datetime.fromisoformat(d) for d in (answers[-1]["when"] if answers else [])]
    if dates and _AFTER.search(question):
        latest = max(dates)
        return FollowUp(text, start=latest + timedelta(seconds=1), note=f"after {latest:%d %b %Y}")
    if dates and _BEFORE.search(question):
        earliest = min(dates)
        return FollowUp(text, end=earliest, note=f"before {earliest:%d %b %Y}")
    return FollowUp(text, note="with your previous question")
