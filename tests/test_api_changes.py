"""Every automatic change can be seen and undone through the API, on both stores: the memory changes (goal done or
postponed, belief replaced) are listed, confirmed and undone; the automatic name matches ("Amir" taken for Dr. Amir
Haddad) are listed and undone. Unknown ids are 404, a change under a later one (or a match under a later merge) is
409 with a clear message and leaves the data as it was, and one user never reaches another's changes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from persona.api import create_app
from persona.ingest import ingest_entry
from persona.llm.offline import OfflineProvider
from persona.models import NodeType
from persona.store.base import Store
from tests.factories import day
from tests.test_api import AUTH, SETTINGS

JOURNAL = [
    (1, "I want to finish my thesis by June. Lunch with Dr. Amir Haddad."),
    (5, "Amir read chapter two of the thesis draft."),
    (9, "Dr. Haddad called about the conference."),
    (20, "I postponed the thesis to September."),
    (30, "Finally submitted the thesis today!"),
]
UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def client(store: Store, provider: OfflineProvider) -> Iterator[TestClient]:
    with TestClient(create_app(store=store, provider=provider, settings=SETTINGS), headers=AUTH) as test_client:
        yield test_client


def _journal(store: Store, provider: OfflineProvider, user: str) -> None:
    for offset, text in JOURNAL:
        result = ingest_entry(store, provider, user, text, occurred_at=day(offset))
        assert result.ok, result.error


def _error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    return response.json()["error"]["message"]


def _changes(client: TestClient, user: str) -> list[dict]:
    response = client.get(f"/api/v1/users/{user}/changes")
    assert response.status_code == 200, response.text
    return response.json()["changes"]


def _matches(client: TestClient, user: str) -> list[dict]:
    response = client.get(f"/api/v1/users/{user}/name-matches")
    assert response.status_code == 200, response.text
    return response.json()["matches"]


def _url(user: str, row: dict, kind: str, action: str) -> str:
    return f"/api/v1/users/{user}/memories/{row['memory_id']}/{kind}/{row['id']}/{action}"


def test_memory_changes_are_listed_confirmed_and_undone_latest_first(client, store, provider, user):
    _journal(store, provider, user)
    done, postponed = _changes(client, user)  # newest first
    assert (done["change"], postponed["change"]) == ("done", "postponed")
    assert done["memory_id"] == postponed["memory_id"] and done["memory"] == "Finish my thesis"
    assert "submitted the thesis" in done["sentence"] and done["entry_id"]
    assert (done["undoable"], postponed["undoable"]) == (True, False)

    before = store.export_user(user)
    message = _error(client.post(_url(user, postponed, "changes", "undo")), 409, "not_undoable")
    assert "latest change first" in message
    assert store.export_user(user) == before  # refused: nothing written

    confirmed = client.post(_url(user, done, "changes", "confirm"))
    assert confirmed.status_code == 200 and confirmed.json()["revisions"][-1]["confirmed"] is True
    assert _changes(client, user)[0]["confirmed"] is True

    goal = client.post(_url(user, done, "changes", "undo"))
    assert goal.status_code == 200, goal.text
    assert goal.json()["status"] == "active" and goal.json()["valid_until"] is None
    assert store.get_node(user, done["memory_id"]).status.value == "active"
    assert [c["id"] for c in _changes(client, user)] == [postponed["id"]]
    assert _changes(client, user)[0]["undoable"] is True
    _error(client.post(_url(user, done, "changes", "undo")), 404, "change_not_found")  # gone with the undo


def test_name_matches_are_listed_and_undone_latest_first(client, store, provider, user):
    _journal(store, provider, user)
    surname, first_name = _matches(client, user)  # newest first
    assert (surname["name"], first_name["name"]) == ("Dr. Haddad", "Amir")
    assert surname["entity"] == first_name["entity"] == "Dr. Amir Haddad"
    assert (surname["undoable"], first_name["undoable"]) == (True, False)
    assert "later name match" in first_name["blocked_by"]

    before = store.export_user(user)
    message = _error(client.post(_url(user, first_name, "name-matches", "undo")), 409, "not_undoable")
    assert "only the latest can be undone" in message
    assert store.export_user(user) == before

    restored = client.post(_url(user, surname, "name-matches", "undo"))
    assert restored.status_code == 200, restored.text
    assert restored.json()["name"] == "Dr. Haddad" and restored.json()["id"] != surname["memory_id"]
    haddad = store.get_node(user, surname["memory_id"])
    assert "Dr. Haddad" not in haddad.aliases and [m["id"] for m in haddad.matches] == [first_name["id"]]
    assert [m["id"] for m in _matches(client, user)] == [first_name["id"]]
    assert _matches(client, user)[0]["undoable"] is True
    _error(client.post(_url(user, surname, "name-matches", "undo")), 404, "change_not_found")


def test_a_name_match_under_a_later_merge_cannot_be_undone(client, store, provider, user):
    _journal(store, provider, user)
    assert ingest_entry(store, provider, user, "Coffee with Sarah Jones.", occurred_at=day(40)).ok
    latest = _matches(client, user)[0]
    sarah = next(e for e in store.list_nodes(user, NodeType.ENTITY) if e.name == "Sarah Jones")
    store.merge_entities(user, latest["memory_id"], sarah.id)  # a wrong merge, on top of the match

    row = next(m for m in _matches(client, user) if m["id"] == latest["id"])
    assert row["undoable"] is False and "merged" in row["blocked_by"]
    before = store.export_user(user)
    message = _error(client.post(_url(user, latest, "name-matches", "undo")), 409, "not_undoable")
    assert "merged with another entity since" in message
    assert store.export_user(user) == before


def test_unknown_ids_are_404_and_one_user_never_reaches_anothers_changes(client, store, provider, user_ids):
    alice, bob = user_ids[:2]
    _journal(store, provider, alice)
    store.ensure_user(bob)
    assert _changes(client, bob) == [] and _matches(client, bob) == []
    change, match = _changes(client, alice)[0], _matches(client, alice)[0]
    before = store.export_user(alice)
    for kind, row, actions in (("changes", change, ("undo", "confirm")), ("name-matches", match, ("undo",))):
        for action in actions:
            _error(client.post(_url(bob, row, kind, action)), 404, "memory_not_found")  # alice's memory
            _error(client.post(_url(alice, row | {"id": UNKNOWN}, kind, action)), 404, "change_not_found")
            _error(client.post(_url(alice, row | {"memory_id": UNKNOWN}, kind, action)), 404, "memory_not_found")
    # A change's id asked of the wrong kind of node: the goal has no name matches, an entity no changes.
    _error(client.post(_url(alice, change | {"id": match["id"]}, "name-matches", "undo")), 404, "change_not_found")
    _error(client.post(_url(alice, match | {"id": change["id"]}, "changes", "undo")), 404, "change_not_found")
    assert store.export_user(alice) == before
    for bad in ("Alice", "al ice", "-alice"):
        assert client.get(f"/api/v1/users/{bad}/changes").status_code == 422
        assert client.get(f"/api/v1/users/{bad}/name-matches").status_code == 422
    _error(client.get("/api/v1/users/nobody-here/changes"), 404, "user_not_found")
