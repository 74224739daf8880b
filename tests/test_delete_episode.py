"""Deleting an Episode, on both stores: it takes everything extracted from its entry, and the entry stays, pending,
so it can be extracted again (or deleted). Before, the entry stayed "done" with no memories and no way back."""

from __future__ import annotations

from fastapi.testclient import TestClient

from persona.api import create_app
from persona.config import Settings
from persona.ingest import ingest_entry, retry_failed
from persona.llm.offline import OfflineProvider
from persona.models import EntryStatus, NodeType
from persona.store.base import Store
from persona.store.rules import REEXTRACT_NOTE
from tests.factories import day

GARDEN = "Lunch with Sarah in Lisbon. I love long lunches. I want to finish the garden plan by Friday."
EXTRACTED = (NodeType.EPISODE, NodeType.PSYCHE, NodeType.GOAL, NodeType.PASSAGE)


def _from_entry(store: Store, user: str, entry_id: str) -> list:
    return [n for t in EXTRACTED for n in store.list_nodes(user, t, limit=1000) if n.entry_id == entry_id]


def test_deleting_an_episode_empties_its_entry_for_re_extraction(store, user):
    provider = OfflineProvider()
    before = ingest_entry(store, provider, user, "Swam at Cascais with Tom.", occurred_at=day(0))
    garden = ingest_entry(store, provider, user, GARDEN, occurred_at=day(1))
    after = ingest_entry(store, provider, user, "Dinner with Tom in Porto.", occurred_at=day(2))
    extracted = _from_entry(store, user, garden.entry.id)
    assert {n.type for n in extracted} == set(EXTRACTED)

    removed = store.delete_node(user, garden.batch.episodes[0].id)

    assert removed >= len(extracted)  # and the entities only this entry mentioned (Lisbon)
    assert _from_entry(store, user, garden.entry.id) == []
    entry = store.get_node(user, garden.entry.id)
    assert entry.text == GARDEN and entry.status is EntryStatus.PENDING and entry.error == REEXTRACT_NOTE
    assert store.chain(user) == [before.batch.episodes[0].id, after.batch.episodes[0].id]
    assert "lisbon" not in {e.canonical for e in store.list_nodes(user, NodeType.ENTITY, limit=100)}

    (again,) = retry_failed(store, provider, user)  # the re-extraction offered on the Journal page and the CLI
    assert again.ok and again.entry.id == garden.entry.id
    assert store.get_node(user, garden.entry.id).status is EntryStatus.DONE
    assert {n.type for n in _from_entry(store, user, garden.entry.id)} == set(EXTRACTED)
    assert len(store.chain(user)) == 3


def test_deleting_a_goal_or_psyche_leaves_the_entry_done(store, user):
    provider = OfflineProvider()
    garden = ingest_entry(store, provider, user, GARDEN, occurred_at=day(1))
    store.delete_node(user, garden.batch.goals[0].id)
    store.delete_node(user, garden.batch.psyche[0].id)
    assert store.get_node(user, garden.entry.id).status is EntryStatus.DONE
    assert store.get_node(user, garden.batch.episodes[0].id).entry_id == garden.entry.id


def test_over_the_api(store, user):
    settings = Settings(_env_file=None, persona_api_token="t" * 24)
    app = create_app(store=store, provider=OfflineProvider(), settings=settings)
    with TestClient(app, headers={"Authorization": f"Bearer {'t' * 24}"}) as client:
        client.post(f"/api/v1/users/{user}")
        made = client.post(f"/api/v1/users/{user}/ingest", json={"text": GARDEN}).json()
        gone = client.delete(f"/api/v1/users/{user}/memories/{made['episode']['id']}")
        assert gone.status_code == 200 and gone.json()["deleted"] >= 4
        entry = client.get(f"/api/v1/users/{user}/memories/{made['entry_id']}").json()
        assert entry["status"] == "pending" and "extract it again" in entry["error"]
