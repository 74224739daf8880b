"""The memory context handed to an LLM: XML with every value escaped, each item with its id, type and date.

Built with ElementTree, so escaping is the XML library's job, not ours; characters XML 1.0 cannot carry at all
(control characters, lone surrogates) are dropped first. Journal text is data: it cannot close a tag or open one.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime

from persona.dates import day_text
from persona.models import Entity, Episode, Goal, Passage, Psyche, Revision
from persona.retrieval import RetrievedMemory

_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(value: object) -> str:
    """Text that XML 1.0 can hold: characters it forbids are removed (escaping happens when serialising)."""
    return _NOT_XML.sub("", str(value))


def no_longer_true(node: object, today: datetime | None = None) -> str | None:
    """ "no longer true since 3 May 2025" for a memory whose validity closed (by ``today`` when given), else None."""
    until = getattr(node, "valid_until", None)
    if until is None or (today is not None and until > today):
        return None
    return f"no longer true since {day_text(until)}"


def _item(memory: RetrievedMemory, today: datetime | None = None) -> ET.Element:
    node = memory.node
    element = ET.Element("memory", {"id": node.id, "type": node.type.value})
    when = getattr(node, "occurred_at", None)
    if when is not None:
        element.set("date", day_text(when))  # "8 May 2023": the words answers use
    stale = no_longer_true(node, today)
    if stale:
        element.set("status_note", stale)
    match node:
        case Episode():
            element.set("title", xml_safe(node.title))
            element.text = xml_safe(node.summary)
        case Psyche():
            element.set("kind", node.kind.value)
            element.text = xml_safe(node.text)
        case Goal():
            element.set("kind", node.kind.value)
            element.set("status", node.status.value)
            if node.due:
                element.set("due", node.due.isoformat())
            element.text = xml_safe(node.text)
        case Entity():
            element.set("kind", node.kind.value)
            element.text = xml_safe(", ".join([node.name, *node.aliases]))
        case Passage():
            element.text = xml_safe(node.text)
    return element


def format_context(memories: Sequence[RetrievedMemory], *, today: datetime | None = None) -> str:
    """The ``<memories>`` XML for a prompt, items in rank order."""
    root = ET.Element("memories", {"count": str(len(memories))})
    if today is not None:
        root.set("today", today.strftime("%Y-%m-%d"))
    root.text = "\n"
    for memory in memories:
        item = _item(memory, today)
        item.tail = "\n"
        root.append(item)
    return ET.tostring(root, encoding="unicode")


def format_items(memories: Sequence[RetrievedMemory]) -> list[str]:
    """Each memory's XML element on its own, in rank order (for cutting a context at a budget)."""
    return [ET.tostring(_item(m), encoding="unicode") for m in memories]


def format_user_context(psyche: Sequence[Psyche], goals: Sequence[Goal], *, today: datetime) -> str:
    """The ``<user>`` XML every chat context starts with: who the person is now (current psyche memories) and what
    they are working on (active goals, with due dates and whether they are overdue)."""
    root = ET.Element("user", {"today": today.strftime("%Y-%m-%d")})
    root.text = "\n"
    for node in psyche:
        item = ET.SubElement(
            root, "psyche", {"id": node.id, "kind": node.kind.value, "since": day_text(node.occurred_at)}
        )
        item.text, item.tail = xml_safe(node.text), "\n"
    for goal in goals:
        item = ET.SubElement(root, "goal", {"id": goal.id, "kind": goal.kind.value})
        if goal.due:
            item.set("due", goal.due.isoformat())
            if goal.due < today.date():
                item.set("overdue", "true")
        item.text, item.tail = xml_safe(goal.title), "\n"
    return ET.tostring(root, encoding="unicode")


def describe_change(revision: Revision) -> str:
    """A change in words for the Timeline and Memories pages ("done on 3 May 2025: ...")."""
    words = {"done": "done", "dropped": "dropped", "postponed": "postponed", "superseded": "changed your mind"}
    return f"{words.get(revision.change, revision.change)} on {day_text(revision.at)}: {revision.sentence}"
