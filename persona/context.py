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
from persona.models import Entity, Episode, Goal, Passage, Psyche
from persona.retrieval import RetrievedMemory

_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(value: object) -> str:
    """Text that XML 1.0 can hold: characters it forbids are removed (escaping happens when serialising)."""
    return _NOT_XML.sub("", str(value))


def _item(memory: RetrievedMemory) -> ET.Element:
    node = memory.node
    element = ET.Element("memory", {"id": node.id, "type": node.type.value})
    when = getattr(node, "occurred_at", None)
    if when is not None:
        element.set("date", day_text(when))  # "8 May 2023": the words answers use
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
        item = _item(memory)
        item.tail = "\n"
        root.append(item)
    return ET.tostring(root, encoding="unicode")


def format_items(memories: Sequence[RetrievedMemory]) -> list[str]:
    """Each memory's XML element on its own, in rank order (for cutting a context at a budget)."""
    return [ET.tostring(_item(m), encoding="unicode") for m in memories]
