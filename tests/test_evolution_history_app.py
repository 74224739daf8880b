"""The app side of memory changes (AppTest, offline, on both stores): the Timeline marks a change at the date of the
entry that caused it and can show the changes only; the Memories page shows a goal's or belief's history and
confirms, undoes (exactly) or corrects a detected change from there, refusing bad input with a message."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from persona.config import get_settings
from persona.ingest import ingest_entry
from persona.llm.offline import OfflineProvider
from persona.models import Goal, GoalStatus, NodeType, Psyche
from persona.revisions import changes_of, evolve, undo_change
from persona.store.base import Store
from persona.views import safe_markdown
from tests.factories import day
from tests.test_app import ROOT, markdown_texts, page_test, run, texts

JOURNAL = [
    (1, "I want to learn the cello. I love coffee."),
    (5, "Lunch with Tom at the harbour, we talked about boats."),
    (9, "I have given up on the cello. I quit coffee, it's green tea now."),
]

SAID = safe_markdown("I have given up on the cello.")  # as the page shows the sentence (markdown made inert)


@pytest.fixture(params=["sqlite", "neo4j"])
def app_store(
    request: pytest.FixtureRequest, app_home: Path, monkeypatch: pytest.MonkeyPatch, provider: OfflineProvider
) -> Iterator[tuple[Store, str]]:
    """The store the app opens, and its persona: the SQLite file in ``app_home`` (persona "demo"), or the session's
    Neo4j with a fresh persona (the server is shared between tests)."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_store"), "demo"
        return
    server = request.getfixturevalue("neo4j_server")
    user = f"u-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("PERSONA_STORE", "neo4j")
    monkeypatch.setenv("NEO4J_URI", server.uri)
    monkeypatch.setenv("PERSONA_USER", user)
    get_settings.cache_clear()
    store = request.getfixturevalue("neo4j_store_factory")(embedder_override=provider.embedder)
    yield store, user
    store.delete_user(user)


def _journal(store: Store, provider: OfflineProvider, user: str) -> None:
    for n, text in JOURNAL:
        assert ingest_entry(store, provider, user, text, occurred_at=day(n)).ok


def _memories(store: Store, user: str) -> dict[str, Any]:
    nodes = store.list_many(user, [NodeType.GOAL, NodeType.PSYCHE], limit=100)
    return {(n.title if isinstance(n, Goal) else n.text): n for n in nodes}  # type: ignore[union-attr]


def _export(store: Store, user: str) -> dict[str, Any]:
    data = store.export_user(user)
    return data | {"nodes": sorted(data["nodes"], key=lambda n: n["id"])}


def _change_lines(at: AppTest) -> list[str]:
    return [m.value for m in at.main.markdown if "-badge[" in m.value]


def _band(at: AppTest) -> str:
    """The timeline band's chart (its spec and data) as text."""
    return str((at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart"))[0].proto)


# -- timeline ------------------------------------------------------------------------------------------------------
def test_timeline_marks_the_changes_at_the_date_of_the_causing_entry(app_store, provider: OfflineProvider) -> None:
    store, user = app_store
    _journal(store, provider, user)
    at = run(page_test("timeline"))
    at.toggle(key="timeline_newest").set_value(False)
    run(at)
    changes = _change_lines(at)
    assert len(changes) == 2, changes
    assert any(":red-badge[Goal dropped]" in c and "Learn the cello" in c for c in changes)
    assert any(":violet-badge[Changed your mind]" in c and "I love coffee → I quit coffee" in c for c in changes)
    assert all(f"{day(9):%a %d %b %Y}" in c for c in changes), "a change is dated by the entry that caused it"
    assert "You wrote: I have given up on the cello" in texts(at)
    # In time order the changes follow the episode of the entry that caused them, after the harbour lunch.
    order = [m.value for m in at.markdown if "badge[" in m.value or m.value.startswith("**")]
    harbour = next(i for i, v in enumerate(order) if "harbour" in v.lower() or "Tom" in v)
    first_change = next(i for i, v in enumerate(order) if "-badge[" in v)
    assert harbour < first_change


def test_timeline_changes_only_hides_the_ordinary_episodes(app_store, provider: OfflineProvider) -> None:
    store, user = app_store
    _journal(store, provider, user)
    at = run(page_test("timeline"))
    assert "Tom" in markdown_texts(at) and "harbour" in _band(at) and "Goal dropped: Learn the cello" in _band(at)
    at.toggle(key="timeline_changes_only").set_value(True)
    run(at)
    shown = markdown_texts(at)
    assert len(_change_lines(at)) == 2
    assert "Tom" not in shown and "harbour" not in shown.lower(), "an ordinary episode is still shown"
    assert not [b for b in at.button if b.key and b.key.startswith("ep-")], "episode blocks are still drawn"
    band = _band(at)
    assert "Goal dropped: Learn the cello" in band and "harbour" not in band, "the band shows the changes only"


def test_timeline_changes_only_says_so_when_nothing_changed(app_store, provider: OfflineProvider) -> None:
    store, user = app_store
    assert ingest_entry(store, provider, user, JOURNAL[1][1], occurred_at=day(5)).ok
    at = run(page_test("timeline"))
    at.toggle(key="timeline_changes_only").set_value(True)
    run(at)
    assert "No changes in this range." in [c.value for c in at.caption]
    assert "Tom" not in markdown_texts(at)


# -- memories: history, confirm, undo, correct ------------------------------------------------------------------------
def _memories_page(store: Store, user: str, memory_id: str) -> AppTest:
    at = run(page_test("memories"))
    at.selectbox(key="mem_pick").set_value(memory_id)
    return run(at)


def test_memories_history_shows_the_change_and_undo_from_there_restores_exactly(
    app_store, provider: OfflineProvider
) -> None:
    store, user = app_store
    results = [ingest_entry(store, provider, user, text, occurred_at=day(n)) for n, text in JOURNAL]
    for node, revision in changes_of(store, user):  # the journal as it was before the last entry's changes
        undo_change(store, user, node.id, revision.id)
    before = _export(store, user)
    assert len(evolve(store, provider.embedder, results[-1].entry, results[-1].batch)) == 2  # the same decisions
    assert _export(store, user) != before
    cello = _memories(store, user)["Learn the cello"]
    revision = cello.revisions[-1]

    at = _memories_page(store, user, cello.id)
    shown = texts(at)
    table = at.dataframe[0].value.set_index("id")
    assert table.loc[cello.id, "until"] == day(9), "the table says when the goal stopped being true"
    still_true = _memories(store, user)["I quit coffee, it's green tea now"]
    assert pd.isna(table.loc[still_true.id, "until"]), "a memory still true has no end"
    assert f"True from **{day(1):%Y-%m-%d}**, no longer true since {day(9):%Y-%m-%d}" in shown
    assert any(":red-badge[Goal dropped]" in line and "Learn the cello" in line for line in _change_lines(at))
    assert f"You wrote: {SAID} · not confirmed yet" in shown
    at.button(key=f"hist_undo-{revision.id}").click()
    run(at)
    assert "Undone: the memory is as it was." in [s.value for s in at.success]
    assert "No changes yet" in texts(at) and "still true" in texts(at)

    coffee = _memories(store, user)["I love coffee"]
    at.selectbox(key="mem_pick").set_value(coffee.id)
    run(at)
    assert any("I love coffee → I quit coffee" in line for line in _change_lines(at))
    assert "Replaced by: Psyche" in texts(at) and "I quit coffee" in texts(at)
    assert not [b for b in at.button if b.key and b.key.startswith("hist_edit-")], "a belief change is not edited"
    at.button(key=f"hist_undo-{coffee.revisions[-1].id}").click()
    run(at)
    assert _export(store, user) == before, "undo from the Memories page did not restore the store exactly"


def test_memories_history_confirms_and_corrects_a_goal_change_and_undo_still_restores(
    app_store, provider: OfflineProvider
) -> None:
    store, user = app_store
    results = [ingest_entry(store, provider, user, text, occurred_at=day(n)) for n, text in JOURNAL]
    cello = _memories(store, user)["Learn the cello"]
    undo_change(store, user, cello.id, cello.revisions[-1].id)
    before = _export(store, user)
    evolve(store, provider.embedder, results[-1].entry, results[-1].batch)
    revision = _memories(store, user)["Learn the cello"].revisions[-1]

    at = _memories_page(store, user, cello.id)
    at.button(key=f"hist_ok-{revision.id}").click()
    run(at)
    assert store.get_node(user, cello.id).revisions[-1].confirmed
    assert f"You wrote: {SAID} · confirmed" in texts(at)

    at.selectbox(key=f"hist_change-{revision.id}").set_value("done")
    at.button(key=f"hist_edit-{revision.id}").click()
    run(at)
    corrected = store.get_node(user, cello.id)
    assert isinstance(corrected, Goal) and corrected.status is GoalStatus.DONE and corrected.valid_until == day(9)
    assert any(":green-badge[Goal done]" in line for line in _change_lines(at)) and "corrected" in texts(at)

    at.button(key=f"hist_undo-{revision.id}").click()
    run(at)
    assert _export(store, user) == before, "undo after a correction did not restore the goal exactly"


def test_memories_history_refuses_a_bad_correction_and_changes_nothing(app_store, provider: OfflineProvider) -> None:
    store, user = app_store
    _journal(store, provider, user)
    cello = _memories(store, user)["Learn the cello"]
    revision = cello.revisions[-1]
    at = _memories_page(store, user, cello.id)
    before = _export(store, user)
    at.selectbox(key=f"hist_change-{revision.id}").set_value("postponed")  # postponed, but no new due date
    at.button(key=f"hist_edit-{revision.id}").click()
    run(at)
    assert any("Nothing changed" in e.value and "due date" in e.value for e in at.error), [e.value for e in at.error]
    assert _export(store, user) == before

    undo_change(store, user, cello.id, revision.id)  # undone meanwhile, e.g. in another tab
    undone = _export(store, user)
    at.button(key=f"hist_undo-{revision.id}").click()  # the page still shows the old change's button
    run(at)
    assert any("has no change" in e.value for e in at.error), [e.value for e in at.error]
    assert _export(store, user) == undone


def test_history_is_only_for_goals_and_psyche(app_store, provider: OfflineProvider) -> None:
    store, user = app_store
    _journal(store, provider, user)
    episode = store.list_nodes(user, NodeType.EPISODE, limit=1)[0]
    at = _memories_page(store, user, episode.id)
    assert "**History**" not in [m.value for m in at.markdown]
    psyche = next(n for n in _memories(store, user).values() if isinstance(n, Psyche) and n.current)
    at.selectbox(key="mem_pick").set_value(psyche.id)
    run(at)
    assert "**History**" in [m.value for m in at.markdown]


@pytest.mark.parametrize("page", ["timeline", "changes"])
def test_show_its_history_opens_the_memory_on_the_memories_page(
    app_home: Path, sqlite_store, provider: OfflineProvider, page: str
) -> None:
    _journal(sqlite_store, provider, "demo")
    cello = _memories(sqlite_store, "demo")["Learn the cello"]
    revision = cello.revisions[-1].id
    at = run(AppTest.from_file(str(ROOT / "app.py"), default_timeout=30))
    at.switch_page(f"pages/{page}.py")
    run(at)
    key = f"chg-{revision}-history" if page == "timeline" else f"chg_hist-{cello.id}-{revision}"
    at.button(key=key).click()
    run(at)
    assert at.title[0].value == "Memories"
    assert at.selectbox(key="mem_pick").value == cello.id
    assert any(":red-badge[Goal dropped]" in line for line in _change_lines(at))
