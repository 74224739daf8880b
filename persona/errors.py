"""Small error classes. Each carries the ids a caller needs to act on it."""

from __future__ import annotations


def _short(value: object, limit: int = 80) -> str:
    """``repr`` of a value, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class PersonaError(Exception):
    """Base class of every error Persona raises on purpose."""


class ValidationError(PersonaError, ValueError):
    """Input that makes no sense: empty text, a naive datetime, a bad user id, text over a limit."""


class NodeNotFoundError(PersonaError, LookupError):
    """No node with this id belongs to this user."""

    def __init__(self, node_id: str, user_id: str | None = None) -> None:
        self.node_id = node_id
        self.user_id = user_id
        owner = f" for user {user_id!r}" if user_id else ""
        # Ids come from callers: a 1 MB "id" must not become a 1 MB message in a log or an HTTP answer.
        super().__init__(f"no node {_short(node_id)}{owner}")


class SubjectNotFoundError(PersonaError, LookupError):
    """Nothing the user has (a person, thing, goal or belief) matches what a "what happened to X?" asks about."""

    def __init__(self, about: str) -> None:
        self.about = _short(about)
        super().__init__(f"nothing in your memories is called or about {self.about}: try a name or a goal's words")


class ChangeNotFoundError(PersonaError, LookupError):
    """The memory has no automatic change (or the entity no name match) with this id."""

    def __init__(self, change_id: str, *, what: str = "change") -> None:
        self.change_id = change_id
        super().__init__(f"no {what} {_short(change_id)} on this memory")


class NotUndoableError(ValidationError):
    """A change that cannot be undone now: a later change (or merge) was made on top of it; undo that first."""


class UserNotFoundError(PersonaError, LookupError):
    """The user does not exist in the store."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        super().__init__(f"no user {user_id!r}")


class EmbedderMismatchError(PersonaError):
    """The store was built with another embedder; mixing vectors would give nonsense."""

    def __init__(self, stored: tuple[str, int], given: tuple[str, int]) -> None:
        self.stored = stored
        self.given = given
        super().__init__(
            f"this store holds embeddings from {stored[0]!r} ({stored[1]} dimensions), "
            f"but the embedder in use is {given[0]!r} ({given[1]} dimensions); "
            "use the same embedder, or a new store (PERSONA_HOME / another Neo4j database)"
        )


class StoreUnavailableError(PersonaError):
    """The store cannot be reached (Neo4j down, file not writable)."""


class ProviderError(PersonaError):
    """The LLM provider failed: timeout, HTTP error, or output that does not validate."""


class ModelOutputError(ProviderError):
    """The model answered, but not with what was asked (e.g. text that is not JSON); ``content`` is what it said,
    so a caller can show it back to the model in a repair attempt."""

    def __init__(self, message: str, *, content: str = "") -> None:
        self.content = content
        super().__init__(message)


class ChangedMeanwhileError(PersonaError):
    """A memory a write was planned against changed before the write (an edit, an undo, another entry's change):
    nothing was written; planning again against the memory as it is now, then writing, is safe."""

    def __init__(self, node_ids: list[str]) -> None:
        self.node_ids = node_ids
        super().__init__(
            f"{len(node_ids)} memories changed while this entry was being processed ({', '.join(node_ids[:5])}); "
            "nothing was written, try again"
        )


class DuplicateError(PersonaError):
    """The thing already exists (same user, same entry text)."""

    def __init__(self, message: str, existing_id: str | None = None) -> None:
        self.existing_id = existing_id
        super().__init__(message)


class RestoreConflictError(PersonaError):
    """A backup's entries were changed since it was made; restoring them needs a choice (keep mine, replace, both)."""

    def __init__(self, conflicts: list[tuple[str, str, str]], *, limit: int = 10) -> None:
        self.entry_ids = [entry_id for entry_id, _, _ in conflicts]
        named = "; ".join(
            f"{day} {_short(' '.join(text.split()), 40)} ({entry_id})" for entry_id, day, text in conflicts[:limit]
        )
        more = f" and {len(conflicts) - limit} more" if len(conflicts) > limit else ""
        super().__init__(
            f"{len(conflicts)} of your entries differ from the backup's version (changed since it was made): "
            f"{named}{more}. Nothing was restored; choose what to keep with --on-conflict keep-mine, replace or "
            "keep-both"
        )


class SchemaTooNewError(StoreUnavailableError):
    """The store was written by a newer Persona (a schema this code does not know); it is left untouched."""

    def __init__(self, where: str, stored_version: int, known_version: int, unknown: list[str] | None = None) -> None:
        self.stored_version = stored_version
        self.known_version = known_version
        extra = f" (migrations this code does not know: {', '.join(unknown[:5])})" if unknown else ""
        super().__init__(
            f"{where} holds schema version {stored_version}{extra}, newer than this Persona understands "
            f"(version {known_version}); it was not changed. Upgrade Persona to open it, or use another store "
            "(PERSONA_HOME / another Neo4j database)."
        )


class MigrationError(StoreUnavailableError):
    """A schema migration failed; the store is as it was before (and, for SQLite, a backup copy is named)."""


class StoreError(PersonaError):
    """The database refused an operation in a way Persona did not expect (a bug worth reporting, not bad input)."""
