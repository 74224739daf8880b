"""The API's guard and limits, round two (issue 16): near-miss tokens, a short token beyond loopback, a schema
nested 400 deep, the subgraph cap of 300 nodes, and duplicates in a batch that are not failures."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from persona.api import ApiConfigError, create_app, serve
from persona.config import Settings
from persona.llm.offline import OfflineProvider
from persona.models import EntryStatus, NodeType
from persona.store.base import Store
from tests.factories import day, write_entry

TOKEN = "round-two-token-0123456789abcdefghij"
SETTINGS = Settings(_env_file=None, persona_api_token=TOKEN)


@pytest.fixture(scope="module")
def provider() -> OfflineProvider:
    return OfflineProvider()


@pytest.fixture
def app(store: Store, provider: OfflineProvider):
    return create_app(store=store, provider=provider, settings=SETTINGS)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as test_client:
        yield test_client


NEAR_MISSES = {
    "prefix": TOKEN[:-1],
    "first-chars": TOKEN[:8],
    "last-char-changed": TOKEN[:-1] + ("x" if TOKEN[-1] != "x" else "y"),
    "one-more-char": TOKEN + "k",
    "upper-case": TOKEN.upper(),
    "nbsp-after": TOKEN + "\xa0",
    "nbsp-before": "\xa0" + TOKEN,
    "doubled": TOKEN + TOKEN,
    "empty": "",
}


def _raw_status(app, path: str, authorization: bytes) -> int:
    """The status the app answers to a request carrying exactly these header bytes (TestClient re-encodes header
    values as UTF-8, so a lone 0xA0 byte would not reach the app as a client sends it)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"authorization", authorization), (b"content-length", b"0")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


@pytest.mark.parametrize("name", sorted(NEAR_MISSES))
def test_a_near_miss_token_is_refused(app, client, user, name):
    header = f"Bearer {NEAR_MISSES[name]}".encode("latin-1")
    assert _raw_status(app, f"/api/v1/users/{user}", header) == 401
    exact = client.post(f"/api/v1/users/{user}")
    assert exact.status_code == 201  # the same request with the real token goes through


def test_spaces_and_tabs_around_the_token_are_allowed(app, user):
    with TestClient(app) as anonymous:
        response = anonymous.post(f"/api/v1/users/{user}", headers={"Authorization": f"Bearer  {TOKEN}\t"})
        assert response.status_code == 201


@pytest.mark.parametrize("token", ["x", "short-token", "a" * 31])
def test_serving_beyond_loopback_needs_a_long_token(token, monkeypatch):
    import uvicorn

    def started(*_args, **_kwargs):  # the guard failed: never actually listen on every interface in a test
        raise AssertionError("the API would have started on 0.0.0.0 with a short token")

    monkeypatch.setattr(uvicorn, "run", started)
    settings = Settings(_env_file=None, persona_api_token=token)
    with pytest.raises(ApiConfigError, match="at least 32 characters"):
        serve(host="0.0.0.0", port=1, settings=settings)


def _nested_schema(depth: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


def _nested_body(depth: int) -> str:
    """The request body as text: Python's own encoder cannot write a schema this deep."""
    schema = '{"type": "object", "properties": {"a": ' * depth + '{"type": "string"}' + "}}" * depth
    return f'{{"question": "what?", "schema": {schema}}}'


@pytest.mark.parametrize("depth", [400, 2000])
def test_ask_with_a_deeply_nested_schema_is_422(client, user, depth):
    assert client.post(f"/api/v1/users/{user}").status_code == 201
    response = client.post(
        f"/api/v1/users/{user}/ask", content=_nested_body(depth), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text[:300]
    # 400 levels parse and are refused by the depth check; 2,000 are past what the JSON parser reads at all
    assert ("levels deep" if depth == 400 else "not valid JSON") in response.text


def test_ask_with_a_normal_schema_gets_past_the_depth_check(client, user):
    assert client.post(f"/api/v1/users/{user}").status_code == 201
    response = client.post(f"/api/v1/users/{user}/ask", json={"question": "what?", "schema": _nested_schema(5)})
    assert response.status_code == 501  # offline: the schema was accepted, only the language model is missing


def test_the_subgraph_is_capped_at_300_nodes_and_says_so(client, store, user):
    for n in range(320):
        write_entry(store, user, f"Day {n} with Sarah.", day(n), people=("Sarah",))
    sarah = store.list_nodes(user, NodeType.ENTITY, limit=5)[0]
    url = f"/api/v1/users/{user}/memories/{sarah.id}/subgraph"
    default = client.get(url).json()
    assert len(default["nodes"]) == 300 and default["truncated"] is True and default["total_nodes"] == 321
    assert client.get(url, params={"limit": 300}).json()["nodes"] == default["nodes"]
    assert client.get(url, params={"limit": 301}).status_code == 422
    assert len(client.get(url, params={"limit": 10}).json()["nodes"]) == 10


def test_a_batch_of_identical_entries_is_one_done_and_four_duplicates(client, store, user):
    assert client.post(f"/api/v1/users/{user}").status_code == 201
    entries = [{"text": "The same walk by the river.", "occurred_at": day(0).isoformat()}] * 5
    body = client.post(f"/api/v1/users/{user}/ingest/batch", json={"entries": entries}).json()
    assert (body["done"], body["duplicates"], body["failed"]) == (1, 4, 0)
    assert [r["status"] for r in body["results"]] == ["done"] * 5
    assert len({r["entry_id"] for r in body["results"]}) == 1
    assert [e.status for e in store.list_nodes(user, NodeType.ENTRY)] == [EntryStatus.DONE]
