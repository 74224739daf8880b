"""Small use cases the app's pages (and other front ends) call, so a page is layout and wiring only: find, delete
and merge memories, the store's summary, export, personas. Each takes the store it works on and checks its input
through it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from persona.entities import name_match_blocker
from persona.errors import ChangeNotFoundError, NotUndoableError
from persona.llm.base import Embedder
from persona.models import AnyNode, Entity, Evolving, Revision, User
from persona.store.base import GRAPH_TYPES, Store

__all__ = [
    "GRAPH_TYPES",
    "StoreSummary",
    "confirm_memory_change",
    "create_persona",
    "delete_node",
    "delete_persona",
    "export_json",
    "find_node",
    "memory_change",
    "merge_entities",
    "name_match",
    "name_match_blocker",
    "personas",
    "store_summary",
    "undo_memory_change",
    "undo_name_match",
]


@dataclass(frozen=True)
class StoreSummary:
    """What the Settings page shows of a store: where it is and what one persona holds."""

    description: str
    counts: dict[str, int]

    @property
    def empty(self) -> bool:
        """Whether the persona holds nothing yet."""
        return not any(self.counts.values())


def find_node(store: Store, user_id: str, node_id: str | None) -> AnyNode | None:
    """The user's node with this id, or ``None`` (deleted meanwhile, another user's, or no id at all)."""
    if not node_id:
        return None
    found = store.get_nodes(user_id, [node_id])
    return found[0] if found else None


def delete_node(store: Store, user_id: str, node_id: str) -> int:
    """Delete a memory or an entry with what belongs to it (an entry's changes to earlier memories are undone
    first); return how many nodes went."""
    from persona.revisions import delete_with_changes  # revisions imports ingest: kept out of this module's import

    return delete_with_changes(store, user_id, node_id)


def merge_entities(store: Store, user_id: str, keep_id: str, drop_id: str) -> Entity:
    """Fold one entity into another (mentions move, names become aliases) and return the one kept."""
    return store.merge_entities(user_id, keep_id, drop_id)


def name_match(store: Store, user_id: str, entity_id: str, match_id: str) -> tuple[Entity, dict[str, Any]]:
    """The user's entity and its automatic name match ``match_id``. An unknown entity raises
    ``NodeNotFoundError``; a node that is not an entity, or has no such match, ``ChangeNotFoundError``."""
    entity = store.get_node(user_id, entity_id)
    match = next((m for m in getattr(entity, "matches", []) if m.get("id") == match_id), None)
    if not isinstance(entity, Entity) or match is None:
        raise ChangeNotFoundError(match_id, what="name match")
    return entity, match


def undo_name_match(store: Store, embedder: Embedder | None, user_id: str, entity_id: str, match_id: str) -> Entity:
    """Undo an automatic name match ("Amir" taken for Dr. Amir Haddad): the mention becomes its own entity again
    with its entry's mentions, and the matched one is as it was. Returns the restored entity. A match that is not
    the entity's latest, or lies under a later merge, raises ``NotUndoableError`` and changes nothing."""
    from persona.revisions import undo_name_match as undo  # revisions imports ingest: kept out of the module import

    entity, match = name_match(store, user_id, entity_id, match_id)
    if blocker := name_match_blocker(entity, match):
        raise NotUndoableError(blocker)
    return undo(store, embedder, user_id, entity_id, match_id)[1]


def memory_change(store: Store, user_id: str, memory_id: str, change_id: str) -> tuple[Evolving, Revision]:
    """The user's goal or psyche memory and its change ``change_id``. An unknown memory raises
    ``NodeNotFoundError``; another kind of node, or no such change, ``ChangeNotFoundError``."""
    node = store.get_node(user_id, memory_id)
    revision = next((r for r in getattr(node, "revisions", []) if r.id == change_id), None)
    if not isinstance(node, Evolving) or revision is None:
        raise ChangeNotFoundError(change_id)
    return node, revision


def undo_memory_change(store: Store, user_id: str, memory_id: str, change_id: str) -> Evolving:
    """Undo a memory's change exactly (a goal done is active again, a replaced belief current). Only the memory's
    latest change can be undone: an earlier one raises ``NotUndoableError`` and changes nothing."""
    from persona.revisions import undo_change  # revisions imports ingest: kept out of the module import

    node, _ = memory_change(store, user_id, memory_id, change_id)
    if node.revisions[-1].id != change_id:
        raise NotUndoableError("this memory changed again later: undo its latest change first")
    return undo_change(store, user_id, memory_id, change_id)


def confirm_memory_change(store: Store, user_id: str, memory_id: str, change_id: str) -> Evolving:
    """Mark a memory's change as seen and right (it stays undoable)."""
    from persona.revisions import confirm_change  # revisions imports ingest: kept out of the module import

    memory_change(store, user_id, memory_id, change_id)
    return confirm_change(store, user_id, memory_id, change_id)


def store_summary(store: Store, user_id: str) -> StoreSummary:
    """The store's description and the persona's counts by type and of links."""
    counts = {name: count for name, count in store.stats(user_id).items() if name != "users"}
    return StoreSummary(description=store.description, counts=counts)


def export_json(store: Store, user_id: str) -> str:
    """Everything the persona holds as JSON text (``persona import`` and Settings → Import read it back)."""
    return json.dumps(store.export_user(user_id), ensure_ascii=False, indent=1)


def personas(store: Store) -> list[str]:
    """The ids of every persona in the store."""
    return [user.id for user in store.list_users()]


def create_persona(store: Store, user_id: str) -> User:
    """Create a persona (a bad id raises ``ValidationError``); an existing one is returned as it is."""
    return store.ensure_user(user_id)


def delete_persona(store: Store, user_id: str) -> int:
    """Delete the persona and everything it holds; return how many nodes went."""
    return store.delete_user(user_id)
