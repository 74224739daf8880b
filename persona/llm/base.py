"""The provider interface: structured extraction, batched embeddings, and chat.

An ``Extraction`` is what any extractor (an LLM or the offline rules) returns for one entry; ``persona.ingest``
turns it into stored memories. Its fields are plain and JSON-schema friendly so an LLM can fill them with
structured outputs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from persona.models import EmbedderInfo, EntityKind, GoalKind, GoalStatus, PsycheKind


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExtractedEntity(_Strict):
    name: str = Field(description="the name as written, e.g. 'Sarah' or 'Lisbon'")
    kind: EntityKind = Field(description="person, place, org, topic or thing")
    aliases: list[str] = Field(default_factory=list, description="other names used for it in the text")


class ExtractedPsyche(_Strict):
    kind: PsycheKind = Field(description="trait, preference, value or belief")
    text: str = Field(description="a short statement about the writer, in the writer's words where possible")
    confidence: float = Field(ge=0, le=1, description="how clearly the text states it")
    sentence: str | None = Field(default=None, description="the sentence of the entry it comes from")
    entities: list[str] = Field(default_factory=list, description="names of entities it mentions")


class ExtractedGoal(_Strict):
    kind: GoalKind = Field(description="task, project, reminder or todo")
    title: str = Field(description="a short title, e.g. 'Run a half marathon'")
    text: str = Field(description="the goal as the writer put it")
    status: GoalStatus = Field(default=GoalStatus.ACTIVE, description="active, done or dropped")
    due: date | None = Field(default=None, description="the due date when the text gives one (ISO date)")
    sentence: str | None = Field(default=None, description="the sentence of the entry it comes from")
    entities: list[str] = Field(default_factory=list, description="names of entities it mentions")


class Extraction(_Strict):
    """Everything extracted from one entry."""

    title: str = Field(description="a short title of what happened (max ~10 words)")
    summary: str = Field(description="what happened, in two or three sentences, keeping names, places and dates")
    importance: float = Field(ge=0, le=1, description="how much this matters to the writer, 0 to 1")
    entities: list[ExtractedEntity] = Field(default_factory=list)
    psyche: list[ExtractedPsyche] = Field(default_factory=list)
    goals: list[ExtractedGoal] = Field(default_factory=list)


class Embedder(ABC):
    """Turns texts into vectors, one batched call for many texts."""

    info: EmbedderInfo

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order, each of ``info.dimension`` floats."""


class Provider(ABC):
    """An LLM provider: extraction, embeddings, chat. ``offline`` is True for the rule-based one."""

    name: str
    offline: bool
    embedder: Embedder

    @abstractmethod
    def extract(self, text: str, *, occurred_at: datetime) -> Extraction:
        """Typed memories of one entry. Raises ``ProviderError`` when it cannot produce valid ones."""

    @abstractmethod
    def chat_stream(self, messages: list[dict[str, str]]) -> Iterator[str]:
        """The answer to a chat, token by token."""

    @abstractmethod
    def complete_json(self, messages: list[dict[str, str]], schema: dict[str, Any], *, name: str) -> Any:
        """A JSON value that the model produced for ``schema`` (not yet validated against it)."""

    def describe(self) -> str:
        """A short badge text for the app, e.g. 'offline (rules)' or 'gpt-4o-mini @ http://127.0.0.1:8080'."""
        return self.name
