"""The ``persona`` command for a person (search, ask, chat, context, unknown users), end to end: a real subprocess, a
fresh ``PERSONA_HOME`` (SQLite) and the offline provider, as someone would run it in a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_openai import TEST_API_KEY, FakeOpenAI

JOURNAL = """\
# 2024-03-01
Went hiking with Sarah in Sintra. The fog lifted at noon and we ate bread on a rock.

# 2024-03-05
Started reading a book about bees. I value patience. I want to finish the garden plan by Friday.

# 2024-04-10
Dinner with Tom in Porto. We talked about the garden and his new job at Acme.
"""


def persona(
    home: Path, *args: str, stdin: str | None = None, llm: FakeOpenAI | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``persona ARGS`` in its own process with ``home`` as PERSONA_HOME, offline unless ``llm`` is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PERSONA_", "NEO4J_"))}
    env |= {"PERSONA_HOME": str(home), "PERSONA_PROVIDER": "offline", "PERSONA_STORE": "sqlite"}
    if llm is not None:
        env |= {
            "PERSONA_PROVIDER": "openai",
            "OPENAI_API_KEY": TEST_API_KEY,
            "OPENAI_BASE_URL": llm.base_url,
            "OPENAI_CHAT_MODEL": "fake-chat",
            "OPENAI_EMBEDDING_MODEL": "fake-embed",
            "OPENAI_MAX_RETRIES": "0",
        }
    return subprocess.run(
        [sys.executable, "-m", "persona.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
        timeout=120,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PERSONA_HOME with Maya's three-entry journal imported through the command itself."""
    folder = tmp_path_factory.mktemp("persona-home")
    (folder / "journal.md").write_text(JOURNAL, encoding="utf-8")
    result = persona(folder, "import", "journal.md", "--user", "maya")
    assert result.returncode == 0, result.stderr
    assert "3 entries ingested" in result.stdout
    return folder


def test_search_is_ranked_with_dates_and_reasons(home):
    result = persona(home, "search", "hiking in Sintra", "--user", "maya")
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith(" 1. 2024-03-01") and "Sintra" in first
    assert "why: " in result.stdout and "shares words with the question" in result.stdout


def test_search_json_with_filters(home):
    result = persona(home, "search", "garden", "--user", "maya", "--json", "--type", "goal", "--type", "Episode")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows and {r["type"] for r in rows} <= {"Goal", "Episode"}
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    assert all({"id", "score", "reason", "date", "text"} <= set(r) for r in rows)
    assert rows == sorted(rows, key=lambda r: -r["score"])
    april = json.loads(persona(home, "search", "garden", "-u", "maya", "--json", "--since", "2024-04-01").stdout)
    assert april and all(r["date"] >= "2024-04-01" for r in april if r["date"])
    before = json.loads(persona(home, "search", "garden", "-u", "maya", "--json", "--as-of", "2024-03-31").stdout)
    assert before and all(r["date"] < "2024-04-01" for r in before if r["date"])


def test_ask_answers_offline_with_citations(home):
    result = persona(home, "ask", "Who did I go hiking with?", "--user", "maya")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Offline answer") and "Sarah" in result.stdout
    assert "Sources:" in result.stdout
    as_json = json.loads(persona(home, "ask", "Who did I go hiking with?", "-u", "maya", "--json").stdout)
    assert as_json["offline"] is True and as_json["cited_ids"]
    assert [s["id"] for s in as_json["sources"]] == as_json["cited_ids"]


def test_chat_is_a_repl_with_history(home):
    result = persona(
        home, "chat", "--user", "maya", stdin="Who did I go hiking with?\n\nWhat did Tom and I talk about?\n"
    )
    assert result.returncode == 0, result.stderr
    answers = result.stdout.split("Offline answer")
    assert len(answers) == 3  # two questions, two answers; the empty line is skipped
    assert "Sintra" in answers[1] and "Porto" in answers[2]
    assert result.stderr.count("you> ") == 4  # one prompt per line read, and the last one meets the end of input
    stopped = persona(home, "chat", "--user", "maya", stdin="exit\nWho did I go hiking with?\n")
    assert stopped.returncode == 0 and "Offline answer" not in stopped.stdout


def test_chat_sends_the_conversation_so_far_to_the_model(tmp_path, fake_openai):
    (tmp_path / "journal.md").write_text(JOURNAL, encoding="utf-8")
    assert persona(tmp_path, "import", "journal.md", "-u", "maya", llm=fake_openai).returncode == 0
    fake_openai.queue_stream(["You hiked ", "with Sarah."])
    fake_openai.queue_stream(["In Sintra."])
    questions = "Who did I go hiking with?\nWhere was that?\n"
    result = persona(tmp_path, "chat", "-u", "maya", stdin=questions, llm=fake_openai)
    assert result.returncode == 0, result.stderr
    assert "You hiked with Sarah." in result.stdout and "In Sintra." in result.stdout
    second = fake_openai.chat_requests[-1].messages
    turns = [(m["role"], m["content"]) for m in second[1:-1]]
    assert turns[0] == ("user", "Who did I go hiking with?") and turns[1][0] == "assistant"
    assert "You hiked with Sarah." in turns[1][1] and second[-1]["content"].endswith("Question: Where was that?")


def test_context_shows_psyche_and_active_goals(home):
    result = persona(home, "context", "--user", "maya")
    assert result.returncode == 0, result.stderr
    assert "Psyche:" in result.stdout and "I value patience" in result.stdout
    assert "Active goals:" in result.stdout and "garden plan" in result.stdout
    data = json.loads(persona(home, "context", "--user", "maya", "--json").stdout)
    assert data["user_id"] == "maya"
    assert all(g["status"] == "active" for g in data["active_goals"]) and data["active_goals"]
    assert [e["date"] for e in data["recent_episodes"]] == sorted(
        (e["date"] for e in data["recent_episodes"]), reverse=True
    )


@pytest.mark.parametrize(
    "args",
    [
        ("search", "anything"),
        ("ask", "anything"),
        ("chat",),
        ("context",),
        ("stats",),
        ("export",),
        ("retry",),
    ],
    ids=lambda a: a[0],
)
def test_unknown_user_is_an_error_with_exit_code_2(home, args):
    result = persona(home, *args, "--user", "nobody", stdin="hello\n")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: no user 'nobody'") and "maya" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_bad_input_is_a_clear_error(home):
    result = persona(home, "search", "garden", "--user", "maya", "--since", "last week")
    assert result.returncode == 2 and "since" in result.stderr and "YYYY-MM-DD" in result.stderr
    result = persona(home, "search", "garden", "--user", "maya", "--type", "Dream")
    assert result.returncode == 2 and "unknown memory type 'Dream'" in result.stderr
    result = persona(home, "search", "garden", "--user", "Not A User!")
    assert result.returncode == 2 and "invalid user id" in result.stderr


def test_restoring_an_export_twice_reports_nothing_new(home, tmp_path):
    exported = tmp_path / "maya.json"
    assert persona(home, "export", "--user", "maya", "-o", str(exported)).returncode == 0
    first = persona(home, "import", str(exported), "--user", "maya-copy")
    assert first.returncode == 0 and "restored 3 entries (0 already there)" in first.stdout
    counts = persona(home, "stats", "--user", "maya-copy").stdout
    again = persona(home, "import", str(exported), "--user", "maya-copy")
    assert again.returncode == 0, again.stderr
    assert "restored 0 entries (3 already there), 0 nodes, 0 links" in again.stdout, again.stdout
    same = persona(home, "import", str(exported), "--user", "maya")
    assert "restored 0 entries (3 already there), 0 nodes, 0 links" in same.stdout, same.stdout
    assert persona(home, "stats", "--user", "maya-copy").stdout == counts  # and indeed nothing changed
