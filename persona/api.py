"""The HTTP API: Persona's memory for other programs (LLM apps), with OpenAPI docs at ``/docs``.

``create_app`` builds a FastAPI app around one store and one provider (the configured ones by default, or injected by
tests). Every route under ``/api/v1`` needs ``Authorization: Bearer <PERSONA_API_TOKEN>``; ``/docs`` and
``/openapi.json`` stay open because the schema holds no data and callers need it to build clients. Without a token
the app refuses to start unless ``PERSONA_API_ALLOW_NO_AUTH=1``, and then it serves loopback clients only.

Routes are plain ``def``: the store and provider are synchronous, so FastAPI runs them in its thread pool. Errors
always have the shape ``{"error": {"code", "message"}}`` and never carry paths, URIs or stack traces.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from itertools import groupby
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import referencing.exceptions
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from persona.actions import (
    confirm_memory_change,
    name_match_blocker,
    undo_memory_change,
    undo_name_match,
)
from persona.chat import MAX_QUESTION_CHARS, AskError, answer, ask, check_schema_depth
from persona.config import Settings, get_settings
from persona.context import format_context, format_user_context
from persona.errors import (
    ChangeNotFoundError,
    DuplicateError,
    EmbedderMismatchError,
    NodeNotFoundError,
    NotUndoableError,
    PersonaError,
    ProviderError,
    StoreUnavailableError,
    SubjectNotFoundError,
    UserNotFoundError,
    ValidationError,
)
from persona.example_schema import as_json_schema, schema_from_example
from persona.ingest import IngestResult, ingest_entry, ingest_many
from persona.llm.base import Provider
from persona.models import (
    MAX_ENTRY_CHARS,
    MEMORY_TYPES,
    NODE_CLASSES,
    USER_ID_PATTERN,
    AnyNode,
    EmbedderInfo,
    Entity,
    EntryStatus,
    Evolving,
    Goal,
    Link,
    NodeType,
    check_aware,
    node_text,
    utc_now,
)
from persona.revisions import changes_of, delete_with_changes, name_matches, overdue_goals, user_profile
from persona.store.base import Store
from persona.threads import MAX_ABOUT_CHARS, thread_about, thread_dict

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
OPEN_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/openapi.json"})
MAX_BODY_BYTES = 32 * 1024 * 1024
"""Larger request bodies are refused with 413 before they are parsed: one entry is at most 2,000,000 characters,
which JSON-escaped can take about 24 MB."""
MAX_BATCH = 1000
MAX_PAGE = 500
MAX_OFFSET = 100_000
MAX_TIMELINE = 5000
STORE_RETRY_SECONDS = 5.0
"""While the store is down, reopening it is tried at most this often; requests in between get 503 at once."""


class ApiConfigError(PersonaError):
    """The API cannot start as configured (no token, or no token on a non-loopback address)."""


# -- request and response models --------------------------------------------------------------------------------
def _utc(value: datetime) -> datetime:
    """Timezone-aware and representable in UTC (a date near year 1 or 9999 with an offset is not)."""
    check_aware(value)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("datetime is out of range once converted to UTC") from exc


ApiDatetime = Annotated[datetime, AfterValidator(_utc)]
UserIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=63,
        pattern=USER_ID_PATTERN.pattern,
        description="1-63 characters: lowercase letters, digits, '-' or '_', starting with a letter or digit",
    ),
]
MemoryIdPath = Annotated[str, Path(min_length=1, max_length=64, description="a node id")]
ChangeIdPath = Annotated[str, Path(min_length=1, max_length=64, description="a change's id (from the list)")]
MAX_CHANGES = 1000


class ApiModel(BaseModel):
    """Base of the API's own models: unknown fields are refused, and every field is listed in responses."""

    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


def _out_model(cls: type[BaseModel]) -> type[BaseModel]:
    """The response model of one node type: its fields without the embedding, plus a ``type`` discriminator.

    Built from the core model so the two cannot drift apart; embeddings are internal and large, so they stay out.
    """
    fields: dict[str, Any] = {
        name: (info.annotation, info) for name, info in cls.model_fields.items() if name != "embedding"
    }
    name = cls.__name__
    return create_model(f"{name}Out", __base__=ApiModel, type=(Literal[name], name), **fields)  # type: ignore[call-overload]


NODE_OUT: dict[NodeType, type[BaseModel]] = {kind: _out_model(cls) for kind, cls in NODE_CLASSES.items()}
EntryOut, EpisodeOut, PsycheOut, GoalOut, EntityOut, PassageOut = (
    NODE_OUT[t]
    for t in (NodeType.ENTRY, NodeType.EPISODE, NodeType.PSYCHE, NodeType.GOAL, NodeType.ENTITY, NodeType.PASSAGE)
)
NodeOut = Annotated[
    EntryOut | EpisodeOut | PsycheOut | GoalOut | EntityOut | PassageOut,  # type: ignore[valid-type]
    Field(discriminator="type"),
]


def node_out(node: AnyNode) -> dict[str, Any]:
    """A node as the API returns it (validated against ``NodeOut`` by the response model)."""
    return {**node.model_dump(exclude={"embedding"}), "type": node.type.value}


class FieldError(ApiModel):
    loc: list[str | int]
    message: str


class ErrorDetail(ApiModel):
    # existing_id and fields are left out of bodies that have none, so they are optional in the schema too.
    model_config = ConfigDict(json_schema_serialization_defaults_required=False)
    code: str = Field(description="a stable machine-readable code, e.g. not_found, duplicate, store_unavailable")
    message: str = Field(description="what went wrong, for a person")
    existing_id: str | None = Field(default=None, description="409 on ingest: the entry that already holds the text")
    fields: list[FieldError] | None = Field(default=None, description="422: the fields that failed validation")


class ErrorOut(ApiModel):
    """The body of every error response."""

    error: ErrorDetail


class UserOut(ApiModel):
    id: str
    display_name: str
    created_at: datetime


class UserCreatedOut(UserOut):
    """A created (201) or already existing (200) user, with the original Persona's ``message`` and ``status``."""

    message: str = Field(description="'User <id> created successfully' or 'User <id> already exists'")
    status: Literal["created", "exists"]


class DeletedOut(ApiModel):
    deleted: int = Field(ge=0, description="how many nodes were removed")


class UserDeletedOut(DeletedOut):
    message: str = Field(description="'User <id> deleted successfully' (the original Persona's field)")


class EntryIn(ApiModel):
    text: str = Field(min_length=1, max_length=MAX_ENTRY_CHARS, description="the journal entry")
    occurred_at: ApiDatetime | None = Field(
        default=None, description="when it happened, with a timezone (default: now)"
    )


class IngestOut(ApiModel):
    """What one ingest did: the entry's final status and, when it succeeded, what was extracted."""

    message: str = Field(description="what happened, for a person (the original Persona's field)")
    entry_id: str
    status: EntryStatus
    error: str | None = Field(description="why extraction failed (status failed); the entry is kept for a retry")
    duplicate: bool = Field(description="batch only: the same text was already in the journal")
    occurred_at: datetime
    episode: EpisodeOut | None  # type: ignore[valid-type]
    psyche: list[PsycheOut]  # type: ignore[valid-type]
    goals: list[GoalOut]  # type: ignore[valid-type]
    entities: list[EntityOut]  # type: ignore[valid-type]
    passages: int = Field(ge=0, description="how many source passages were stored")


class BatchIn(ApiModel):
    entries: list[EntryIn] = Field(min_length=1, max_length=MAX_BATCH)


class BatchOut(ApiModel):
    message: str = Field(description="a summary for a person (the original Persona's field)")
    memories_created: int = Field(ge=0, description="episodes, psyche and goals written by this batch")
    results: list[IngestOut]
    done: int
    failed: int
    duplicates: int


class RagQueryIn(ApiModel):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    limit: int = Field(default=12, ge=1, le=50, description="how many memories to retrieve at most")
    as_of: ApiDatetime | None = Field(default=None, description="only memories that happened before this moment")


class SourceOut(ApiModel):
    id: str
    type: NodeType
    score: float
    reason: str = Field(description="why it was retrieved (which signals, via which link)")
    text: str
    occurred_at: datetime | None


class RagQueryOut(ApiModel):
    answer: str
    context: str = Field(description="the <memories> XML handed to the language model")
    sources: list[SourceOut]
    cited_ids: list[str]
    offline: bool = Field(description="true when no language model is configured: the answer is extractive")


class AskIn(ApiModel):
    model_config = ConfigDict(populate_by_name=True)
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    json_schema: dict[str, Any] = Field(alias="schema", description="a JSON schema (2020-12) the result must match")


class AskOut(ApiModel):
    result: Any = Field(description="a JSON value valid against the given schema")


# -- the original Persona's request bodies, accepted beside ours on the same routes -----------------------------
class OriginalModel(BaseModel):
    """Base of the original Persona's request shapes. Like the original, unknown fields are ignored (its clients
    send fields such as ``provider_session_id`` that mean nothing here)."""

    model_config = ConfigDict(extra="ignore")


class OriginalEntryIn(OriginalModel):
    """The original Persona's ingest body."""

    content: str = Field(max_length=MAX_ENTRY_CHARS, description="the text; empty is 400, as in the original")
    title: str | None = Field(default=None, max_length=1000, description="kept as the entry's first line")
    metadata: dict[str, Any] | None = Field(
        default=None, description="free-form; an ISO 8601 'occurred_at' or 'date' in it sets when it happened"
    )
    source_type: str = Field(
        default="conversation", max_length=40, pattern=r"^[A-Za-z0-9_.-]+$", description="stored as the entry's source"
    )
    occurred_at: ApiDatetime | None = Field(default=None, description="when it happened (Persona's addition)")


class OriginalBatchIn(OriginalModel):
    items: list[OriginalEntryIn] = Field(max_length=MAX_BATCH, description="empty is 400, as in the original")


class OriginalRagQueryIn(OriginalModel):
    query: str = Field(max_length=MAX_QUESTION_CHARS, description="the question; empty is 400")
    retrieval_query: str | None = Field(
        default=None, max_length=MAX_QUESTION_CHARS, description="searched instead of the question when given"
    )
    include_stats: bool = Field(default=False, description="accepted; sources are always in the answer")


class OriginalAskIn(OriginalModel):
    query: str = Field(max_length=MAX_QUESTION_CHARS, description="the request; empty is 400")
    output_schema: dict[str, Any] = Field(
        description='example values of the answer, e.g. {"topics": ["a"], "summary": "text"}'
    )


class VectorQueryOut(ApiModel):
    """The original Persona's vector-only answer."""

    query: str
    response: str


class VersionOut(ApiModel):
    version: str = Field(description="the Persona package version")
    api: str = Field(description="the API version in the path")


SHAPE_TAGS = frozenset({"persona", "original"})


def _shape(*original_keys: str) -> Any:
    """A discriminator: the original Persona's shape when the body has one of its keys, else ours. Each body is
    validated against one shape only, so errors name that shape's fields."""

    def pick(value: Any) -> str:
        keys = value.keys() if isinstance(value, dict) else ()
        return "original" if any(key in keys for key in original_keys) else "persona"

    return Discriminator(pick)


IngestBody = Annotated[
    Annotated[EntryIn, Tag("persona")] | Annotated[OriginalEntryIn, Tag("original")], _shape("content")
]
BatchBody = Annotated[Annotated[BatchIn, Tag("persona")] | Annotated[OriginalBatchIn, Tag("original")], _shape("items")]
RagBody = Annotated[
    Annotated[RagQueryIn, Tag("persona")] | Annotated[OriginalRagQueryIn, Tag("original")], _shape("query")
]
AskBody = Annotated[
    Annotated[AskIn, Tag("persona")] | Annotated[OriginalAskIn, Tag("original")], _shape("query", "output_schema")
]


class OriginalBadRequest(PersonaError):
    """An empty ``content``, ``items`` or ``query`` in the original Persona's shape: 400, as the original answered."""


def _original_entry(item: OriginalEntryIn) -> tuple[str, datetime | None, str]:
    """Text, date and source of an entry in the original shape. The title stays as the first line (nothing a
    client sends is dropped); the date comes from ``occurred_at``, else an ISO date in the metadata."""
    if not item.content.strip():
        raise OriginalBadRequest("Content cannot be empty")
    title = (item.title or "").strip()
    text = f"{title}\n\n{item.content}" if title and not item.content.lstrip().startswith(title) else item.content
    return text, item.occurred_at or _metadata_date(item.metadata or {}), f"api:{item.source_type}"


def _metadata_date(metadata: dict[str, Any]) -> datetime | None:
    """An ISO 8601 ``occurred_at`` or ``date`` from the metadata (UTC when it has no timezone); anything else is
    ignored, as the original ignored metadata."""
    for key in ("occurred_at", "date"):
        value = metadata.get(key)
        if not isinstance(value, str):
            continue
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            continue
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        try:
            return _utc(when)
        except ValueError:
            continue
    return None


class MemoryPage(ApiModel):
    items: list[NodeOut]
    limit: int
    offset: int
    next_offset: int | None = Field(description="pass as offset for the next page; null when this page is the last")


class SubgraphOut(ApiModel):
    nodes: list[NodeOut]
    links: list[Link]
    truncated: bool
    total_nodes: int


class TimelineOut(ApiModel):
    episodes: list[EpisodeOut]  # type: ignore[valid-type]
    total: int = Field(description="chained episodes in the date range, before the limit")


class UserContextOut(ApiModel):
    """What is true of the user now: the context every chat starts with."""

    psyche: list[PsycheOut]  # type: ignore[valid-type]
    goals: list[GoalOut]  # type: ignore[valid-type]
    overdue: list[str] = Field(description="ids of active goals whose due date has passed")
    xml: str = Field(description="the same as the <user> XML handed to the model")


class ThreadChangeOut(ApiModel):
    memory_id: str
    memory: str = Field(description="the changed goal or belief")
    change: str = Field(description="done, dropped, postponed or superseded")
    at: datetime
    sentence: str = Field(description="the sentence of the entry that said so")


class ThreadEntryOut(ApiModel):
    id: str = Field(description="the entry's id")
    episode_id: str | None
    occurred_at: datetime
    text: str
    changes: list[ThreadChangeOut]


class ThreadSubjectOut(ApiModel):
    id: str
    type: str = Field(description="Entity, Goal or Psyche")
    title: str


class ThreadOut(ApiModel):
    """What happened to X: what X was found to mean, and the entries telling its story, oldest first."""

    about: str
    subject: ThreadSubjectOut
    entries: list[ThreadEntryOut]
    text: str = Field(description="the same as plain lines, dated and cited")


class ChangeOut(ApiModel):
    """An automatic change Persona made to a goal or belief, which the user can confirm or undo."""

    memory_id: str = Field(description="the changed goal or psyche memory")
    id: str = Field(description="the change's id, for .../changes/{change_id}/undo or /confirm")
    change: str = Field(description="done, dropped, postponed or superseded")
    at: datetime = Field(description="when it happened (the causing entry's date)")
    learned_at: datetime
    memory: str = Field(description="the memory's words")
    replaced_by: str | None = Field(description="superseded: id of the memory that replaces it")
    entry_id: str | None = Field(description="the entry that caused it")
    sentence: str = Field(description="the sentence of the entry that said so")
    automatic: bool = Field(description="made by Persona (false: corrected by the user)")
    confirmed: bool
    undoable: bool = Field(description="only a memory's latest change can be undone")


class ChangesOut(ApiModel):
    changes: list[ChangeOut] = Field(description="newest first")


class NameMatchOut(ApiModel):
    """An automatic name match: a mention taken for an entity the user already had ("Amir" for Dr. Amir Haddad)."""

    memory_id: str = Field(description="the entity the mention was joined to")
    id: str = Field(description="the match's id, for .../name-matches/{match_id}/undo")
    name: str = Field(description="the name as the entry wrote it")
    entity: str = Field(description="the entity's name")
    rule: str = Field(description="why they were taken for one: title, first name, alias, relation, ...")
    entry_id: str
    at: datetime
    undoable: bool
    blocked_by: str | None = Field(description="why it cannot be undone now (a later match or merge)")


class NameMatchesOut(ApiModel):
    matches: list[NameMatchOut] = Field(description="newest first")


class ExportOut(ApiModel):
    """The ``persona-export/1`` document that ``persona import`` reads back."""

    format: str
    user_id: str
    embedder: EmbedderInfo
    nodes: list[dict[str, Any]]
    links: list[Link]


# -- clients ----------------------------------------------------------------------------------------------------
class Clients:
    """The store and provider the app serves. A store that cannot be opened at start-up is retried on later
    requests, so the API can come up before its database does (and answers 503 meanwhile)."""

    def __init__(self, settings: Settings, store: Store | None, provider: Provider | None) -> None:
        self.settings = settings
        self._store = store
        self._provider = provider
        self._owns_store = store is None
        self._lock = threading.Lock()
        self._next_attempt = 0.0

    @property
    def provider(self) -> Provider:
        """The provider, made on first use."""
        with self._lock:
            if self._provider is None:
                from persona.runtime import make_provider

                self._provider = make_provider(self.settings)
            return self._provider

    @property
    def store(self) -> Store:
        """The store, opened on first use; raises ``StoreUnavailableError`` while it cannot be reached."""
        if self._store is not None:
            return self._store
        provider = self.provider
        with self._lock:
            if self._store is None:
                self._store = self._open(provider)
            return self._store

    def _open(self, provider: Provider) -> Store:
        if time.monotonic() < self._next_attempt:
            raise StoreUnavailableError("the store is unavailable (retrying shortly)")
        from persona.runtime import open_store

        try:
            return open_store(provider, self.settings, warm_up=True)
        except (StoreUnavailableError, EmbedderMismatchError):
            self._next_attempt = time.monotonic() + STORE_RETRY_SECONDS
            raise

    def start(self) -> None:
        """Open what can be opened now; a store that is down is logged and retried on demand."""
        try:
            self.store  # noqa: B018 - opening it is the point
        except (StoreUnavailableError, EmbedderMismatchError) as exc:
            log.warning("the store is not available yet: %s", exc)

    def close(self) -> None:
        """Close the store if this app opened it (an injected store belongs to its caller)."""
        if self._owns_store and self._store is not None:
            self._store.close()
            self._store = None


def _clients(request: Request) -> Clients:
    return request.app.state.clients


def get_store(clients: Annotated[Clients, Depends(_clients)]) -> Store:
    """The app's store (dependency)."""
    return clients.store


def get_provider(clients: Annotated[Clients, Depends(_clients)]) -> Provider:
    """The app's provider (dependency)."""
    return clients.provider


StoreDep = Annotated[Store, Depends(get_store)]
ProviderDep = Annotated[Provider, Depends(get_provider)]


def known_user(user_id: UserIdPath, store: StoreDep) -> str:
    """The path's user id, which must exist (404 otherwise)."""
    if not _user_exists(store, user_id):
        raise UserNotFoundError(user_id)
    return user_id


def _user_exists(store: Store, user_id: str) -> bool:
    # The store contract has no get_user; list_users is one cheap query (stats would count every node).
    return any(user.id == user_id for user in store.list_users())


KnownUser = Annotated[str, Depends(known_user)]


# -- authentication, body limit, crash barrier ------------------------------------------------------------------
def _is_loopback_host(host: str) -> bool:
    """Whether a Host header names this machine (127.0.0.1, localhost or [::1], any port)."""
    try:
        name = urlsplit(f"//{host}").hostname
    except ValueError:
        return False
    return _is_loopback(name)


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


class ApiGuard:
    """Pure ASGI middleware in front of every route: bearer-token check, request size limit, and a last barrier
    that turns an unexpected exception into a generic 500 (logged here, never sent to the client).

    Authentication lives here rather than in a dependency so that it runs before anything else: no request without
    the token learns whether a path exists or whether its body would validate.
    """

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] not in OPEN_PATHS and not self._authorised(scope):
            await _send_error(send, 401, "unauthorized", "a valid bearer token is required", bearer=True)
            return
        if scope["method"] in ("POST", "PUT", "PATCH", "DELETE"):
            body = await _read_body(receive)
            if body is None:
                await _send_error(send, 413, "too_large", f"the request body is over {MAX_BODY_BYTES:,} bytes")
                return
            receive = _replay(body)
        await self._call_guarded(scope, receive, send)

    def _authorised(self, scope: Scope) -> bool:
        if self.token is None:  # no-auth mode (explicitly allowed): loopback clients only
            client = scope.get("client")
            # ... and a loopback Host header, so a web page cannot reach us through DNS rebinding.
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            return _is_loopback(client[0] if client else None) and _is_loopback_host(host)
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, given = header.partition(" ")
        # Only the spaces and tabs HTTP allows around a value are dropped: "secret\xa0" is another token.
        return scheme.lower() == "bearer" and secrets.compare_digest(given.strip(" \t").encode(), self.token.encode())

    async def _call_guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            if not started:
                await _send_error(send, 500, "internal_error", "an internal error occurred; it has been logged")


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None as soon as it grows past the limit."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _send_error(send: Send, status: int, code: str, message: str, *, bearer: bool = False) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if bearer:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- error handlers ---------------------------------------------------------------------------------------------
STORE_DOWN = "the memory store is unavailable; try again later"
CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 409: "duplicate"}


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    """A JSON error in the API's one shape."""
    detail = ErrorDetail(code=code, message=message, **extra)
    return JSONResponse({"error": detail.model_dump(exclude_none=True)}, status_code=status)


def _on_request_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # loc and msg only: pydantic's "input" would echo the caller's (possibly megabyte-long) value back.
    fields = [FieldError(loc=_field_loc(e.get("loc", ())), message=str(e.get("msg", ""))) for e in exc.errors()[:20]]
    summary = "; ".join(f"{'.'.join(map(str, f.loc))}: {f.message}" for f in fields[:3])
    return error_response(422, "invalid_request", summary or "invalid request", fields=fields)


def _field_loc(loc: Sequence[str | int]) -> list[str | int]:
    """Where a field error is, as the caller wrote the body: without the name of the request shape it was read as
    ("body.persona.text" is "body.text")."""
    return [part for number, part in enumerate(loc) if not (number == 1 and part in SHAPE_TAGS and loc[0] == "body")]


def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:  # FastAPI's "error parsing the body" (not UTF-8): bad input is 422 everywhere else
        return error_response(422, "invalid_request", "the request body is not valid JSON")
    code = CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    response = error_response(exc.status_code, code, message)
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:
        response.headers["allow"] = ", ".join(allowed_methods(request.url.path))
    return response


def allowed_methods(path: str) -> list[str]:
    """Every method some route offers at ``path``. Starlette's own ``Allow`` names only the first route that
    matched the path, so a path with POST and DELETE answered ``Allow: POST``."""
    methods = {m for route in router.routes if isinstance(route, APIRoute) and route.path_regex.match(path)
               for m in route.methods or ()}  # fmt: skip
    return sorted(methods | ({"HEAD"} if "GET" in methods else set()))


def _on_persona_error(_: Request, exc: Exception) -> JSONResponse:
    match exc:
        case NotUndoableError():
            return error_response(409, "not_undoable", str(exc))
        case ValidationError():
            return error_response(422, "invalid_request", str(exc))
        case UserNotFoundError():
            return error_response(404, "user_not_found", f"no user {exc.user_id!r}")
        case SubjectNotFoundError():
            return error_response(404, "subject_not_found", str(exc))
        case ChangeNotFoundError():
            return error_response(404, "change_not_found", str(exc))
        case NodeNotFoundError():
            return error_response(404, "memory_not_found", f"no memory {exc.node_id[:64]!r} for this user")
        case DuplicateError():
            return error_response(409, "duplicate", str(exc), existing_id=exc.existing_id)
        case StoreUnavailableError() | EmbedderMismatchError():
            log.warning("store unavailable: %s", exc)
            return error_response(503, "store_unavailable", STORE_DOWN)
        case AskError():
            log.warning("ask failed: %s", exc)
            return error_response(502, "invalid_model_output", "the language model did not answer in the schema")
        case ProviderError():
            log.warning("provider failed: %s", exc)
            return error_response(502, "provider_error", "the language model provider failed; try again later")
    log.error("unmapped Persona error: %r", exc)
    return error_response(500, "internal_error", "an internal error occurred; it has been logged")


def _on_original_bad_request(_: Request, exc: Exception) -> JSONResponse:
    return error_response(400, "bad_request", str(exc))


def _install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(OriginalBadRequest, _on_original_bad_request)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(PersonaError, _on_persona_error)
    # Database errors never reach here: each store translates its driver's errors into PersonaError subclasses.


# -- routes -----------------------------------------------------------------------------------------------------
def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorOut} for status in statuses}


def _documented_bearer(
    _: Annotated[HTTPAuthorizationCredentials | None, Security(HTTPBearer(auto_error=False))],
) -> None:
    """Declares the bearer scheme in the OpenAPI schema; ``ApiGuard`` enforces it before routing."""


router = APIRouter(
    prefix=API_PREFIX,
    dependencies=[Depends(_documented_bearer)],
    responses=_errors(401, 422, 500, 503),
)
USER_ROUTES = _errors(404)


@router.get("/version", response_model=VersionOut)
def version() -> VersionOut:
    """The Persona version (the original Persona's clients read ``version``)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        number = package_version("persona")
    except PackageNotFoundError:  # running from a source tree that was never installed
        number = "unknown"
    return VersionOut(version=number, api=API_PREFIX.rsplit("/", 1)[-1])


@router.post(
    "/users/{user_id}",
    status_code=201,
    response_model=UserCreatedOut,
    responses=_errors(413) | {200: {"model": UserCreatedOut, "description": "the user already exists"}},
)
def create_user(user_id: UserIdPath, store: StoreDep, response: Response) -> UserCreatedOut:
    """Create a user: 201 when created, 200 when it already exists (creating is idempotent, as in the original
    Persona, whose clients create the user before every ingest)."""
    exists = _user_exists(store, user_id)
    user = store.ensure_user(user_id)
    if exists:
        response.status_code = 200
    return UserCreatedOut(
        id=user.id,
        display_name=user.display_name,
        created_at=user.created_at,
        message=f"User {user_id} already exists" if exists else f"User {user_id} created successfully",
        status="exists" if exists else "created",
    )


@router.delete("/users/{user_id}", response_model=UserDeletedOut, responses=USER_ROUTES | _errors(413))
def delete_user(user_id: KnownUser, store: StoreDep) -> UserDeletedOut:
    """Delete a user and every node it owns; returns how many nodes were removed."""
    return UserDeletedOut(deleted=store.delete_user(user_id), message=f"User {user_id} deleted successfully")


@router.post(
    "/users/{user_id}/ingest",
    status_code=201,
    response_model=IngestOut,
    responses=USER_ROUTES
    | _errors(400, 409, 413)
    | {
        202: {"model": IngestOut, "description": "stored, but extraction failed (status failed, with the reason)"},
        200: {"model": IngestOut, "description": "original shape only: the text was already there (duplicate)"},
    },
)
def ingest(
    body: IngestBody, user_id: KnownUser, store: StoreDep, provider: ProviderDep, response: Response
) -> IngestOut:
    """Save a journal entry and extract its memories: ``{"text", "occurred_at"?}``, or the original Persona's
    ``{"content", "title"?, "metadata"?, "source_type"?}``. 201 when done; 202 when the entry is stored but
    extraction failed (``persona retry`` processes it again); 409 when the same text is already in the journal
    (200 with ``duplicate: true`` in the original shape, whose clients never saw a 409)."""
    if isinstance(body, OriginalEntryIn):
        text, when, source = _original_entry(body)
    else:
        text, when, source = body.text, body.occurred_at, "api"
    result = ingest_entry(store, provider, user_id, text, occurred_at=when, source=source)
    if result.duplicate:
        if not isinstance(body, OriginalEntryIn):
            raise DuplicateError("this text is already in the journal", existing_id=result.entry.id)
        response.status_code = 200
    elif not result.ok:
        response.status_code = 202
    return _ingest_out(store, result)


@router.post(
    "/users/{user_id}/ingest/batch",
    response_model=BatchOut,
    responses=USER_ROUTES | _errors(400, 413),
    status_code=200,
)
def ingest_batch(body: BatchBody, user_id: KnownUser, store: StoreDep, provider: ProviderDep) -> BatchOut:
    """Ingest up to 1000 entries in order: ``{"entries": [...]}``, or the original Persona's ``{"items": [...]}``.
    One bad entry refuses the whole batch (422; 400 for an empty one in the original shape) before anything is
    written; one failed extraction is reported in its result and the batch goes on."""
    if isinstance(body, OriginalBatchIn):
        if not body.items:
            raise OriginalBadRequest("Batch cannot be empty")
        shaped = [_original_entry(item) for item in body.items]  # every item checked before anything is written
        # One ingest_many call per run of items with the same source, so the batch keeps its order.
        groups = [(source, [(t, w) for t, w, _ in run]) for source, run in groupby(shaped, key=lambda item: item[2])]
    else:
        groups = [("api", [(e.text, e.occurred_at) for e in body.entries])]
    outcomes = [r for source, items in groups for r in ingest_many(store, provider, user_id, items, source=source)]
    results = [_ingest_out(store, r) for r in outcomes]
    done = sum(r.status is EntryStatus.DONE and not r.duplicate for r in results)
    return BatchOut(
        message=f"Successfully ingested batch of {len(results)} items ({done} new)",
        memories_created=sum(
            (r.episode is not None) + len(r.psyche) + len(r.goals) for r in results if not r.duplicate
        ),
        results=results,
        done=done,
        failed=sum(r.status is not EntryStatus.DONE and not r.duplicate for r in results),
        duplicates=sum(r.duplicate for r in results),
    )


def _ingest_message(result: IngestResult) -> str:
    if result.duplicate:
        return "Already in the journal: nothing new ingested"
    if result.ok:
        return "Data ingested successfully"
    return f"Stored, but extraction failed: {result.error}"


def _ingest_out(store: Store, result: IngestResult) -> IngestOut:
    batch = result.batch
    entity_ids = list(dict.fromkeys(result.entity_ids.values()))
    entities = store.get_nodes(result.entry.user_id, entity_ids) if entity_ids else []
    return IngestOut(
        message=_ingest_message(result),
        entry_id=result.entry.id,
        status=result.entry.status,
        error=result.entry.error,
        duplicate=result.duplicate,
        occurred_at=result.entry.occurred_at,
        episode=node_out(batch.episodes[0]) if batch and batch.episodes else None,
        psyche=[node_out(n) for n in batch.psyche] if batch else [],
        goals=[node_out(n) for n in batch.goals] if batch else [],
        entities=[node_out(n) for n in entities],
        passages=len(batch.passages) if batch else 0,
    )


@router.post("/users/{user_id}/rag/query", response_model=RagQueryOut, responses=USER_ROUTES | _errors(400, 413, 502))
def rag_query(body: RagBody, user_id: KnownUser, store: StoreDep, provider: ProviderDep) -> RagQueryOut:
    """Retrieve the memories for a question and answer it, citing memory ids (extractive when offline):
    ``{"question", "limit"?, "as_of"?}``, or the original Persona's ``{"query", "retrieval_query"?}``."""
    if isinstance(body, OriginalRagQueryIn):
        if not body.query.strip():
            raise OriginalBadRequest("Query is required")
        result = answer(store, provider, user_id, body.query, search=body.retrieval_query)
    else:
        result = answer(store, provider, user_id, body.question, limit=body.limit, as_of=body.as_of)
    text = result.complete()
    if result.error:
        raise ProviderError(result.error)
    sources = [
        SourceOut(
            id=s.id,
            type=s.type,
            score=s.score,
            reason=s.reason,
            text=node_text(s.node),
            occurred_at=getattr(s.node, "occurred_at", None),
        )
        for s in result.sources
    ]
    return RagQueryOut(
        answer=text,
        context=format_context(result.sources, today=utc_now()),
        sources=sources,
        cited_ids=result.cited_ids,
        offline=result.offline,
    )


@router.post(
    "/users/{user_id}/ask",
    response_model=AskOut,
    responses=USER_ROUTES
    | _errors(400, 413, 502)
    | {501: {"model": ErrorOut, "description": "no language model is configured (offline)"}},
)
def ask_route(body: AskBody, user_id: KnownUser, store: StoreDep, provider: ProviderDep) -> AskOut | JSONResponse:
    """A structured insight: a JSON value valid against the caller's JSON schema (``{"question", "schema"}``), or
    shaped like the example values of the original Persona's ``{"query", "output_schema"}``. Needs a language
    model (501 offline); an invalid schema is 422; an answer that does not match the schema, after one repair
    attempt, is 502."""
    if isinstance(body, OriginalAskIn):
        if not body.query.strip():
            raise OriginalBadRequest("Query is required")
        check_schema_depth(body.output_schema)  # before anything walks it recursively
        question, schema = body.query, schema_from_example(body.output_schema)
    else:
        check_schema_depth(body.json_schema)
        question, schema = body.question, as_json_schema(body.json_schema)
    check_local_refs(schema)
    try:
        return AskOut(result=ask(store, provider, user_id, question, schema))
    except AskError as exc:
        if provider.offline:
            return error_response(501, "needs_llm", str(exc))
        raise
    except referencing.exceptions.Unresolvable as exc:
        raise ValidationError("the schema has a $ref that does not resolve inside it") from exc


@router.post(
    "/users/{user_id}/rag/query-vector", response_model=VectorQueryOut, responses=USER_ROUTES | _errors(400, 413, 502)
)
def rag_query_vector(
    body: OriginalRagQueryIn, user_id: KnownUser, store: StoreDep, provider: ProviderDep
) -> VectorQueryOut:
    """The original Persona's vector-only query: ``{"query"}`` answered from the memories nearest in meaning
    (no full-text or graph signals) as ``{"query", "response"}``."""
    if not body.query.strip():
        raise OriginalBadRequest("Query is required")
    result = answer(store, provider, user_id, body.query, search=body.retrieval_query, preset="vector-only")
    text = result.complete()
    if result.error:
        raise ProviderError(result.error)
    return VectorQueryOut(query=body.query, response=text)


@router.post("/users/{user_id}/custom-data", include_in_schema=False)
def custom_data(user_id: UserIdPath) -> JSONResponse:
    """The original Persona's free-form graph writes have no place in typed memories: a clear 410, not a 404."""
    return error_response(
        410,
        "gone",
        "custom graph data is not supported: Persona builds typed memories from text; send it to /ingest",
    )


def check_local_refs(schema: Any) -> None:
    """Refuse ``$ref``s that leave the schema: the validator would fetch a URL on the server's behalf."""
    stack = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in ("$ref", "$dynamicRef", "$recursiveRef") and not (
                    isinstance(value, str) and value.startswith("#")
                ):
                    raise ValidationError(f"only local references ('#...') are allowed in the schema, not {key}")
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


@router.get("/users/{user_id}/memories", response_model=MemoryPage, responses=USER_ROUTES)
def list_memories(
    user_id: KnownUser,
    store: StoreDep,
    node_type: Annotated[
        NodeType | None, Query(alias="type", description="one node type; default: Episode, Psyche and Goal")
    ] = None,
    start: Annotated[ApiDatetime | None, Query(description="occurred at or after (inclusive)")] = None,
    end: Annotated[ApiDatetime | None, Query(description="occurred before (exclusive)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> MemoryPage:
    """The user's memories, newest first, a page at a time."""
    types = [node_type] if node_type else list(MEMORY_TYPES)
    nodes = _page(store, user_id, types, start=start, end=end, limit=limit, offset=offset)
    return MemoryPage(
        items=[node_out(n) for n in nodes],
        limit=limit,
        offset=offset,
        next_offset=offset + limit if len(nodes) == limit else None,
    )


def _page(
    store: Store,
    user_id: str,
    types: Sequence[NodeType],
    *,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    offset: int,
) -> list[AnyNode]:
    """One page of nodes of several types, merged newest first."""
    return store.list_many(user_id, types, start=start, end=end, limit=limit, offset=offset)


@router.get("/users/{user_id}/memories/{memory_id}", response_model=NodeOut, responses=USER_ROUTES)
def get_memory(user_id: KnownUser, memory_id: MemoryIdPath, store: StoreDep) -> dict[str, Any]:
    """One node (memory, entry, entity or passage) of the user."""
    return node_out(store.get_node(user_id, memory_id))


@router.get("/users/{user_id}/memories/{memory_id}/subgraph", response_model=SubgraphOut, responses=USER_ROUTES)
def memory_subgraph(
    user_id: KnownUser,
    memory_id: MemoryIdPath,
    store: StoreDep,
    depth: Annotated[int, Query(ge=0, le=3, description="hops from the memory")] = 1,
    limit: Annotated[int, Query(ge=1, le=300, description="most nodes returned")] = 300,
) -> SubgraphOut:
    """The memory and its neighbourhood up to ``depth`` hops (entries and passages are left out)."""
    store.get_node(user_id, memory_id)  # 404 for an unknown id, instead of an empty graph
    graph = store.subgraph(user_id, center_ids=[memory_id], depth=depth, limit=limit)
    return SubgraphOut(
        nodes=[node_out(n) for n in graph.nodes],
        links=graph.links,
        truncated=graph.truncated,
        total_nodes=graph.total_nodes,
    )


@router.get("/users/{user_id}/timeline", response_model=TimelineOut, responses=USER_ROUTES)
def timeline(
    user_id: KnownUser,
    store: StoreDep,
    start: Annotated[ApiDatetime | None, Query(description="occurred at or after (inclusive)")] = None,
    end: Annotated[ApiDatetime | None, Query(description="occurred before (exclusive)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_TIMELINE)] = 1000,
) -> TimelineOut:
    """The user's episodes in chain order (oldest first), optionally within a date range."""
    episodes = [
        n
        for n in store.get_nodes(user_id, store.chain(user_id))
        if (start is None or n.occurred_at >= start) and (end is None or n.occurred_at < end)  # type: ignore[union-attr]
    ]
    return TimelineOut(episodes=[node_out(n) for n in episodes[:limit]], total=len(episodes))


@router.get("/users/{user_id}/context", response_model=UserContextOut, responses=USER_ROUTES)
def user_context(user_id: KnownUser, store: StoreDep) -> UserContextOut:
    """The user's current psyche memories and active goals (with overdue ones named): the always-included context."""
    psyche, goals = user_profile(store, user_id)
    today = utc_now()
    return UserContextOut(
        psyche=[node_out(p) for p in psyche],
        goals=[node_out(g) for g in goals],
        overdue=[g.id for g in overdue_goals(goals, today.date())],
        xml=format_user_context(psyche, goals, today=today),
    )


@router.get("/users/{user_id}/thread", response_model=ThreadOut, responses=USER_ROUTES | _errors(422))
def what_happened(
    user_id: KnownUser,
    store: StoreDep,
    about: Annotated[
        str, Query(max_length=MAX_ABOUT_CHARS, description="a person, thing, goal or belief: Amir, my thesis")
    ] = "",
) -> dict[str, Any]:
    """What happened to X: the entries that mention it (a person or thing by any of its names, a goal, a belief),
    oldest first, with the changes each made to it. 404 when nothing the user has matches ``about``."""
    return thread_dict(thread_about(store, user_id, about))


@router.get("/users/{user_id}/changes", response_model=ChangesOut, responses=USER_ROUTES)
def list_changes(
    user_id: KnownUser, store: StoreDep, limit: Annotated[int, Query(ge=1, le=MAX_CHANGES)] = 200
) -> ChangesOut:
    """The automatic changes to the user's goals and beliefs (goal done, dropped, postponed; belief replaced),
    newest first: every one can be seen, confirmed, and undone (the latest of each memory)."""
    found = changes_of(store, user_id, limit=limit)
    return ChangesOut(changes=[_change_out(node, revision) for node, revision in found])


def _change_out(node: Evolving, revision: Any) -> ChangeOut:
    return ChangeOut(
        memory_id=node.id,
        id=revision.id,
        change=revision.change,
        at=revision.at,
        learned_at=revision.learned_at,
        memory=node.title if isinstance(node, Goal) else node_text(node),
        replaced_by=revision.by_id,
        entry_id=revision.entry_id,
        sentence=revision.sentence,
        automatic=revision.automatic,
        confirmed=revision.confirmed,
        undoable=node.revisions[-1].id == revision.id,
    )


@router.post(
    "/users/{user_id}/memories/{memory_id}/changes/{change_id}/undo",
    response_model=NodeOut,
    responses=USER_ROUTES | _errors(409),
)
def undo_change_route(user_id: KnownUser, memory_id: MemoryIdPath, change_id: ChangeIdPath, store: StoreDep) -> Any:
    """Undo a change exactly: the memory as it was before, the change and its links gone. 404 for an unknown
    memory or change; 409 when a later change of the memory must be undone first. Returns the restored memory."""
    return node_out(undo_memory_change(store, user_id, memory_id, change_id))


@router.post(
    "/users/{user_id}/memories/{memory_id}/changes/{change_id}/confirm", response_model=NodeOut, responses=USER_ROUTES
)
def confirm_change_route(user_id: KnownUser, memory_id: MemoryIdPath, change_id: ChangeIdPath, store: StoreDep) -> Any:
    """Mark a change as seen and right (it stays undoable). Returns the memory."""
    return node_out(confirm_memory_change(store, user_id, memory_id, change_id))


@router.get("/users/{user_id}/name-matches", response_model=NameMatchesOut, responses=USER_ROUTES)
def list_name_matches(
    user_id: KnownUser, store: StoreDep, limit: Annotated[int, Query(ge=1, le=MAX_CHANGES)] = 200
) -> NameMatchesOut:
    """The automatic name matches (a mention joined to an entity the user had), newest first, each with whether
    it can be undone now."""
    found = name_matches(store, user_id)[:limit]
    return NameMatchesOut(matches=[_name_match_out(entity, match) for entity, match in found])


def _name_match_out(entity: Entity, match: dict[str, Any]) -> NameMatchOut:
    blocker = name_match_blocker(entity, match)
    return NameMatchOut(
        memory_id=entity.id,
        id=match["id"],
        name=match["name"],
        entity=entity.name,
        rule=match["rule"],
        entry_id=match["entry_id"],
        at=datetime.fromisoformat(match["at"]),
        undoable=blocker is None,
        blocked_by=blocker,
    )


@router.post(
    "/users/{user_id}/memories/{memory_id}/name-matches/{match_id}/undo",
    response_model=NodeOut,
    responses=USER_ROUTES | _errors(409),
)
def undo_name_match_route(
    user_id: KnownUser, memory_id: MemoryIdPath, match_id: ChangeIdPath, store: StoreDep, provider: ProviderDep
) -> Any:
    """Undo a name match exactly: the mention is its own entity again (returned), with its entry's mentions, and
    the matched entity is as it was. 404 for an unknown entity or match; 409 when a later match or merge of the
    entity must be undone first."""
    return node_out(undo_name_match(store, provider.embedder, user_id, memory_id, match_id))


@router.delete("/users/{user_id}/memories/{memory_id}", response_model=DeletedOut, responses=USER_ROUTES | _errors(413))
def delete_memory(user_id: KnownUser, memory_id: MemoryIdPath, store: StoreDep) -> DeletedOut:
    """Delete one node and what belongs to it: an entry takes its memories; an episode takes everything extracted
    from its entry, which stays, ``pending``, to be extracted again (``persona retry``) or deleted."""
    return DeletedOut(deleted=delete_with_changes(store, user_id, memory_id))


@router.get("/users/{user_id}/export", response_model=ExportOut, responses=USER_ROUTES)
def export(user_id: KnownUser, store: StoreDep) -> dict[str, Any]:
    """Everything the user owns, in the ``persona-export/1`` format that ``persona import`` restores."""
    return store.export_user(user_id)


# -- the app ----------------------------------------------------------------------------------------------------
def api_token(settings: Settings) -> str | None:
    """The configured bearer token; None only when running without one is explicitly allowed."""
    token = settings.persona_api_token.get_secret_value().strip() if settings.persona_api_token else ""
    if token:
        return token
    if settings.persona_api_allow_no_auth:
        return None
    raise ApiConfigError(
        "PERSONA_API_TOKEN is not set: set it to a long random string, or set PERSONA_API_ALLOW_NO_AUTH=1 "
        "to serve without authentication to this machine only (127.0.0.1)"
    )


def create_app(
    store: Store | None = None, provider: Provider | None = None, settings: Settings | None = None
) -> FastAPI:
    """The API app. ``store`` and ``provider`` default to the configured ones, made at start-up; injected ones are
    not closed by the app. Raises ``ApiConfigError`` when no token is configured and no-auth was not allowed."""
    settings = settings or get_settings()
    token = api_token(settings)
    if token is None:
        log.warning("the API runs WITHOUT authentication (PERSONA_API_ALLOW_NO_AUTH=1): loopback clients only")
    clients = Clients(settings, store, provider)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        clients.start()
        try:
            yield
        finally:
            clients.close()

    app = FastAPI(
        title="Persona API",
        version="1",
        summary="A person's journal as a memory graph: ingest entries, query memories, ask with citations.",
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.clients = clients
    _install_handlers(app)
    app.include_router(router)
    app.add_middleware(ApiGuard, token=token)
    return app


MIN_NETWORK_TOKEN_CHARS = 32
"""A token that guards the API beyond loopback has at least 32 characters: a short one is guessed by trying."""


def serve(*, host: str = "127.0.0.1", port: int = 8000, settings: Settings | None = None) -> None:
    """Run the API with uvicorn. Refuses a non-loopback address when no token is configured."""
    import uvicorn

    settings = settings or get_settings()
    token = api_token(settings)
    if token is None and not _is_loopback(host):
        raise ApiConfigError(f"refusing to serve without a token on {host}: set PERSONA_API_TOKEN, or bind 127.0.0.1")
    if not _is_loopback(host):
        if token is not None and len(token) < MIN_NETWORK_TOKEN_CHARS:
            raise ApiConfigError(
                f"refusing to serve on {host} with a {len(token)}-character token: beyond this machine the token "
                f"must have at least {MIN_NETWORK_TOKEN_CHARS} characters (for example: openssl rand -hex 32)"
            )
        log.warning("serving on %s: bearer tokens travel in clear text, put a TLS proxy in front", host)
    uvicorn.run(create_app(settings=settings), host=host, port=port, server_header=False, log_level="info")
