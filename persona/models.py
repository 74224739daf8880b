"""The data model: what Persona keeps of what a person writes.

Every node carries ``user_id`` and a string ``id`` (uuid4). ``occurred_at`` is when something happened (the
user's date); ``created_at`` is when it was stored. Both are timezone-aware, always.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from persona.errors import ValidationError

USER_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAX_ENTRY_CHARS = 2_000_000
"""The longest entry we accept (about 2 MB of text, ~300,000 words); longer input is refused before any write."""


def utc_now() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


def one_line_error(exc: Any) -> str:
    """Pydantic's multi-line validation error as one line a person reads: the first problem, with its field."""
    errors = exc.errors() if hasattr(exc, "errors") else []
    if not errors:
        return " ".join(str(exc).split())[:300]
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return " ".join(f"{where + ': ' if where else ''}{message}{more}".split())[:300]


def new_id() -> str:
    """A fresh node id (uuid4 as text)."""
    return str(uuid.uuid4())


def check_user_id(user_id: Any) -> str:
    """Return ``user_id`` if it matches the strict pattern, else raise a clear ``ValidationError``."""
    if not isinstance(user_id, str) or not USER_ID_PATTERN.fullmatch(user_id):
        raise ValidationError(
            f"invalid user id {str(user_id)[:80]!r}: use 1-63 characters, lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return user_id


def check_aware(value: datetime) -> datetime:
    """Refuse naive datetimes (a memory without a timezone cannot be ordered honestly) and dates so close to year 1
    or 9999 that converting them to UTC overflows."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError("datetime must be timezone-aware (for example 2024-03-01T09:00:00+00:00)")
    try:
        in_utc = value.astimezone(UTC)
    except OverflowError:
        in_utc = None
    if in_utc is None or not 1 < in_utc.year < 9999:
        raise ValueError("datetime out of range: it must fall between the years 2 and 9998")
    return value


# Unicode category Cc except tab and newline, and lone surrogates (no UTF-8 encoding exists for them: a store, a
# JSON body or a hash would fail on them later, so they go with the other characters nobody can see).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_text(value: str) -> str:
    """Normalise text we store: NUL and other control characters (except newline and tab) and lone surrogates
    removed, NFC form."""
    if not unicodedata.is_normalized("NFC", value):
        value = unicodedata.normalize("NFC", value)
    return _CONTROL.sub("", value)


def require_text(value: str) -> str:
    """Clean ``value`` and refuse it when nothing but whitespace is left."""
    value = clean_text(value)
    if not value.strip():
        raise ValueError("text must not be empty")
    return value


def canonical_name(name: str) -> str:
    """The key two mentions of one entity share: case-folded, accents kept, whitespace and punctuation folded."""
    name = clean_text(name).casefold()
    name = re.sub(r"[\s_]+", " ", name)
    name = re.sub(r"^(the|a|an) ", "", name.strip(" .,;:!?'\"()[]{}"))
    name = re.sub(r"'s$", "", name)
    return name.strip()


def content_hash(user_id: str, text: str, day: date) -> str:
    """Hash of an entry's text (whitespace folded) and day, for one user: the same text on the same day is one entry
    (an import run twice adds nothing), while "Rest day." written on two days is two entries."""
    folded = " ".join(clean_text(text).split())
    return hashlib.sha256(f"{user_id}\x00{day.isoformat()}\x00{folded}".encode()).hexdigest()


UserId = Annotated[str, AfterValidator(check_user_id)]
AwareDatetime = Annotated[datetime, AfterValidator(check_aware)]
Text = Annotated[str, AfterValidator(require_text)]
Score = Annotated[float, Field(ge=0.0, le=1.0)]


class NodeType(StrEnum):
    """Labels of the graph's nodes. Also the only labels ever interpolated into a query."""

    ENTRY = "Entry"
    EPISODE = "Episode"
    PSYCHE = "Psyche"
    GOAL = "Goal"
    ENTITY = "Entity"
    PASSAGE = "Passage"


MEMORY_TYPES = (NodeType.EPISODE, NodeType.PSYCHE, NodeType.GOAL)
SEARCHABLE_TYPES = (NodeType.EPISODE, NodeType.PSYCHE, NodeType.GOAL, NodeType.ENTITY, NodeType.PASSAGE)


class LinkType(StrEnum):
    """Relationship types. Also the only relationship types ever interpolated into a query."""

    FROM_ENTRY = "FROM_ENTRY"  # Episode -> Entry
    DERIVED_FROM = "DERIVED_FROM"  # Psyche / Goal -> Episode
    NEXT = "NEXT"  # Episode -> Episode, ordered by occurred_at
    MENTIONS = "MENTIONS"  # Episode / Psyche / Goal -> Entity
    PART_OF = "PART_OF"  # Passage -> Entry
    SUPERSEDES = "SUPERSEDES"  # Psyche -> Psyche, Goal -> Goal: the new memory replaces the old one
    CHANGED_BY = "CHANGED_BY"  # Psyche / Goal -> Entry: the entry that changed this memory


class EntryStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class PsycheKind(StrEnum):
    TRAIT = "trait"
    PREFERENCE = "preference"
    VALUE = "value"
    BELIEF = "belief"


class GoalKind(StrEnum):
    TASK = "task"
    PROJECT = "project"
    REMINDER = "reminder"
    TODO = "todo"


class GoalStatus(StrEnum):
    ACTIVE = "active"
    DONE = "done"
    DROPPED = "dropped"


class EntityKind(StrEnum):
    PERSON = "person"
    PLACE = "place"
    ORG = "org"
    TOPIC = "topic"
    THING = "thing"


class Model(BaseModel):
    """Base for every model: strict about unknown fields, validates on assignment.

    Input from callers is strict, but what a store holds may come from a newer release: the store reads such a
    body with ``persona.store.common.parse_stored``, which keeps the fields this code does not know in
    ``stored_extras`` and writes them back unchanged (a downgrade never destroys data)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_enum_values=False)
    _stored_extras: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def stored_extras(self) -> dict[str, Any]:
        """Fields of the stored body that this release does not know (empty for everything it wrote itself)."""
        return self._stored_extras


class User(Model):
    id: UserId
    display_name: str = ""
    created_at: AwareDatetime = Field(default_factory=utc_now)


class Node(Model):
    """Fields every stored node has."""

    id: str = Field(default_factory=new_id, min_length=1, max_length=64)
    user_id: UserId
    created_at: AwareDatetime = Field(default_factory=utc_now)

    @property
    def type(self) -> NodeType:
        return NodeType(type(self).__name__)


class Entry(Node):
    """The raw text the user wrote or imported. Saved before any LLM call, so nothing written is ever lost."""

    text: Text = Field(max_length=MAX_ENTRY_CHARS)
    occurred_at: AwareDatetime
    content_hash: str = ""
    status: EntryStatus = EntryStatus.PENDING
    error: str | None = None
    source: str = "journal"

    def model_post_init(self, __context: Any) -> None:
        if not self.content_hash:
            object.__setattr__(self, "content_hash", content_hash(self.user_id, self.text, self.occurred_at.date()))


class Memory(Node):
    """A typed memory derived from an entry. ``entry_id`` is its provenance."""

    entry_id: str
    occurred_at: AwareDatetime
    embedding: list[float] | None = Field(default=None, repr=False)


class Episode(Memory):
    """What happened."""

    title: Text = Field(max_length=300)
    summary: Text
    importance: Score = 0.5


class Revision(Model):
    """One change made to a memory (automatically from an entry, or by the user): what it was before, when it
    happened (``at``, the causing entry's date), when Persona learned it, and what caused it. Undo restores
    ``before`` exactly and removes the revision and its links."""

    id: str = Field(default_factory=new_id)
    change: str = Field(description="done, dropped, postponed or superseded")
    at: AwareDatetime
    learned_at: AwareDatetime = Field(default_factory=utc_now)
    entry_id: str | None = None
    by_id: str | None = None
    sentence: str = ""
    before: dict[str, Any] = Field(default_factory=dict)
    automatic: bool = True
    confirmed: bool = False


class Evolving(Memory):
    """A memory that can stop being true: when it became true (``valid_from``, the event time; defaults to
    ``occurred_at``), when it stopped (``valid_until``; empty while current), when Persona learned it
    (``learned_at``; defaults to ``created_at``), and the changes made to it (``revisions``, oldest first)."""

    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    learned_at: AwareDatetime | None = None
    revisions: list[Revision] = Field(default_factory=list)

    def model_post_init(self, __context: Any) -> None:
        if self.valid_from is None:
            object.__setattr__(self, "valid_from", self.occurred_at)
        if self.learned_at is None:
            object.__setattr__(self, "learned_at", self.created_at)

    @property
    def current(self) -> bool:
        """Whether it is still true (nothing closed its validity)."""
        return self.valid_until is None

    @property
    def open_to_change(self) -> bool:
        """Whether a later entry may still change it (close it, replace it): it is still true."""
        return self.current

    def true_at(self, when: datetime) -> bool:
        """Whether it was true at ``when`` (valid from its start until, not including, its end)."""
        start = self.valid_from or self.occurred_at
        return start <= when and (self.valid_until is None or when < self.valid_until)


class Psyche(Evolving):
    """Who the person is: a trait, preference, value or belief."""

    kind: PsycheKind
    text: Text
    confidence: Score = 0.5
    source_sentence: str | None = None


class Goal(Evolving):
    """What the person wants: a task, project, reminder or todo."""

    kind: GoalKind
    title: Text = Field(max_length=300)
    text: Text
    status: GoalStatus = GoalStatus.ACTIVE
    due: date | None = None
    source_sentence: str | None = None

    @property
    def open_to_change(self) -> bool:
        """A goal is changed by later entries only while it is still true and active (not done or dropped)."""
        return self.current and self.status is GoalStatus.ACTIVE


class Passage(Memory):
    """A sentence or short chunk of an entry, kept so retrieval can return the exact words a person wrote."""

    text: Text
    position: int = Field(ge=0)


class EntityFact(Model):
    """Something kept about an entity (``kind`` "relation": how the writer names them, "sister", "ex-boss"), with
    when it became true (``valid_from``, the stating entry's date), when it stopped (``valid_until``; empty while
    current: a later relation closes it, and it is kept) and when Persona learned it."""

    id: str = Field(default_factory=new_id)
    kind: str = Field(default="relation", max_length=40)
    value: str = Field(max_length=40)
    valid_from: AwareDatetime
    valid_until: AwareDatetime | None = None
    learned_at: AwareDatetime = Field(default_factory=utc_now)
    entry_id: str | None = None

    @property
    def current(self) -> bool:
        """Whether it is still true."""
        return self.valid_until is None


class Entity(Node):
    """A person, place, organisation, topic or thing. One node per canonical name per user."""

    name: Text = Field(max_length=200)
    canonical: str = ""
    kind: EntityKind = EntityKind.THING
    aliases: list[str] = Field(default_factory=list)
    embedding: list[float] | None = Field(default=None, repr=False)
    relation: str | None = Field(default=None, max_length=40, description="how the writer names them: sister, boss")
    merges: list[dict[str, Any]] = Field(
        default_factory=list, description="what each merge into this entity took in, so a split can undo it exactly"
    )
    facts: list[EntityFact] = Field(
        default_factory=list, description="dated facts about it (relations), oldest first; closed ones are kept"
    )
    matches: list[dict[str, Any]] = Field(
        default_factory=list,
        description="each automatic name match that landed a mention on it (rule, entry, what it was before), so "
        "the match can be seen and undone exactly",
    )

    def model_post_init(self, __context: Any) -> None:
        if not self.canonical:
            object.__setattr__(self, "canonical", canonical_name(self.name))
        if not self.canonical:
            raise ValidationError(f"entity name {self.name!r} has no letters or digits")

    @field_validator("aliases")
    @classmethod
    def _clean_aliases(cls, aliases: list[str]) -> list[str]:
        return sorted({clean_text(a).strip() for a in aliases if clean_text(a).strip()})


AnyNode = Entry | Episode | Psyche | Goal | Passage | Entity
NODE_CLASSES: dict[NodeType, type[Node]] = {
    NodeType.ENTRY: Entry,
    NodeType.EPISODE: Episode,
    NodeType.PSYCHE: Psyche,
    NodeType.GOAL: Goal,
    NodeType.PASSAGE: Passage,
    NodeType.ENTITY: Entity,
}

# Which node types a link may join: guards against a batch that would make a nonsense graph.
LINK_ENDPOINTS: dict[LinkType, tuple[tuple[NodeType, ...], tuple[NodeType, ...]]] = {
    LinkType.FROM_ENTRY: ((NodeType.EPISODE,), (NodeType.ENTRY,)),
    LinkType.DERIVED_FROM: ((NodeType.PSYCHE, NodeType.GOAL), (NodeType.EPISODE,)),
    LinkType.NEXT: ((NodeType.EPISODE,), (NodeType.EPISODE,)),
    LinkType.MENTIONS: ((NodeType.EPISODE, NodeType.PSYCHE, NodeType.GOAL), (NodeType.ENTITY,)),
    LinkType.PART_OF: ((NodeType.PASSAGE,), (NodeType.ENTRY,)),
    LinkType.SUPERSEDES: ((NodeType.PSYCHE, NodeType.GOAL), (NodeType.PSYCHE, NodeType.GOAL)),
    LinkType.CHANGED_BY: ((NodeType.PSYCHE, NodeType.GOAL), (NodeType.ENTRY,)),
}


class Link(Model):
    """A directed relationship between two nodes of one user."""

    type: LinkType
    source_id: str
    target_id: str


class MemoryBatch(Model):
    """Everything one ingested entry produces, written in one store transaction.

    Links may point at entities by the id given here; the store maps each entity to the node that already holds its
    canonical name, so two entries that mention "Sarah" share one node. NEXT links are never given: the store places
    new episodes in the chain itself.
    """

    episodes: list[Episode] = Field(default_factory=list)
    psyche: list[Psyche] = Field(default_factory=list)
    goals: list[Goal] = Field(default_factory=list)
    entities: list[Entity] = Field(default_factory=list)
    passages: list[Passage] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)

    def nodes(self) -> list[Memory | Entity]:
        """All nodes of the batch, episodes first."""
        return [*self.episodes, *self.psyche, *self.goals, *self.passages, *self.entities]

    @classmethod
    def combine(cls, batches: list[MemoryBatch]) -> MemoryBatch:
        """One batch holding every node and link of ``batches`` (several entries written in one transaction)."""
        return cls(**{part: [item for batch in batches for item in getattr(batch, part)] for part in cls.model_fields})


class Subgraph(Model):
    """Nodes and the links among them, as the graph explorer draws them."""

    nodes: list[AnyNode] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)
    truncated: bool = False
    total_nodes: int = 0


class SearchHit(Model):
    """One result of a vector or text search: a node id, its type and a score (higher is better)."""

    id: str
    type: NodeType
    score: float


class EmbedderInfo(Model):
    """The embedder a store's vectors came from. A store refuses another one."""

    name: str = Field(min_length=1)
    dimension: int = Field(gt=0)


def node_text(node: AnyNode) -> str:
    """The searchable text of a node (what full-text and embeddings see)."""
    match node:
        case Episode():
            return f"{node.title}. {node.summary}"
        case Goal():
            return f"{node.title}. {node.text}" if node.text != node.title else node.title
        case Entity():
            return " ".join([node.name, *node.aliases])
        case Entry() | Psyche() | Passage():
            return node.text
    raise TypeError(f"not a node: {type(node).__name__}")
