"""The Changes page (AppTest, SQLite, offline) and the graph's change links: a detected change is listed with its
sentence, can be confirmed and undone; SUPERSEDES and CHANGED_BY edges are drawn distinctly."""

from __future__ import annotations

import pytest

from persona.ingest import ingest_entry
from persona.llm.offline import OfflineProvider
from persona.models import GoalStatus, LinkType, NodeType
from persona.store.sqlite import SqliteStore
from persona.viz import LINK_COLOURS, render_graph
from tests.factories import day
from tests.test_app import button, page_test, run, texts

pytestmark = pytest.mark.usefixtures("app_home")  # sqlite_store is then the file the app opens


def _changed(store: SqliteStore, provider: OfflineProvider) -> None:
    for n, text in ((1, "I want to learn the cello. I love coffee."), (9, "I gave up on the cello. I quit coffee.")):
        assert ingest_entry(store, provider, "demo", text, occurred_at=day(n)).ok


def test_changes_page_lists_confirms_and_undoes(sqlite_store: SqliteStore, provider: OfflineProvider) -> None:
    _changed(sqlite_store, provider)
    at = run(page_test("changes"))
    shown = texts(at)
    assert "I love coffee → I quit coffee" in shown and "Learn the cello" in shown
    assert "dropped on" in shown and "changed your mind on" in shown
    [goal] = sqlite_store.list_nodes("demo", NodeType.GOAL)
    revision = goal.revisions[0].id
    at.button(key=f"chg_ok-{goal.id}-{revision}").click()
    run(at)
    assert sqlite_store.get_node("demo", goal.id).revisions[0].confirmed
    button(at, "Undo")  # there is one per change
    at.button(key=f"chg_undo-{goal.id}-{revision}").click()
    run(at)
    restored = sqlite_store.get_node("demo", goal.id)
    assert restored.status is GoalStatus.ACTIVE and restored.revisions == [] and restored.valid_until is None


def test_graph_draws_change_links_distinctly(sqlite_store: SqliteStore, provider: OfflineProvider) -> None:
    _changed(sqlite_store, provider)
    ids = [n.id for n in sqlite_store.list_many("demo", [NodeType.PSYCHE, NodeType.GOAL, NodeType.ENTRY], limit=20)]
    graph = sqlite_store.subgraph(
        "demo", center_ids=ids, depth=0, types=[NodeType.PSYCHE, NodeType.GOAL, NodeType.ENTRY]
    )
    kinds = {lk.type for lk in graph.links}
    assert {LinkType.SUPERSEDES, LinkType.CHANGED_BY} <= kinds
    html = render_graph(graph)
    for kind in (LinkType.SUPERSEDES, LinkType.CHANGED_BY):
        assert LINK_COLOURS[kind] in html and kind.value in html


def test_home_lists_what_changed_lately(sqlite_store: SqliteStore, provider: OfflineProvider) -> None:
    at = run(page_test("home"))
    assert "What changed lately" not in [h.value for h in at.subheader], "no section before anything changed"
    _changed(sqlite_store, provider)
    at = run(page_test("home"))
    assert "What changed lately" in [h.value for h in at.subheader]
    shown = texts(at)
    assert "I love coffee → I quit coffee" in shown and "changed your mind on" in shown and "dropped on" in shown


def test_changes_page_lists_a_name_match_and_undoes_it(sqlite_store: SqliteStore, provider: OfflineProvider) -> None:
    for n, text in ((1, "Lunch with Dr. Amir Haddad."), (4, "Amir called about the grant.")):
        assert ingest_entry(sqlite_store, provider, "demo", text, occurred_at=day(n)).ok
    at = run(page_test("changes"))
    assert "Names taken for someone you know" in [h.value for h in at.subheader]
    shown = texts(at)
    assert "“Amir” → Dr\\. Amir Haddad (first name)" in shown and "No changes yet" not in shown
    [amir] = [e for e in sqlite_store.list_nodes("demo", NodeType.ENTITY) if e.name == "Dr. Amir Haddad"]
    at.button(key=f"match_undo-{amir.matches[0]['id']}").click()
    run(at)
    names = {e.name for e in sqlite_store.list_nodes("demo", NodeType.ENTITY)}
    assert "Amir" in names and sqlite_store.get_node("demo", amir.id).matches == []
    assert "Names taken for someone you know" not in [h.value for h in run(page_test("changes")).subheader]
