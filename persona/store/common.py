"""Pure helpers both stores share: (de)serialising nodes, checking batches, escaping search text, cascade plans."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
from pydantic import ValidationError as PydanticValidationError

from persona.errors import ValidationError
from persona.models import (
    LINK_ENDPOINTS,
    NODE_CLASSES,
    AnyNode,
    EntryStatus,
    GoalStatus,
    LinkType,
    MemoryBatch,
    Model,
    NodeType,
    Psyche,
    clean_text,
)
from persona.text import STOPWORDS, WORD

M = TypeVar("M", bound=Model)

_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_ID_CHARS = 64
"""Node ids are at most 64 characters (the model's limit): a longer "id" names nothing and is not sent anywhere."""
FORBIDDEN_CHANGES = frozenset({"id", "user_id", "created_at", "content_hash", "canonical", "entry_id"})
STATUSES = tuple(dict.fromkeys(s.value for s in (*EntryStatus, *GoalStatus)))
"""Every status a node can have (entries and goals); ``list_nodes(status=...)`` accepts these and None."""
MAX_QUERY_WORDS = 64
"""Full-text queries keep their first 64 distinct words: a 10,000-character question stays a fast search."""


def serialise_stored(model: Model, *, exclude: frozenset[str] = frozenset()) -> str:
    """A model as the JSON body a store keeps, with the fields a newer release wrote (``stored_extras``) kept."""
    if not model.stored_extras:
        return model.model_dump_json(exclude=set(exclude))
    known = model.model_dump(mode="json", exclude=set(exclude))
    return json.dumps(model.stored_extras | known, ensure_ascii=False, separators=(",", ":"))


def parse_stored(cls: type[M], body: str | dict) -> M:
    """A stored body back into its model. Fields this release does not know (a newer release wrote them) are kept
    aside in ``stored_extras`` instead of failing the read, and written back by ``serialise_stored``."""
    if isinstance(body, str):
        try:  # the common case, parsed in one step: a body this release wrote
            return cls.model_validate_json(body)
        except PydanticValidationError as exc:
            if any(error["type"] != "extra_forbidden" for error in exc.errors()):
                raise
    data = json.loads(body) if isinstance(body, str) else dict(body)
    extras = {key: data.pop(key) for key in list(data) if key not in cls.model_fields}
    model = cls.model_validate(data)
    model._stored_extras = extras
    return model


def with_extras(new: M, old: Model) -> M:
    """``new`` carrying the unknown stored fields of ``old`` (a model rebuilt from a dump loses them otherwise)."""
    new._stored_extras = dict(old.stored_extras)
    return new


def serialise_node(node: AnyNode) -> str:
    """A node as JSON without its embedding (vectors live in their own column or property)."""
    return serialise_stored(node, exclude=frozenset({"embedding"}))


def parse_node(node_type: NodeType, body: str | dict) -> AnyNode:
    """The one record-to-model parser: a stored JSON body (or property map) back into its model."""
    return parse_stored(NODE_CLASSES[node_type], body)  # type: ignore[return-value]


def export_record(node: AnyNode) -> dict[str, Any]:
    """A node as an export record: its type, the fields a newer release stored, and its own fields."""
    return {"type": node.type.value, **node.stored_extras, **node.model_dump(mode="json")}


SUPERSEDED = "superseded"


def stored_status(node: AnyNode) -> str | None:
    """What a node's ``status`` column (property) holds: an entry's or goal's status, and ``superseded`` for a psyche
    memory that is no longer current, so the queries for what an entry may change skip it as they skip a goal that
    is done (it must not take the place of a current belief among the top hits)."""
    if isinstance(node, Psyche):
        return None if node.current else SUPERSEDED
    status = getattr(node, "status", None)
    return None if status is None else str(status)


def node_sort_time(node: AnyNode) -> datetime:
    """The time a node is ordered and filtered by: when it happened, or when an entity was first stored."""
    return getattr(node, "occurred_at", None) or node.created_at


def fts_words(query: str) -> list[str]:
    """The plain words of a search, lowercased and de-duplicated; punctuation and operators are dropped, and so are
    stopwords (unless nothing else is left): "the" matches every memory and only slows the ranking down."""
    if not isinstance(query, str):
        return []
    words = list(dict.fromkeys(w.lower() for w in WORD.findall(query.replace("\x00", " "))))
    content = [w for w in words if w not in STOPWORDS]
    return (content or words)[:MAX_QUERY_WORDS]


def _choices(values: Iterable[str]) -> str:
    return ", ".join(values)


def as_node_type(value: Any) -> NodeType:
    """``value`` as a ``NodeType``, or a clear ``ValidationError`` (never a bare ``ValueError``)."""
    try:
        return NodeType(value)
    except (ValueError, TypeError):
        raise ValidationError(f"unknown node type {str(value)[:80]!r}: use one of {_choices(NodeType)}") from None


def as_node_types(values: Iterable[Any]) -> list[NodeType]:
    """Node types named by a caller (a single string is one type, not a list of letters)."""
    return [as_node_type(values)] if isinstance(values, str) else [as_node_type(v) for v in values]


def as_link_types(values: Iterable[Any]) -> list[LinkType]:
    """Link types named by a caller, or a clear ``ValidationError``."""
    found = []
    for value in [values] if isinstance(values, str) else values:
        try:
            found.append(LinkType(value))
        except (ValueError, TypeError):
            raise ValidationError(f"unknown link type {str(value)[:80]!r}: use one of {_choices(LinkType)}") from None
    return found


def as_status(value: Any) -> str | None:
    """A status filter: None, or one of ``STATUSES`` (an unknown status is a mistake worth saying, not an empty
    result that looks like "you have none")."""
    if value is None:
        return None
    text = getattr(value, "value", value)
    if text not in STATUSES:
        raise ValidationError(f"unknown status {str(text)[:80]!r}: use one of {_choices(STATUSES)}")
    return str(text)


def as_entry_status(value: Any) -> EntryStatus:
    """An entry's processing status, or a clear ``ValidationError``."""
    try:
        return EntryStatus(value)
    except (ValueError, TypeError):
        raise ValidationError(f"unknown entry status {str(value)[:80]!r}: use one of {_choices(EntryStatus)}") from None


def possible_id(value: Any) -> bool:
    """Whether ``value`` could be the id of a stored node: a string of 1 to 64 characters that UTF-8 can encode.
    Anything else names no node; stores answer "not found" without sending it to the database."""
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS and not _SURROGATE.search(value)


def possible_ids(values: Iterable[Any]) -> list[str]:
    """The distinct possible ids among ``values``, in order."""
    if isinstance(values, str):
        values = [values]
    return [v for v in dict.fromkeys(v for v in values if possible_id(v))]


def check_embedding(embedding: Sequence[float] | None, dimension: int, *, what: str = "embedding") -> None:
    """Refuse a vector the store cannot search with: the wrong length or a value that is not a finite number.
    Stored, it would break every later vector search of the user."""
    if embedding is None:
        return
    try:
        vector = np.asarray(embedding, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"{what} must be a list of numbers") from None
    if vector.shape != (dimension,):
        raise ValidationError(f"{what} has {vector.size} dimensions, the store uses {dimension}")
    if not np.isfinite(vector).all():
        raise ValidationError(f"{what} holds a value that is not a finite number (NaN or infinity)")


def check_changes(changes: Any) -> None:
    """Refuse changes that are not a mapping or that touch what never changes (ids, owner, creation time, keys)."""
    if not isinstance(changes, dict):
        raise ValidationError("changes must be a mapping of field names to new values")
    forbidden = FORBIDDEN_CHANGES & set(changes)
    if forbidden:
        raise ValidationError(f"these fields cannot be changed: {', '.join(sorted(forbidden))}")


def changed_node(node: AnyNode, changes: Any, *, dimension: int) -> AnyNode:
    """``node`` with ``changes`` applied and validated by its model; every problem is a ``ValidationError`` that says
    which field is wrong (pydantic's own error never reaches the caller)."""
    check_changes(changes)
    # Text is cleaned as on ingest (controls and lone surrogates out, NFC), so an edit stores what ingest would.
    changes = {key: clean_text(value) if isinstance(value, str) else value for key, value in changes.items()}
    if "embedding" in changes:
        check_embedding(changes["embedding"], dimension)
    data = node.model_dump() | changes
    if node.type is NodeType.ENTITY and "name" in changes:
        data["canonical"] = ""
    if node.type is NodeType.ENTRY and {"text", "occurred_at"} & set(changes):
        data["content_hash"] = ""
    try:
        return with_extras(type(node).model_validate(data), node)  # type: ignore[return-value]
    except PydanticValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        raise ValidationError(f"invalid {node.type.value}{' ' + field if field else ''}: {message}") from None


def check_batch(user_id: str, batch: MemoryBatch, *, dimension: int | None = None) -> None:
    """Refuse a batch that would mix users, give NEXT links, join node types that never link, or carry vectors the
    store cannot search (when ``dimension`` is given)."""
    types: dict[str, NodeType] = {}
    for node in batch.nodes():
        if node.user_id != user_id:
            raise ValidationError(f"node {node.id} belongs to {node.user_id!r}, not {user_id!r}")
        if dimension is not None:
            check_embedding(node.embedding, dimension, what=f"the embedding of {node.type.value} {node.id}")
        types[node.id] = node.type
    for link in batch.links:
        if link.type.value == "NEXT":
            raise ValidationError("NEXT links are placed by the store, not given in a batch")
        sources, targets = LINK_ENDPOINTS[link.type]
        source_type, target_type = types.get(link.source_id), types.get(link.target_id)
        if source_type is not None and source_type not in sources:
            raise ValidationError(f"{link.type.value} cannot start at a {source_type.value}")
        if target_type is not None and target_type not in targets:
            raise ValidationError(f"{link.type.value} cannot end at a {target_type.value}")


def cascade_plan(node: AnyNode, dependants: dict[str, NodeType]) -> dict[str, NodeType]:
    """The nodes a delete removes: the node itself and what belongs to it (entities never cascade)."""
    plan = {node.id: node.type}
    plan.update({i: t for i, t in dependants.items() if t is not NodeType.ENTITY})
    return plan
