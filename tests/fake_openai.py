"""A small, real OpenAI-compatible HTTP server on 127.0.0.1 for tests: scripted replies, recorded requests.

Use the ``fake_openai`` fixture (import ``fake_openai_fixture`` from this module into a test module or conftest)::

    def test_something(fake_openai):
        provider = fake_openai.provider(max_retries=1)      # an OpenAIProvider pointed at the fake
        fake_openai.queue_error(429)                        # then scripted replies, in order, per endpoint
        fake_openai.queue_json({"title": ...})
        provider.extract(...)
        assert len(fake_openai.chat_requests) == 2

With nothing queued, chat answers deterministically (an ``Extraction`` made from the entry's first words for the
``extraction`` schema, a minimal instance of any other JSON schema, an echo for plain chat) and embeddings are
``HashEmbedder`` vectors, so tests that do not care about the LLM need no scripting.
"""

from __future__ import annotations

import base64
import html
import json
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import numpy as np
import pytest

from persona.config import Settings
from persona.llm.base import Extraction
from persona.llm.embedding import HashEmbedder
from persona.llm.openai_provider import KNOWN_EMBEDDING_DIMENSIONS, OpenAIProvider

Endpoint = Literal["chat", "embeddings"]
PATHS: dict[str, Endpoint] = {"/v1/chat/completions": "chat", "/v1/embeddings": "embeddings"}
TEST_API_KEY = "sk-test-fake-0123456789"


@dataclass
class Recorded:
    """One request the server received."""

    path: str
    body: Any
    headers: dict[str, str]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat messages of a chat request."""
        return self.body.get("messages", []) if isinstance(self.body, dict) else []


@dataclass
class Reply:
    """A scripted reply. Chat: ``content`` (or ``tokens`` for a stream); embeddings: ``vectors``; or an error."""

    status: int = 200
    content: str | None = None
    tokens: list[str] | None = None
    break_after: int | None = None  # stream: close the socket after this many tokens
    error_event: str | None = None  # stream: send this error event after ``break_after`` tokens
    vectors: list[list[float]] | None = None
    reversed_order: bool = False  # embeddings: list the data items last to first (clients must sort by index)
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    finish_reason: str = "stop"


class FakeOpenAI:
    """The server. Start it with ``with FakeOpenAI() as fake:`` or the ``fake_openai`` fixture."""

    def __init__(self, *, embedding_dimension: int = 64) -> None:
        self.embedding_dimension = embedding_dimension  # for models the provider does not know the size of
        self.requests: list[Recorded] = []
        self._queues: dict[Endpoint, deque[Reply]] = {"chat": deque(), "embeddings": deque()}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-openai", daemon=True
        )

    @property
    def base_url(self) -> str:
        """The ``base_url`` for the SDK, e.g. ``http://127.0.0.1:54321/v1``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()  # wakes handlers that sleep in a scripted delay
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- scripting -------------------------------------------------------------------------------------------
    def queue(self, reply: Reply, *, endpoint: Endpoint = "chat") -> None:
        """Queue any reply; the next request to ``endpoint`` gets it."""
        with self._lock:
            self._queues[endpoint].append(reply)

    def queue_json(self, value: Any, *, delay: float = 0.0) -> None:
        """The next chat answer is ``value`` as JSON text (streamed word by word if the request streams)."""
        self.queue(Reply(content=json.dumps(value), delay=delay))

    def queue_text(self, text: str, *, delay: float = 0.0, finish_reason: str = "stop") -> None:
        """The next chat answer is ``text`` as is: malformed JSON, a plain answer, anything."""
        self.queue(Reply(content=text, delay=delay, finish_reason=finish_reason))

    def queue_stream(
        self, tokens: list[str], *, break_after: int | None = None, error_event: str | None = None
    ) -> None:
        """The next chat answer streams ``tokens``; optionally the socket closes, or an error event comes, after
        ``break_after`` tokens."""
        self.queue(Reply(tokens=list(tokens), break_after=break_after, error_event=error_event))

    def queue_error(
        self,
        status: int,
        message: str | None = None,
        *,
        endpoint: Endpoint = "chat",
        times: int = 1,
        retry_after_ms: int | None = 1,
    ) -> None:
        """The next ``times`` requests to ``endpoint`` get HTTP ``status`` with an OpenAI-style error body.

        ``retry-after-ms`` (honoured by the SDK) keeps retries fast; pass None to get the SDK's own backoff.
        """
        headers = {"retry-after-ms": str(retry_after_ms)} if retry_after_ms is not None else {}
        for _ in range(times):
            self.queue(
                Reply(status=status, error=message or f"fake error {status}", headers=headers), endpoint=endpoint
            )

    def queue_delay(self, seconds: float, *, endpoint: Endpoint = "chat") -> None:
        """The next request to ``endpoint`` waits ``seconds`` before its default answer (for client timeouts)."""
        self.queue(Reply(delay=seconds), endpoint=endpoint)

    def queue_embeddings(self, vectors: list[list[float]] | None = None, *, reversed_order: bool = False) -> None:
        """The next embeddings answer: ``vectors`` (default: hash vectors), optionally listed last to first."""
        self.queue(Reply(vectors=vectors, reversed_order=reversed_order), endpoint="embeddings")

    # --- inspection ------------------------------------------------------------------------------------------
    @property
    def chat_requests(self) -> list[Recorded]:
        """The chat requests received so far, in order."""
        return [r for r in self.requests if r.path.startswith("/v1/chat/")]

    @property
    def embedding_requests(self) -> list[Recorded]:
        """The embeddings requests received so far, in order."""
        return [r for r in self.requests if r.path.startswith("/v1/embeddings")]

    # --- clients ---------------------------------------------------------------------------------------------
    def provider(self, **overrides: Any) -> OpenAIProvider:
        """An ``OpenAIProvider`` for this server: fast timeout, no retries, models ``fake-chat``/``fake-embed``."""
        options: dict[str, Any] = {
            "api_key": TEST_API_KEY,
            "base_url": self.base_url,
            "chat_model": "fake-chat",
            "embedding_model": "fake-embed",
            "timeout": 5.0,
            "max_retries": 0,
        }
        return OpenAIProvider(**(options | overrides))

    def settings(self, **overrides: Any) -> Settings:
        """``Settings`` that select the OpenAI-compatible provider on this server (no ``.env`` read)."""
        options: dict[str, Any] = {
            "persona_provider": "openai",
            "openai_api_key": TEST_API_KEY,
            "openai_base_url": self.base_url,
            "openai_chat_model": "fake-chat",
            "openai_embedding_model": "fake-embed",
            "openai_timeout": 5.0,
            "openai_max_retries": 0,
        }
        return Settings(_env_file=None, **(options | overrides))

    # --- used by the handler ---------------------------------------------------------------------------------
    def _record(self, path: str, body: Any, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(Recorded(path=path, body=body, headers=headers))

    def _next(self, endpoint: Endpoint) -> Reply:
        with self._lock:
            return self._queues[endpoint].popleft() if self._queues[endpoint] else Reply()

    def _vectors(self, body: dict[str, Any]) -> list[list[float]]:
        inputs = body.get("input", [])
        texts = [inputs] if isinstance(inputs, str) else [str(text) for text in inputs]
        model = str(body.get("model", ""))
        dimension = body.get("dimensions") or KNOWN_EMBEDDING_DIMENSIONS.get(model) or self.embedding_dimension
        return _hash_embedder(int(dimension)).embed(texts)


_EMBEDDERS: dict[int, HashEmbedder] = {}


def _hash_embedder(dimension: int) -> HashEmbedder:
    if dimension not in _EMBEDDERS:
        _EMBEDDERS[dimension] = HashEmbedder(dimension)
    return _EMBEDDERS[dimension]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeOpenAI

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and went away is expected here; anything else should be loud.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # Small responses would otherwise wait ~40 ms each for Nagle's algorithm.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, like the real API
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        """Quiet: tests assert on recorded requests, not on logs."""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
        self._send_json(404, _error_body(f"no route for GET {self.path}"))

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's naming
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"null")
        except json.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        path = self.path.split("?", 1)[0]
        fake._record(path, body, {key.lower(): value for key, value in self.headers.items()})
        endpoint = PATHS.get(path)
        if endpoint is None or not isinstance(body, dict):
            self._send_json(404 if endpoint is None else 400, _error_body(f"cannot handle POST {path}"))
            return
        reply = fake._next(endpoint)
        if reply.delay and fake._stopping.wait(reply.delay):
            return  # the server is shutting down
        if reply.status >= 400:
            self._send_json(reply.status, _error_body(reply.error or "error", reply.status), reply.headers)
        elif endpoint == "embeddings":
            self._send_json(200, _embeddings_body(body, reply, fake))
        elif body.get("stream"):
            self._stream(body, reply)
        else:
            content = reply.content if reply.content is not None else "".join(reply.tokens or []) or None
            self._send_json(200, _completion_body(body, content or default_content(body), reply.finish_reason))

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, body: dict[str, Any], reply: Reply) -> None:
        tokens = reply.tokens if reply.tokens is not None else _tokens(reply.content or default_content(body))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        model = body.get("model", "fake")
        self._event(_chunk(model, {"role": "assistant", "content": ""}))
        for number, token in enumerate(tokens):
            if number == reply.break_after:
                self._break_stream(reply)
                return
            self._event(_chunk(model, {"content": token}))
        if reply.break_after is not None and reply.break_after >= len(tokens):
            self._break_stream(reply)
            return
        self._event(_chunk(model, {}, finish_reason=reply.finish_reason))
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")  # the last chunk of a chunked body

    def _break_stream(self, reply: Reply) -> None:
        if reply.error_event is not None:
            self._event(_error_body(reply.error_event, 500))
            self._write_chunk(b"")
            return
        # Closing mid-body leaves the chunked response incomplete: the client sees a dropped connection.
        time.sleep(0.05)  # let the tokens already written reach the client first
        self.connection.shutdown(socket.SHUT_WR)
        self.close_connection = True

    def _event(self, payload: Any) -> None:
        self._write_chunk(f"data: {json.dumps(payload)}\n\n".encode())

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _error_body(message: str, status: int = 400) -> dict[str, Any]:
    kind = {429: "rate_limit_exceeded", 401: "invalid_request_error"}.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": str(status)}}


def _completion_body(request: dict[str, Any], content: str, finish_reason: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _chunk(model: str, delta: dict[str, Any], *, finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }


def _embeddings_body(request: dict[str, Any], reply: Reply, fake: FakeOpenAI) -> dict[str, Any]:
    vectors = reply.vectors if reply.vectors is not None else fake._vectors(request)
    as_base64 = request.get("encoding_format") == "base64"
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode() if as_base64 else vector,
        }
        for index, vector in enumerate(vectors)
    ]
    if reply.reversed_order:
        data.reverse()
    usage = {"prompt_tokens": len(vectors), "total_tokens": len(vectors)}
    return {"object": "list", "data": data, "model": request.get("model", "fake"), "usage": usage}


def _tokens(text: str) -> list[str]:
    return re.findall(r"\s*\S+", text) or [text]


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):  # content parts
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content)


def entry_text(request: dict[str, Any]) -> str:
    """The journal entry inside ``<entry>`` delimiters of a chat request, unescaped (else the last user message)."""
    texts = [_message_text(m) for m in request.get("messages", []) if m.get("role") == "user"]
    for text in texts:
        found = re.search(r"<entry>(.*?)</entry>", text, re.DOTALL)
        if found:
            return html.unescape(found.group(1)).strip()
    return texts[-1] if texts else ""


def default_extraction(text: str) -> Extraction:
    """The fake's unscripted extraction of ``text``: its first words as title and summary, nothing else."""
    words = text.split()
    return Extraction(
        title=" ".join(words[:6]) or "Untitled", summary=" ".join(words[:40]) or "Nothing written.", importance=0.5
    )


def default_content(request: dict[str, Any]) -> str:
    """The unscripted answer to a chat request, shaped by its ``response_format``."""
    response_format = request.get("response_format") or {}
    text = entry_text(request)
    if response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema") or {}
        if spec.get("name") == "extraction":
            return default_extraction(text).model_dump_json()
        return json.dumps(sample_for_schema(spec.get("schema") or {}))
    if response_format.get("type") == "json_object":
        return json.dumps({"answer": " ".join(text.split()[:20])})
    return "Fake answer: " + " ".join(text.split()[:20])


def sample_for_schema(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """A minimal value that satisfies a (simple) JSON schema: first enum value, empty arrays, zeros, "fake"."""
    root = root if root is not None else schema
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return sample_for_schema({**root.get("$defs", {}), **root.get("definitions", {})}[name], root)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    variants = schema.get("anyOf") or schema.get("oneOf")
    if variants:
        usable = [v for v in variants if v.get("type") != "null"] or variants
        return sample_for_schema(usable[0], root)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {key: sample_for_schema(value, root) for key, value in schema.get("properties", {}).items()}
    defaults: dict[str, Any] = {"array": [], "string": "fake", "integer": 0, "number": 0.0, "boolean": False}
    return defaults.get(kind)


@pytest.fixture(name="fake_openai")
def fake_openai_fixture() -> Iterator[FakeOpenAI]:
    """A running fake OpenAI-compatible server for one test."""
    with FakeOpenAI() as fake:
        yield fake
