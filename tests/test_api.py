"""The HTTP API through FastAPI's TestClient on both stores: every route, auth, and every error status.

Routes with a language model (ask, a streamed RAG answer, a failing extraction over HTTP) run on SQLite only: the
fake OpenAI server's embedder differs from the shared Neo4j's, and the store refuses to mix embedders.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

import persona.api as api
from persona.api import ApiConfigError, check_local_refs, create_app, serve
from persona.config import Settings, get_settings
from persona.errors import ProviderError, ValidationError
from persona.llm.offline import OfflineProvider
from persona.models import NodeType
from persona.store.base import Store
from persona.store.sqlite import SqliteStore
from tests.factories import day
from tests.fake_openai import FakeOpenAI, fake_openai_fixture  # noqa: F401 - the fake_openai fixture

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SETTINGS = Settings(_env_file=None, persona_api_token=TOKEN)
LUNCH = "Had lunch with Sarah at Café Andorinha in Lisbon. I love long lunches. I want to finish the garden plan."


def _routes() -> list[tuple[str, str]]:
    """Every operation of the app. Read from its OpenAPI schema: FastAPI >= 0.16x keeps included routers as one
    opaque entry of ``app.routes``, and the schema is what clients see anyway."""
    app = create_app(settings=SETTINGS)  # no I/O: clients are made at start-up, which never runs here
    return sorted((method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops)


ROUTES = _routes()
USER_ROUTES = [(m, p) for m, p in ROUTES if p != "/api/v1/users/{user_id}" or m == "DELETE"]


def _url(path: str, user: str, memory: str = "00000000-0000-4000-8000-000000000000") -> str:
    ids = {"{memory_id}": memory, "{change_id}": memory, "{match_id}": memory}
    for name, value in ids.items():
        path = path.replace(name, value)
    return path.replace("{user_id}", user)


def _body(method: str, path: str) -> dict | None:
    """A valid body for each route that takes one (so the only thing wrong is what the test is about)."""
    if path.endswith("/ingest"):
        return {"text": "A walk by the river."}
    if path.endswith("/batch"):
        return {"entries": [{"text": "A walk by the river."}]}
    if path.endswith("/rag/query"):
        return {"question": "river?"}
    if path.endswith("/rag/query-vector"):
        return {"query": "river?"}
    if path.endswith("/ask"):
        return {"question": "river?", "schema": {"type": "object"}}
    return None


def _call(client: TestClient, method: str, url: str, body: dict | None = None, **kwargs):
    return client.request(method, url, json=body, **kwargs)


class FailingProvider(OfflineProvider):
    """The offline provider whose extraction always fails, as a broken LLM would."""

    def extract(self, text: str, *, occurred_at: datetime):
        raise ProviderError("the model is down")


@pytest.fixture
def client(store: Store, provider: OfflineProvider) -> Iterator[TestClient]:
    with TestClient(create_app(store=store, provider=provider, settings=SETTINGS), headers=AUTH) as test_client:
        yield test_client


@pytest.fixture
def made(client: TestClient, user: str) -> str:
    """A user created through the API."""
    assert client.post(f"/api/v1/users/{user}").status_code == 201
    return user


def _ingest(client: TestClient, user: str, text: str, when: datetime | None = None, status: int = 201) -> dict:
    body = {"text": text} | ({"occurred_at": when.isoformat()} if when else {})
    response = client.post(f"/api/v1/users/{user}/ingest", json=body)
    assert response.status_code == status, response.text
    return response.json()


def _error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"code", "message"}
    if code:
        assert error["code"] == code
    return error


# -- users ------------------------------------------------------------------------------------------------------
def test_create_and_delete_user(client, user):
    created = client.post(f"/api/v1/users/{user}")
    assert created.status_code == 201 and created.json()["id"] == user
    again = client.post(f"/api/v1/users/{user}")  # idempotent, as in the original Persona
    assert again.status_code == 200 and again.json()["status"] == "exists"
    _ingest(client, user, LUNCH)
    deleted = client.delete(f"/api/v1/users/{user}")
    assert deleted.status_code == 200 and deleted.json()["deleted"] > 3
    _error(client.delete(f"/api/v1/users/{user}"), 404, "user_not_found")
    _error(client.get(f"/api/v1/users/{user}/memories"), 404, "user_not_found")


def test_one_user_never_sees_another(client, user_ids):
    alice, bob = user_ids[:2]
    for name in (alice, bob):
        client.post(f"/api/v1/users/{name}")
    entry = _ingest(client, alice, LUNCH)
    _error(client.get(f"/api/v1/users/{bob}/memories/{entry['entry_id']}"), 404, "memory_not_found")
    _error(client.delete(f"/api/v1/users/{bob}/memories/{entry['entry_id']}"), 404)
    assert client.get(f"/api/v1/users/{bob}/memories").json()["items"] == []
    assert client.post(f"/api/v1/users/{bob}/rag/query", json={"question": "Sarah lunch"}).json()["sources"] == []


# -- ingest -----------------------------------------------------------------------------------------------------
def test_ingest_returns_what_was_extracted(client, made):
    result = _ingest(client, made, LUNCH, day(0))
    assert result["status"] == "done" and result["error"] is None and not result["duplicate"]
    assert result["episode"]["type"] == "Episode" and result["episode"]["entry_id"] == result["entry_id"]
    assert "sarah" in {e["canonical"] for e in result["entities"]}
    assert result["passages"] >= 1 and "embedding" not in result["episode"]
    assert result["occurred_at"].startswith("2024-03-01T09:00:00")
    entry = client.get(f"/api/v1/users/{made}/memories/{result['entry_id']}").json()
    assert entry["type"] == "Entry" and entry["text"] == LUNCH and entry["status"] == "done"


def test_duplicate_text_is_409_with_the_existing_entry(client, made):
    first = _ingest(client, made, "A quiet Sunday with Tom.")
    error = _error(client.post(f"/api/v1/users/{made}/ingest", json={"text": "A quiet  Sunday with Tom. "}), 409)
    assert error["code"] == "duplicate" and error["existing_id"] == first["entry_id"]


def test_failed_extraction_is_202_and_the_entry_is_kept(store, made):
    with TestClient(create_app(store=store, provider=FailingProvider(), settings=SETTINGS), headers=AUTH) as client:
        result = _ingest(client, made, "Lunch with Sarah.", status=202)
        assert result["status"] == "failed" and "the model is down" in result["error"]
        assert result["episode"] is None and result["entities"] == []
        entry = client.get(f"/api/v1/users/{made}/memories/{result['entry_id']}").json()
        assert entry["status"] == "failed" and entry["text"] == "Lunch with Sarah."


def test_batch_ingest_reports_each_entry(client, made):
    _ingest(client, made, "Already here.")
    entries = [{"text": f"Day {n} by the sea with Nora.", "occurred_at": day(n).isoformat()} for n in range(3)]
    response = client.post(
        f"/api/v1/users/{made}/ingest/batch", json={"entries": [*entries, {"text": "Already here."}]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["done"], body["failed"], body["duplicates"]) == (3, 0, 1)
    assert [r["status"] for r in body["results"]] == ["done"] * 4 and body["results"][3]["duplicate"]
    assert len({r["entry_id"] for r in body["results"]}) == 4


def test_batch_limits_and_all_or_nothing_validation(client, made):
    url = f"/api/v1/users/{made}/ingest/batch"
    _error(client.post(url, json={"entries": []}), 422, "invalid_request")
    _error(client.post(url, json={"entries": [{"text": "x"}] * 1001}), 422)
    bad = client.post(url, json={"entries": [{"text": "Fine entry."}, {"text": "   "}]})
    _error(bad, 422, "invalid_request")
    assert client.get(f"/api/v1/users/{made}/memories", params={"type": "Entry"}).json()["items"] == []


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"text": ""}, "text"),
        ({"text": "   \n\t "}, "empty"),
        ({"text": "\x00\x00"}, "empty"),
        ({}, "text"),
        ({"text": 42}, "text"),
        ({"text": "ok", "occurred_at": "2024-13-01T09:00:00+00:00"}, "occurred_at"),
        ({"text": "ok", "occurred_at": "yesterday"}, "occurred_at"),
        ({"text": "ok", "occurred_at": "2024-03-01T09:00:00"}, "timezone"),
        ({"text": "ok", "occurred_at": "0001-01-01T00:00:00+05:00"}, "range"),
        ({"text": "ok", "extra": 1}, "extra"),
    ],
)
def test_bad_entry_is_422(client, made, body, where):
    error = _error(client.post(f"/api/v1/users/{made}/ingest", json=body), 422, "invalid_request")
    assert where in (error["message"] + str(error.get("fields"))).lower()
    assert client.get(f"/api/v1/users/{made}/memories", params={"type": "Entry"}).json()["items"] == []


def test_malformed_json_is_422(client, made):
    response = client.post(
        f"/api/v1/users/{made}/ingest", content=b"{not json", headers={"content-type": "application/json"}
    )
    _error(response, 422, "invalid_request")


@pytest.mark.parametrize("bad", ["Alice", "-x", "a" * 64, "a b", "é", "a.b", "a%0Ab", "ab%0A"])
def test_bad_user_id_is_422(client, bad):
    _error(client.post(f"/api/v1/users/{bad}"), 422, "invalid_request")
    _error(client.get(f"/api/v1/users/{bad}/memories"), 422)


# -- retrieval --------------------------------------------------------------------------------------------------
def _journal(client: TestClient, user: str) -> list[dict]:
    texts = [
        (5, "Went hiking with Sarah in Sintra. The fog lifted at noon."),
        (1, "Started reading a book about bees. I value patience."),
        (9, "Dinner with Tom in Porto. We talked about the garden."),
        (3, "Swam in the sea at Cascais with Sarah. I want to finish the garden plan by Friday."),
    ]
    return [_ingest(client, user, text, day(offset)) for offset, text in texts]


def test_rag_query_offline(client, made):
    _journal(client, made)
    response = client.post(f"/api/v1/users/{made}/rag/query", json={"question": "When did I go hiking with Sarah?"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["offline"] is True and body["answer"].startswith("Offline answer")
    assert body["sources"] and body["context"].startswith("<memories")
    assert any("Sintra" in s["text"] for s in body["sources"][:3])
    assert set(body["cited_ids"]) <= {s["id"] for s in body["sources"]} and body["cited_ids"]
    assert all(s["id"] in body["context"] for s in body["sources"])
    assert all({"id", "type", "score", "reason", "text"} <= set(s) for s in body["sources"])


def test_rag_query_as_of_and_limit(client, made):
    _journal(client, made)
    url = f"/api/v1/users/{made}/rag/query"
    early = client.post(url, json={"question": "Sarah", "as_of": day(4).isoformat()}).json()
    assert early["sources"] and all(
        s["occurred_at"] is None or s["occurred_at"] < "2024-03-05" for s in early["sources"]
    )
    assert len(client.post(url, json={"question": "Sarah", "limit": 1}).json()["sources"]) <= 1
    for bad in ({"question": ""}, {"question": "  "}, {"question": "x" * 4001}, {"question": "x", "limit": 0}):
        _error(client.post(url, json=bad), 422, "invalid_request")
    _error(client.post(url, json={"question": "x", "as_of": "2024-03-01T00:00:00"}), 422)


def test_ask_offline_is_501_and_bad_schemas_are_422(client, made):
    url = f"/api/v1/users/{made}/ask"
    error = _error(client.post(url, json={"question": "my habits?", "schema": {"type": "object"}}), 501, "needs_llm")
    assert "OPENAI" in error["message"]
    _error(client.post(url, json={"question": "x", "schema": {"type": "nonsense"}}), 422, "invalid_request")
    remote = {"type": "object", "properties": {"a": {"$ref": "http://127.0.0.1:9/x.json"}}}
    assert "local" in _error(client.post(url, json={"question": "x", "schema": remote}), 422)["message"]
    _error(client.post(url, json={"question": "x"}), 422)
    _error(client.post(url, json={"question": "x", "schema": []}), 422)


def test_check_local_refs():
    check_local_refs({"$defs": {"a": {"type": "string"}}, "items": [{"$ref": "#/$defs/a"}]})
    for bad in ({"$ref": "other.json"}, {"allOf": [{"$dynamicRef": "https://x/y"}]}, {"a": [{"$ref": 3}]}):
        with pytest.raises(ValidationError):
            check_local_refs(bad)


# -- memories ---------------------------------------------------------------------------------------------------
def test_list_memories_filters_and_pages(client, made):
    _journal(client, made)
    url = f"/api/v1/users/{made}/memories"
    default = client.get(url).json()
    assert {m["type"] for m in default["items"]} <= {"Episode", "Psyche", "Goal"}
    episodes = client.get(url, params={"type": "Episode"}).json()["items"]
    assert [e["occurred_at"][:10] for e in episodes] == ["2024-03-10", "2024-03-06", "2024-03-04", "2024-03-02"]
    first = client.get(url, params={"type": "Episode", "limit": 3}).json()
    second = client.get(url, params={"type": "Episode", "limit": 3, "offset": first["next_offset"]}).json()
    assert first["next_offset"] == 3 and second["next_offset"] is None
    assert [e["id"] for e in first["items"] + second["items"]] == [e["id"] for e in episodes]
    merged = [client.get(url, params={"limit": 2, "offset": o}).json()["items"] for o in range(0, 20, 2)]
    assert [m["id"] for page in merged for m in page] == [m["id"] for m in client.get(url).json()["items"]]
    window = {"type": "Episode", "start": day(3).isoformat(), "end": day(9).isoformat()}
    assert [e["occurred_at"][:10] for e in client.get(url, params=window).json()["items"]] == [
        "2024-03-06",
        "2024-03-04",
    ]
    assert client.get(url, params={"type": "Entity"}).json()["items"]
    for bad in ({"type": "Nope"}, {"limit": 0}, {"limit": 501}, {"offset": -1}, {"start": "2024-03-01T00:00:00"}):
        _error(client.get(url, params=bad), 422, "invalid_request")


def test_get_memory_of_each_type(client, made):
    _journal(client, made)
    for node_type in NodeType:
        items = client.get(f"/api/v1/users/{made}/memories", params={"type": node_type.value}).json()["items"]
        assert items, node_type
        one = client.get(f"/api/v1/users/{made}/memories/{items[0]['id']}")
        assert one.status_code == 200 and one.json() == items[0]
    _error(client.get(f"/api/v1/users/{made}/memories/no-such-id"), 404, "memory_not_found")
    _error(client.get(f"/api/v1/users/{made}/memories/{'x' * 65}"), 422)


def test_subgraph_around_a_memory(client, made):
    result = _journal(client, made)[0]
    episode_id = result["episode"]["id"]
    url = f"/api/v1/users/{made}/memories/{episode_id}/subgraph"
    one = client.get(url).json()
    ids = {n["id"] for n in one["nodes"]}
    assert episode_id in ids and {e["id"] for e in result["entities"]} <= ids
    assert one["links"] and all(lk["source_id"] in ids and lk["target_id"] in ids for lk in one["links"])
    assert {n["type"] for n in one["nodes"]} <= {"Episode", "Psyche", "Goal", "Entity"}
    assert len(client.get(url, params={"depth": 2}).json()["nodes"]) >= len(one["nodes"])
    assert [n["id"] for n in client.get(url, params={"depth": 0}).json()["nodes"]] == [episode_id]
    assert len(client.get(url, params={"depth": 2, "limit": 2}).json()["nodes"]) == 2
    _error(client.get(url, params={"depth": 4}), 422)
    _error(client.get(f"/api/v1/users/{made}/memories/nope/subgraph"), 404, "memory_not_found")


def test_timeline_is_the_chain_in_order(client, made):
    _journal(client, made)
    _ingest(client, made, "Backdated: a picnic in the park.", day(2))
    url = f"/api/v1/users/{made}/timeline"
    body = client.get(url).json()
    dates = [e["occurred_at"][:10] for e in body["episodes"]]
    assert dates == ["2024-03-02", "2024-03-03", "2024-03-04", "2024-03-06", "2024-03-10"] and body["total"] == 5
    window = client.get(url, params={"start": day(2).isoformat(), "end": day(5).isoformat()}).json()
    assert [e["occurred_at"][:10] for e in window["episodes"]] == ["2024-03-03", "2024-03-04"]
    assert len(client.get(url, params={"limit": 2}).json()["episodes"]) == 2
    _error(client.get(url, params={"end": "not a date"}), 422)


def test_delete_memory_cascades(client, made):
    results = _journal(client, made)
    entry_id = results[0]["entry_id"]
    deleted = client.delete(f"/api/v1/users/{made}/memories/{entry_id}")
    assert deleted.status_code == 200 and deleted.json()["deleted"] >= 3
    _error(client.get(f"/api/v1/users/{made}/memories/{entry_id}"), 404)
    _error(client.get(f"/api/v1/users/{made}/memories/{results[0]['episode']['id']}"), 404)
    assert len(client.get(f"/api/v1/users/{made}/timeline").json()["episodes"]) == 3
    _error(client.delete(f"/api/v1/users/{made}/memories/{entry_id}"), 404)


def test_export(client, made):
    _journal(client, made)
    body = client.get(f"/api/v1/users/{made}/export").json()
    assert body["format"] == "persona-export/1" and body["user_id"] == made
    assert sum(n["type"] == "Entry" for n in body["nodes"]) == 4 and body["links"]


def test_user_context(client, made):
    """The always-included context: current psyche and active goals (test_evolution_store covers changes)."""
    _journal(client, made)
    body = client.get(f"/api/v1/users/{made}/context").json()
    assert body["goals"] and all(g["status"] == "active" and g["valid_until"] is None for g in body["goals"])
    assert body["xml"].startswith("<user ") and body["goals"][0]["title"] in body["xml"]


# -- authentication ---------------------------------------------------------------------------------------------
def test_every_operation_is_tested():
    # changes and name matches: tests/test_api_changes.py; GET .../thread: tests/test_threads.py
    assert len(ROUTES) == 21


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["none", "wrong", "no-scheme", "basic"],
)
def test_every_route_needs_the_token(store, provider, user, method, path, headers):
    with TestClient(create_app(store=store, provider=provider, settings=SETTINGS)) as client:
        response = _call(client, method, _url(path, user), _body(method, path), headers=headers)
        _error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
        assert store.list_users() == [] or user not in {u.id for u in store.list_users()}


def test_unknown_paths_need_the_token_too_and_docs_are_open(client):
    with TestClient(client.app) as anonymous:
        _error(anonymous.get("/api/v1/nothing-here"), 401)
        assert anonymous.get("/openapi.json").status_code == 200
        assert anonymous.get("/docs").status_code == 200
    _error(client.get("/api/v1/nothing-here"), 404, "not_found")
    response = client.put("/api/v1/users/someone")
    _error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "DELETE, POST"  # every method of the path, not only the first route's
    response = client.post(f"/api/v1/users/someone/memories/{'0' * 8}")
    assert _error(response, 405) and response.headers["allow"] == "DELETE, GET, HEAD"


def test_no_token_refuses_to_start_unless_allowed(store, provider):
    with pytest.raises(ApiConfigError, match="PERSONA_API_TOKEN"):
        create_app(store=store, provider=provider, settings=Settings(_env_file=None))
    with pytest.raises(ApiConfigError):
        create_app(store=store, provider=provider, settings=Settings(_env_file=None, persona_api_token="  "))
    open_settings = Settings(_env_file=None, persona_api_allow_no_auth=True)
    app = create_app(store=store, provider=provider, settings=open_settings)
    with TestClient(app, client=("127.0.0.1", 50000), base_url="http://127.0.0.1:8000") as local:
        assert local.post("/api/v1/users/local-user").status_code == 201
        store.delete_user("local-user")
    # DNS rebinding: a loopback connection that names another host is a web page, not a local program
    with TestClient(app, client=("127.0.0.1", 50000), base_url="http://evil.example:8000") as rebound:
        _error(rebound.post("/api/v1/users/rebound-user"), 401)
    with TestClient(app, client=("203.0.113.7", 50000)) as remote:
        _error(remote.post("/api/v1/users/remote-user"), 401)
    with pytest.raises(ApiConfigError, match="refusing"):
        serve(host="0.0.0.0", settings=open_settings)


def test_cli_serve_refuses_a_public_address_without_token(monkeypatch):
    from persona.cli import cli

    monkeypatch.delenv("PERSONA_API_TOKEN", raising=False)
    monkeypatch.setenv("PERSONA_API_ALLOW_NO_AUTH", "1")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "8123"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code != 0 and "refusing" in str(result.exception)
    assert "--host" in CliRunner().invoke(cli, ["serve", "--help"]).output


# -- failures ---------------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def broken_store(store_kind: str, tmp_path: Path, provider: OfflineProvider, request) -> Store:
    """A store that was open and is now gone: a closed SQLite file, a closed Neo4j driver."""
    if store_kind == "sqlite":
        broken = SqliteStore(tmp_path / "gone.sqlite3", embedder=provider.embedder.info)
    else:
        broken = request.getfixturevalue("neo4j_store_factory")()
    broken.close()
    return broken


STORE_ROUTES = [(m, p) for m, p in ROUTES if p != "/api/v1/version"]  # the version needs no store


@pytest.mark.parametrize(("method", "path"), STORE_ROUTES, ids=[f"{m} {p}" for m, p in STORE_ROUTES])
def test_store_down_is_503(broken_store, provider, method, path, tmp_path):
    with TestClient(create_app(store=broken_store, provider=provider, settings=SETTINGS), headers=AUTH) as client:
        response = _call(client, method, _url(path, "someone"), _body(method, path))
        error = _error(response, 503, "store_unavailable")
        assert str(tmp_path) not in response.text and "bolt" not in response.text
        assert error["message"] == "the memory store is unavailable; try again later"


def test_unreachable_neo4j_at_start_up_is_503(provider):
    settings = Settings(
        _env_file=None, persona_api_token=TOKEN, persona_store="neo4j", neo4j_uri=f"bolt://127.0.0.1:{_free_port()}"
    )
    with TestClient(create_app(provider=provider, settings=settings), headers=AUTH) as client:
        for _ in range(2):
            response = client.get("/api/v1/users/someone/memories")
            _error(response, 503, "store_unavailable")
            assert "127.0.0.1" not in response.text


def test_unexpected_errors_are_a_generic_500(client, made, monkeypatch, caplog):
    def explode(*args, **kwargs):
        raise RuntimeError("secret detail at /home/someone/persona.sqlite3")

    monkeypatch.setattr(client.app.state.clients.store, "list_users", explode)
    response = client.get(f"/api/v1/users/{made}/memories")
    error = _error(response, 500, "internal_error")
    assert "secret" not in response.text and "Traceback" not in response.text and "/home" not in error["message"]
    assert "secret detail" in caplog.text


def test_body_over_the_limit_is_413(client, made, monkeypatch):
    monkeypatch.setattr(api, "MAX_BODY_BYTES", 1000)
    _error(client.post(f"/api/v1/users/{made}/ingest", json={"text": "x" * 2000}), 413, "too_large")
    assert client.post(f"/api/v1/users/{made}/ingest", json={"text": "short and fine"}).status_code == 201


# -- with a language model (the fake OpenAI server; SQLite) -----------------------------------------------------
@pytest.fixture
def llm(fake_openai: FakeOpenAI, tmp_path: Path) -> Iterator[tuple[TestClient, FakeOpenAI]]:
    provider = fake_openai.provider()
    store = SqliteStore(tmp_path / "llm.sqlite3", embedder=provider.embedder.info)
    with TestClient(create_app(store=store, provider=provider, settings=SETTINGS), headers=AUTH) as client:
        client.post("/api/v1/users/llm-user")
        yield client, fake_openai
    store.close()


def test_ask_with_a_model_returns_a_valid_result(llm):
    client, fake = llm
    _ingest(client, "llm-user", "Went hiking with Sarah in Sintra.", day(0))
    schema = {
        "type": "object",
        "properties": {"people": {"type": "array", "items": {"type": "string"}}},
        "required": ["people"],
        "additionalProperties": False,
    }
    fake.queue_json({"people": ["Sarah"]})
    response = client.post("/api/v1/users/llm-user/ask", json={"question": "Who do I hike with?", "schema": schema})
    assert response.status_code == 200, response.text
    assert response.json() == {"result": {"people": ["Sarah"]}}
    fake.queue_json({"people": "not a list"})
    fake.queue_json({"people": "still not a list"})
    error = _error(client.post("/api/v1/users/llm-user/ask", json={"question": "Who?", "schema": schema}), 502)
    assert error["code"] == "invalid_model_output"


PEOPLE = {
    "type": "object",
    "properties": {"people": {"type": "array", "items": {"type": "string"}}},
    "required": ["people"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("first", ['{"people": "Sarah"}', "{not json at all"], ids=["off-schema", "not-json"])
def test_ask_repairs_an_invalid_answer_once(llm, first):
    """docs/api.md promises one repair attempt: the model sees its answer and what is wrong, then answers again."""
    client, fake = llm
    _ingest(client, "llm-user", "Went hiking with Sarah in Sintra.", day(0))
    fake.queue_text(first)
    fake.queue_json({"people": ["Sarah"]})
    before = len(fake.chat_requests)
    response = client.post("/api/v1/users/llm-user/ask", json={"question": "Who do I hike with?", "schema": PEOPLE})
    assert response.status_code == 200, response.text
    assert response.json() == {"result": {"people": ["Sarah"]}}
    repair = fake.chat_requests[before + 1].messages
    assert len(fake.chat_requests) == before + 2
    assert repair[-2] == {"role": "assistant", "content": first} and "could not be used" in repair[-1]["content"]


def test_example_values_as_schema_constrain_the_answer(llm):
    """An example-valued dict passed as ``schema`` used to validate anything; it now means the schema it shows."""
    client, fake = llm
    example = {"topics": ["hiking"], "summary": "text", "count": 1}
    fake.queue_json({"anything": True})
    fake.queue_json({"topics": "not a list", "summary": 3})
    response = client.post("/api/v1/users/llm-user/ask", json={"question": "Topics?", "schema": example})
    assert _error(response, 502, "invalid_model_output")
    sent = fake.chat_requests[-1].body["response_format"]["json_schema"]["schema"]
    assert sent["required"] == ["topics", "summary", "count"] and sent["properties"]["count"]["type"] == "integer"
    fake.queue_json({"topics": ["hiking", "sea"], "summary": "Walks.", "count": 2})
    response = client.post("/api/v1/users/llm-user/ask", json={"question": "Topics?", "schema": example})
    assert response.json() == {"result": {"topics": ["hiking", "sea"], "summary": "Walks.", "count": 2}}


def test_rag_query_with_a_model_cites_sources(llm):
    client, fake = llm
    result = _ingest(client, "llm-user", "Went hiking with Sarah in Sintra.", day(0))
    episode_id = result["episode"]["id"]
    fake.queue_stream(["You hiked ", f"in Sintra [{episode_id}] ", "[00000000-0000-4000-8000-000000000000]."])
    body = client.post("/api/v1/users/llm-user/rag/query", json={"question": "Where did I hike?"}).json()
    assert body["offline"] is False and body["answer"].startswith("You hiked in Sintra")
    assert body["cited_ids"] == [episode_id]


def test_provider_failures_are_502_without_details(llm):
    client, fake = llm
    _ingest(client, "llm-user", "Went hiking with Sarah in Sintra.", day(0))
    fake.queue_stream(["You hiked", " in"], break_after=1)
    response = client.post("/api/v1/users/llm-user/rag/query", json={"question": "Where did I hike?"})
    error = _error(response, 502, "provider_error")
    assert "127.0.0.1" not in response.text and "fake" not in error["message"]
    fake.queue_error(500, endpoint="embeddings")
    _error(client.post("/api/v1/users/llm-user/rag/query", json={"question": "Where?"}), 502, "provider_error")


def test_failed_extraction_over_http_is_202(llm):
    client, fake = llm
    fake.queue_text("{not json")
    fake.queue_text("{still not json")
    result = _ingest(client, "llm-user", "A day the model broke.", status=202)
    assert result["status"] == "failed" and result["error"]
    fake.queue_error(500, times=5)
    assert _ingest(client, "llm-user", "Another broken day.", status=202)["status"] == "failed"


def test_created_at_and_occurred_at_are_utc(client, made):
    result = _ingest(client, made, "Late dinner in Tokyo.", datetime(2024, 3, 1, 23, 30, tzinfo=UTC))
    episode = client.get(f"/api/v1/users/{made}/memories/{result['episode']['id']}").json()
    assert episode["occurred_at"].startswith("2024-03-01T23:30:00") and episode["created_at"]


def test_compose_api_service_needs_a_token_and_stays_on_loopback():
    import yaml

    compose = yaml.safe_load((Path(__file__).resolve().parent.parent / "docker-compose.yml").read_text())
    service = compose["services"]["api"]
    assert service["command"][:2] == ["persona", "serve"] and service["profiles"] == ["api"]
    assert service["environment"]["PERSONA_API_TOKEN"] == "${PERSONA_API_TOKEN:-}"  # no default token, ever
    assert "PERSONA_API_ALLOW_NO_AUTH" not in service["environment"]
    assert all(port.startswith("127.0.0.1:") for port in service["ports"])
    known = {name.upper() for name in Settings.model_fields}
    assert set(service["environment"]) <= known
