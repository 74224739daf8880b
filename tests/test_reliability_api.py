"""The HTTP API is an entry point too: every hostile value of ``tests.hostile`` in path ids, query filters and bodies
gets a 4xx JSON error (or a normal answer), never a 500, and changes nothing of another user.

The API's own limits and schema fuzzing live in tests/test_api.py and tests/test_api_schemathesis.py; this pushes
the same table the library sees through the routes that take text or ids. SQLite only: the routes behave the same on
both stores (tests/test_api.py runs them on both), and the library suite already runs this table on Neo4j. Bodies
are sent as ASCII JSON, so a lone surrogate arrives as ``\ud800`` escapes, as any JSON client may send it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from persona.api import create_app
from persona.config import Settings
from persona.ingest import ingest_entry
from persona.llm.offline import OfflineProvider
from persona.store.base import Store
from tests.factories import day
from tests.hostile import HOSTILE, Hostile

TOKEN = "reliability-token-0123456789abcdef"
SETTINGS = Settings(_env_file=None, persona_api_token=TOKEN)
PROVIDER = OfflineProvider()


@pytest.fixture
def api(sqlite_store: Store) -> Iterator[tuple[TestClient, str, str, str]]:
    """A client, a user with one entry (and its episode id), and a bystander with the same entry."""
    user, bystander = "u-api-user", "u-api-bystander"
    result = ingest_entry(sqlite_store, PROVIDER, user, "Lunch with Sarah in Lisbon.", occurred_at=day(0))
    ingest_entry(sqlite_store, PROVIDER, bystander, "Lunch with Sarah in Lisbon.", occurred_at=day(0))
    app = create_app(store=sqlite_store, provider=PROVIDER, settings=SETTINGS)
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}, raise_server_exceptions=False) as client:
        yield client, user, bystander, result.batch.episodes[0].id


def _requests(user: str, episode: str, value: str) -> list[tuple[str, str, dict]]:
    """(method, url, options) for each route, with the hostile value in one place each."""
    enc = quote(value[:5000].encode("utf-8", "surrogatepass"), safe="")  # a URL stays a URL: long values in bodies
    base = f"/api/v1/users/{user}"
    return [
        ("POST", f"/api/v1/users/{enc}", {}),
        ("GET", f"/api/v1/users/{enc}/memories", {}),
        ("GET", f"/api/v1/users/{enc}/export", {}),
        ("DELETE", f"/api/v1/users/{enc}", {}),
        ("GET", f"{base}/memories/{enc}", {}),
        ("GET", f"{base}/memories/{enc}/subgraph", {}),
        ("DELETE", f"{base}/memories/{enc}", {}),
        ("GET", f"{base}/memories", {"params": {"type": value[:5000]}}),
        ("GET", f"{base}/memories", {"params": {"start": value[:5000]}}),
        ("GET", f"{base}/timeline", {"params": {"end": value[:5000]}}),
        ("GET", f"{base}/memories/{episode}/subgraph", {"params": {"depth": value[:5000]}}),
        ("POST", f"{base}/rag/query", {"json": {"question": value}}),
        ("POST", f"{base}/rag/query", {"json": {"question": "lunch", "as_of": value}}),
        ("POST", f"{base}/ingest", {"json": {"text": "ok", "occurred_at": value}}),
        (
            "POST",
            f"{base}/ingest/batch",
            {"json": {"entries": [{"text": "fine"}, {"text": "x", "occurred_at": value}]}},
        ),
    ]


def _send(client: TestClient, method: str, url: str, options: dict):
    if "json" in options:  # ASCII JSON: lone surrogates travel as escapes
        body = json.dumps(options["json"]).encode()
        return client.request(method, url, content=body, headers={"Content-Type": "application/json"})
    if "params" in options:
        params = {k: v.encode("utf-8", "surrogatepass") for k, v in options["params"].items()}
        return client.request(method, url, params=params)
    return client.request(method, url)


@pytest.mark.parametrize("hostile", HOSTILE, ids=[h.id for h in HOSTILE])
def test_hostile_values_through_the_api_are_4xx_never_500(api, sqlite_store: Store, hostile: Hostile) -> None:
    client, user, bystander, episode = api
    kept, mine = sqlite_store.export_user(bystander), sqlite_store.export_user(user)
    for method, url, options in _requests(user, episode, hostile.value):
        response = _send(client, method, url, options)
        where = f"{method} {url[:80]} {str(options)[:80]}"
        assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
        if response.status_code >= 400:
            body = response.json()
            assert "error" in body and body["error"].get("code"), f"{where}: not a JSON error: {body}"
    assert sqlite_store.export_user(bystander) == kept, "another user's data changed"
    after = sqlite_store.export_user(user)
    assert {n["id"] for n in mine["nodes"]} <= {n["id"] for n in after["nodes"]}, "the user's data was deleted"


@pytest.mark.parametrize("hostile", HOSTILE, ids=[h.id for h in HOSTILE])
def test_hostile_entry_text_through_the_api_is_stored_or_refused_cleanly(
    api, sqlite_store: Store, hostile: Hostile
) -> None:
    from tests.hostile import expected_text, storable

    client, user, _, _ = api
    body = {"text": hostile.value, "occurred_at": "2024-05-01T09:00:00+00:00"}
    response = _send(client, "POST", f"/api/v1/users/{user}/ingest", {"json": body})
    assert response.status_code < 500, response.text[:300]
    if any("\ud800" <= c <= "\udfff" for c in hostile.value):
        # The API's body model refuses text that is not valid Unicode (the library would clean it): a clear 422.
        assert response.status_code == 422 and "body.text" in response.json()["error"]["message"]
    elif storable(hostile.value):
        assert response.status_code == 201, response.text[:300]
        entry = sqlite_store.get_node(user, response.json()["entry_id"])
        assert entry.text == expected_text(hostile.value)
    else:
        assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"
