""" "What happened to X?" on both stores: chat recognises the question and answers from X's thread (the entries
mentioning the goal or person, oldest first, with the changes they made), offline and with a model (the thread
given as context, over real HTTP to the fake server); the API and the CLI serve it; unknown or empty subjects get
a clear error; one user never reaches another's thread."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from persona.api import create_app
from persona.chat import OFFLINE_LABEL, answer
from persona.cli import cli
from persona.config import get_settings
from persona.errors import SubjectNotFoundError, ValidationError
from persona.ingest import ingest_entry
from persona.llm.embedding import HashEmbedder
from persona.llm.offline import OfflineProvider
from persona.store.base import Store
from persona.store.sqlite import SqliteStore
from persona.threads import asked_about, thread_about
from tests.factories import day
from tests.test_api import AUTH, SETTINGS

JOURNAL = [
    (1, "I want to finish my thesis by June. Lunch with Dr. Amir Haddad."),
    (5, "Amir read chapter two of the thesis draft."),
    (9, "Went hiking alone in the hills."),
    (30, "Finally submitted the thesis today! Amir was thrilled."),
]


def _journal(store: Store, provider: OfflineProvider, user: str) -> list[str]:
    ids = []
    for offset, text in JOURNAL:
        result = ingest_entry(store, provider, user, text, occurred_at=day(offset))
        assert result.ok, result.error
        ids.append(result.batch.episodes[0].id)
    return ids


@pytest.mark.parametrize(
    ("question", "about"),
    [
        ("What happened to my thesis?", "my thesis"),
        ("what happened with Amir?", "Amir"),
        ("So what has happened to Prof. Okonkwo ?!", "Prof. Okonkwo"),
        ("What's happened with the kitchen", "the kitchen"),
        ("What happened on Monday at the gym?", None),
        ("Who is Amir?", None),
    ],
)
def test_the_question_is_recognised(question: str, about: str | None):
    assert asked_about(question) == about


def test_chat_answers_what_happened_to_a_goal_and_a_person_offline(store: Store, user: str, provider):
    episodes = _journal(store, provider, user)
    thesis = answer(store, provider, user, "What happened to my thesis?")
    text = thesis.complete()
    assert text.startswith(OFFLINE_LABEL) and "What happened to Finish my thesis, oldest first" in text
    # the goal's entry, one that speaks of the thesis, the one that finished it; never the hike
    assert thesis.cited_ids == [episodes[0], episodes[1], episodes[3]]
    assert (
        text.index("I want to finish my thesis")
        < text.index("Finally submitted")
        < text.index("→ Finish my thesis: done")
    )

    amir = answer(store, provider, user, "what happened with Amir?")
    text = amir.complete()
    assert "What happened to Dr. Amir Haddad" in text  # "Amir" is Dr. Amir Haddad
    assert amir.cited_ids == [episodes[0], episodes[1], episodes[3]]  # in time order; the hike is not his
    assert [s.id for s in amir.sources] == amir.cited_ids

    other = answer(store, provider, user, "What happened to the moon?")  # nothing called that: an ordinary answer
    assert "oldest first" not in other.complete()


def test_thread_about_an_unknown_or_empty_subject_is_a_clear_error(store: Store, user: str, provider):
    _journal(store, provider, user)
    with pytest.raises(SubjectNotFoundError, match="nothing in your memories is called or about 'the moon'"):
        thread_about(store, user, "the moon")
    with pytest.raises(ValidationError, match="empty"):
        thread_about(store, user, "  ")
    ingest_entry(store, provider, f"{user}-other", "Coffee with Zelda Fitzgerald.", occurred_at=day(2))
    with pytest.raises(SubjectNotFoundError):
        thread_about(store, user, "Zelda")  # another user's person is not this user's


def test_the_model_answers_with_the_thread_as_context(store: Store, user: str, provider, fake_openai):
    episodes = _journal(store, provider, user)
    llm = fake_openai.provider()
    llm.embedder = HashEmbedder()  # the store's embedder: only chat goes over HTTP
    fake_openai.queue_stream(["You submitted it ", f"[{episodes[3]}]."])
    reply = answer(store, llm, user, "What happened to my thesis?")
    assert reply.complete() == f"You submitted it [{episodes[3]}]." and not reply.offline
    assert reply.cited_ids == [episodes[3]]
    prompt = fake_openai.chat_requests[-1].messages[-1]["content"]
    thread = prompt[prompt.index("<thread") : prompt.index("</thread>")]
    assert thread.startswith('<thread about="Finish my thesis">')
    assert thread.index(episodes[0]) < thread.index(episodes[3])
    assert "<change>Finish my thesis: done</change>" in thread and "hiking" not in thread
    assert prompt.rstrip().endswith("Question: What happened to my thesis?")


def test_the_api_serves_a_thread_with_clear_errors(store: Store, user: str, provider):
    episodes = _journal(store, provider, user)
    with TestClient(create_app(store=store, provider=provider, settings=SETTINGS), headers=AUTH) as client:
        found = client.get(f"/api/v1/users/{user}/thread", params={"about": "Amir"})
        assert found.status_code == 200, found.text
        body = found.json()
        assert body["subject"]["title"] == "Dr. Amir Haddad" and body["subject"]["type"] == "Entity"
        assert [e["episode_id"] for e in body["entries"]] == [episodes[0], episodes[1], episodes[3]]
        thesis = client.get(f"/api/v1/users/{user}/thread", params={"about": "my thesis"}).json()
        assert [c["change"] for c in thesis["entries"][-1]["changes"]] == ["done"]
        assert thesis["entries"][-1]["changes"][0]["sentence"].startswith("Finally submitted the thesis")

        unknown = client.get(f"/api/v1/users/{user}/thread", params={"about": "the moon"})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "subject_not_found"
        assert "the moon" in unknown.json()["error"]["message"]
        for params in ({"about": "  "}, {}):
            empty = client.get(f"/api/v1/users/{user}/thread", params=params)
            assert empty.status_code == 422 and "empty" in empty.json()["error"]["message"]
        assert client.get("/api/v1/users/nobody-here/thread", params={"about": "Amir"}).status_code == 404
        assert client.get(f"/api/v1/users/{user}%20/thread", params={"about": "Amir"}).status_code in (404, 422)


def test_the_cli_prints_a_thread(app_home, tmp_path):
    provider = OfflineProvider()
    with SqliteStore(app_home / "persona.sqlite3", embedder=provider.embedder.info) as store:
        _journal(store, provider, "maya")
    get_settings.cache_clear()
    runner = CliRunner()
    printed = runner.invoke(cli, ["thread", "--user", "maya", "Amir"], catch_exceptions=False)
    assert printed.exit_code == 0, printed.output
    assert printed.output.startswith("What happened to Dr. Amir Haddad, oldest first:")
    assert printed.output.index("Lunch with Dr. Amir") < printed.output.index("Finally submitted")
    as_json = json.loads(runner.invoke(cli, ["thread", "-u", "maya", "--json", "my thesis"]).output)
    assert as_json["subject"]["title"] == "Finish my thesis" and len(as_json["entries"]) == 3
    missing = runner.invoke(cli, ["thread", "-u", "maya", "the moon"])
    assert missing.exit_code != 0 and "nothing in your memories" in str(missing.exception or missing.output)
