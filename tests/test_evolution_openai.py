"""Memory changes decided by the OpenAI-compatible provider, over real HTTP to the fake server on 127.0.0.1, on both
stores: one extra call per entry with the candidate memories in it, the answer validated, the rules deciding when
the answer cannot be used."""

from __future__ import annotations

import json

from persona.ingest import ingest_entry
from persona.llm.embedding import HashEmbedder
from persona.models import GoalStatus, LinkType, NodeType
from persona.store.base import Store
from tests.factories import day
from tests.fake_openai import fake_openai_fixture  # noqa: F401 - the fake_openai fixture

FIRST = {
    "title": "Plans",
    "summary": "Wants to learn the cello and loves coffee.",
    "importance": 0.5,
    "entities": [],
    "psyche": [{"kind": "preference", "text": "I love coffee", "confidence": 0.8, "sentence": "I love coffee."}],
    "goals": [{"kind": "project", "title": "Learn the cello", "text": "Learn the cello", "status": "active"}],
}
SECOND_TEXT = "The cello is not for me after all, I stopped. Green tea has replaced coffee."
SECOND = {
    "title": "Changes",
    "summary": "Stopped the cello; tea instead of coffee.",
    "importance": 0.5,
    "entities": [],
    "psyche": [{"kind": "preference", "text": "Prefers green tea", "confidence": 0.7, "sentence": None}],
    "goals": [],
}


def _provider(fake):
    provider = fake.provider()
    provider.embedder = HashEmbedder()  # the store fixture's embedder: one Neo4j vector index serves all tests
    return provider


def _first(store: Store, fake, user: str):
    provider = _provider(fake)
    fake.queue_json(FIRST)
    assert ingest_entry(store, provider, user, "I want to learn the cello. I love coffee.", occurred_at=day(1)).ok
    [goal] = store.list_nodes(user, NodeType.GOAL)
    [psyche] = store.list_nodes(user, NodeType.PSYCHE)
    return provider, goal, psyche


def test_the_model_decides_changes_in_one_extra_call_given_the_candidates(store: Store, user: str, fake_openai):
    provider, goal, coffee = _first(store, fake_openai, user)
    calls = len(fake_openai.chat_requests)
    fake_openai.queue_json(SECOND)
    fake_openai.queue_json(
        {
            "goals": [{"goal_id": goal.id, "status": "dropped", "due": None, "sentence": "I stopped."}],
            "beliefs": [{"old_id": coffee.id, "sentence": "Green tea has replaced coffee."}],
        }
    )
    assert ingest_entry(store, provider, user, SECOND_TEXT, occurred_at=day(20)).ok
    requests = fake_openai.chat_requests[calls:]
    assert len(requests) == 2  # the extraction, then ONE call for the changes
    prompt = requests[1].messages[-1]["content"]
    assert goal.id in prompt and coffee.id in prompt and "Learn the cello" in prompt  # the candidates were shown
    goal_now, coffee_now = store.get_node(user, goal.id), store.get_node(user, coffee.id)
    assert goal_now.status is GoalStatus.DROPPED and goal_now.revisions[0].sentence == "I stopped."
    assert coffee_now.valid_until == day(20)
    supersedes = store.neighbours(user, [coffee.id], link_types=[LinkType.SUPERSEDES])
    assert len(supersedes) == 1 and "Green tea" in store.get_node(user, supersedes[0].source_id).text


def test_an_answer_naming_unknown_memories_is_refused_and_the_rules_decide(store: Store, user: str, fake_openai):
    provider, goal, coffee = _first(store, fake_openai, user)
    fake_openai.queue_json(SECOND | {"psyche": []})
    fake_openai.queue_json(
        {"goals": [{"goal_id": "not-shown", "status": "done", "due": None, "sentence": "I stopped."}]}
    )
    assert ingest_entry(store, provider, user, "I have given up on the cello.", occurred_at=day(20)).ok
    assert store.get_node(user, goal.id).status is GoalStatus.DROPPED  # the offline rules' decision
    assert store.get_node(user, coffee.id).current


def test_a_malformed_answer_changes_nothing_wrongly(store: Store, user: str, fake_openai):
    provider, goal, coffee = _first(store, fake_openai, user)
    fake_openai.queue_json(SECOND | {"psyche": []})
    fake_openai.queue_text(json.dumps({"goals": [{"goal_id": goal.id, "status": "finished-ish"}]}))
    assert ingest_entry(store, provider, user, "Lovely walk by the river today.", occurred_at=day(20)).ok
    assert store.get_node(user, goal.id).status is GoalStatus.ACTIVE and store.get_node(user, coffee.id).current
