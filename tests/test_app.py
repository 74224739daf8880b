"""The Streamlit app through AppTest: every page on the SQLite store with the offline provider, through ``app.py``
and run on its own, and each page's main action (ingest, graph HTML, chat with sources, edits that persist)."""

from __future__ import annotations

import json
import re
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from persona.config import get_settings
from persona.ingest import ingest_entry, ingest_many
from persona.llm.offline import OfflineProvider
from persona.models import Goal, GoalStatus, NodeType
from persona.store.sqlite import SqliteStore
from persona.viz import remote_references

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["home", "journal", "timeline", "graph", "chat", "memories", "settings"]
XSS = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
TIMEOUT = 30
ENTRIES = [
    (datetime(2026, 6, 1, 8, tzinfo=UTC), "Went running with Sarah in Lisbon. I love early mornings."),
    (datetime(2026, 6, 3, 19, tzinfo=UTC), "Dinner with Sarah and Tom. I want to run a half marathon by October."),
    (datetime(2026, 7, 2, 9, tzinfo=UTC), f"Read about gardens. {XSS} {IMG} Sarah called about the trip."),
]
RENDER_TIMES: dict[str, float] = {}
pytestmark = pytest.mark.usefixtures("app_home")  # sqlite_store is then the file the app opens


@pytest.fixture
def seeded(sqlite_store: SqliteStore, provider: OfflineProvider) -> SqliteStore:
    """Three entries for the user ``demo``: Sarah, a goal, and one carrying HTML that must stay text."""
    for when, text in ENTRIES:
        assert ingest_entry(sqlite_store, provider, "demo", text, occurred_at=when).ok
    return sqlite_store


def page_test(name: str) -> AppTest:
    """A page file run on its own, with no session state."""
    return AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=TIMEOUT)


def app_test() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)


def run(at: AppTest) -> AppTest:
    at.run(timeout=TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    return at


def markdown_texts(at: AppTest) -> str:
    """Every element whose text is rendered as markdown (markdown, captions, alerts), joined."""
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in [*at.info, *at.success, *at.warning, *at.error]]
    return "\n".join(str(p) for p in parts)


def texts(at: AppTest) -> str:
    """Everything readable on the page: markdown elements and ``st.text`` (shown verbatim, never as markup)."""
    return markdown_texts(at) + "\n" + "\n".join(t.value for t in at.text)


def button(at: AppTest, label: str):
    """The button with this label (form submit buttons have no key)."""
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r} among {[b.label for b in at.button]}"
    return found[0]


def graph_components(at: AppTest) -> list:
    """The clickable graph components on the page (AppTest shows a bidirectional component as an unknown element)."""
    return at.get("bidi_component")


def graph_payload(at: AppTest) -> dict:
    """The data the graph component draws (``persona.viz.graph_data``), as the browser receives it."""
    found = graph_components(at)
    assert found, "the graph component is missing"
    assert found[0].proto.component_name == "persona_graph"
    return json.loads(found[0].proto.json)


def real_nodes(payload: dict) -> list[dict]:
    """The memory nodes drawn (not the grey boxes that stand for what the cap left out)."""
    return [n for n in payload["nodes"] if n["ptype"] != "Group"]


# -- every page renders --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PAGES)
def test_page_renders_on_its_own_with_an_empty_store(app_home: Path, name: str) -> None:
    at = run(page_test(name))
    assert not at.error
    assert at.sidebar.selectbox, "a page run on its own draws the persona picker itself"


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_on_its_own_with_memories(seeded: SqliteStore, name: str) -> None:
    began = time.perf_counter()
    at = run(page_test(name))
    RENDER_TIMES[name] = time.perf_counter() - began
    assert not at.error, [e.value for e in at.error]
    assert XSS not in markdown_texts(at), "raw HTML from an entry reached a markdown element unescaped"


def test_app_routes_every_page_with_the_shared_sidebar(seeded: SqliteStore) -> None:
    at = run(app_test())
    assert at.title[0].value == "Home", "the home page is the default page"
    assert at.sidebar.selectbox(key="user_picker").value == "demo"
    sidebar = "\n".join(m.value for m in at.sidebar.markdown)
    assert "offline" in sidebar and "SQLite" in sidebar
    for name in PAGES[1:]:
        began = time.perf_counter()
        at.switch_page(f"pages/{name}.py")
        run(at)
        RENDER_TIMES[f"app → {name}"] = time.perf_counter() - began
        assert at.title[0].value == name.title()
        assert not at.error, [e.value for e in at.error]
        assert at.sidebar.selectbox(key="user_picker").value == "demo", "the sidebar is on every page"


def test_render_times_are_reported(seeded: SqliteStore) -> None:
    for name in PAGES:
        began = time.perf_counter()
        run(page_test(name))
        RENDER_TIMES.setdefault(name, time.perf_counter() - began)
    print("\nAppTest render times (s): " + ", ".join(f"{k} {v:.2f}" for k, v in RENDER_TIMES.items()))


# -- sidebar -------------------------------------------------------------------------------------------------------
def test_new_persona_refuses_a_bad_id_and_switches_to_a_good_one(sqlite_store: SqliteStore) -> None:
    at = run(app_test())
    at.sidebar.text_input(key="new_user_id").input("Bad Id!")
    button(at, "Create").click()
    run(at)
    assert any("invalid user id" in e.value for e in at.sidebar.error)
    assert [u.id for u in sqlite_store.list_users()] == []
    at.sidebar.text_input(key="new_user_id").input("maya")
    button(at, "Create").click()
    run(at)
    assert at.sidebar.selectbox(key="user_picker").value == "maya"
    assert "maya" in [u.id for u in sqlite_store.list_users()]


def test_unreachable_store_shows_a_message_not_a_traceback(app_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("PERSONA_STORE", "neo4j")
    monkeypatch.setenv("NEO4J_URI", f"bolt://127.0.0.1:{port}")
    get_settings.cache_clear()
    for at in (app_test(), page_test("graph")):
        run(at)
        assert any("cannot open its memory store" in e.value and str(port) in e.value for e in at.error)
        assert any("make neo4j-start" in i.value for i in at.info)
        assert not graph_components(at), "the page stopped after the message"


# -- home ----------------------------------------------------------------------------------------------------------
def test_home_shows_goals_recent_entries_and_saves_a_quick_entry(seeded: SqliteStore) -> None:
    at = run(page_test("home"))
    shown = texts(at)
    assert {"Active goals", "Recent entries", "Entries per week"} <= {h.value for h in at.subheader}
    assert "half marathon" in shown, "the active goal is listed"
    assert "Dinner with Sarah" in shown
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart"), "entries per week are charted"
    before = seeded.count_nodes("demo", NodeType.ENTRY)
    at.text_area(key="home_text").input("Quick coffee with Priya in Porto. I want to learn to sail by June.")
    button(at, "Save").click()
    run(at)
    assert seeded.count_nodes("demo", NodeType.ENTRY) == before + 1
    assert any("Saved:" in s.value for s in at.success)
    assert "learn to sail" in texts(at), "the new goal is listed at once"


def test_home_quick_entry_refuses_an_empty_text(seeded: SqliteStore) -> None:
    at = run(page_test("home"))
    before = seeded.count_nodes("demo", NodeType.ENTRY)
    at.text_area(key="home_text").input("   ")
    button(at, "Save").click()
    run(at)
    assert any("Not saved" in e.value for e in at.error)
    assert seeded.count_nodes("demo", NodeType.ENTRY) == before


# -- journal -------------------------------------------------------------------------------------------------------
def test_journal_ingests_an_entry_and_shows_its_memories(sqlite_store: SqliteStore) -> None:
    at = run(page_test("journal"))
    at.text_area(key="journal_text").input("Coffee with Sarah in Porto. I want to learn Portuguese by December.")
    button(at, "Save entry").click()
    run(at)
    shown = texts(at)
    assert "Extracted memories" in [h.value for h in at.subheader]
    assert "**Episode**" in shown and "**Goal**" in shown and "Sarah" in shown
    assert at.get("status"), "ingest shows its steps in st.status"
    assert sqlite_store.count_nodes("demo", NodeType.ENTRY) == 1
    assert sqlite_store.count_nodes("demo", NodeType.GOAL) >= 1


def test_journal_refuses_an_empty_entry_and_stores_nothing(sqlite_store: SqliteStore) -> None:
    at = run(page_test("journal"))
    at.text_area(key="journal_text").input("   \n  ")
    button(at, "Save entry").click()
    run(at)
    assert any("empty" in e.value for e in at.error)
    assert sqlite_store.count_nodes("demo", NodeType.ENTRY) == 0


def test_journal_lists_failed_entries_with_a_retry(sqlite_store: SqliteStore, provider: OfflineProvider) -> None:
    from persona.models import Entry, EntryStatus

    entry = sqlite_store.save_entry(Entry(user_id="demo", text="Met Sarah at the market.", occurred_at=ENTRIES[0][0]))
    sqlite_store.set_entry_status("demo", entry.id, EntryStatus.FAILED, error="ProviderError: timeout")
    at = run(page_test("journal"))
    assert "timeout" in texts(at)
    at.button(key=f"retry-{entry.id}").click()
    run(at)
    assert sqlite_store.get_node("demo", entry.id).status is EntryStatus.DONE


def test_demo_persona_loads_from_the_journal(sqlite_store: SqliteStore) -> None:
    at = run(page_test("journal"))
    at.button(key="journal_demo").click()
    run(at)
    assert sqlite_store.count_nodes("demo", NodeType.EPISODE) > 30
    assert "Loaded the demo persona" in texts(at)


def test_journal_imports_a_markdown_file_with_progress(sqlite_store: SqliteStore) -> None:
    at = run(page_test("journal"))
    journal = b"# My journal\n\n## 2026-05-01\nMet Sarah in Porto.\n\n## 2026-05-02\nI want to learn to sail.\n"
    at.get("file_uploader")[0].upload("journal.md", journal, "text/markdown")
    run(at)
    at.button(key="journal_import").click()
    run(at)
    assert "Imported 2 entries: 2 new" in texts(at)
    assert sqlite_store.count_nodes("demo", NodeType.ENTRY) == 2


def test_journal_refuses_a_bad_file_and_stores_nothing(sqlite_store: SqliteStore) -> None:
    at = run(page_test("journal"))
    at.get("file_uploader")[0].upload("journal.jsonl", b'{"text": "no date"}\n', "application/json")
    run(at)
    at.button(key="journal_import").click()
    run(at)
    assert any("was not imported" in e.value and "occurred\\_at" in e.value for e in at.error)  # escaped markdown
    assert sqlite_store.count_nodes("demo", NodeType.ENTRY) == 0


# -- graph ---------------------------------------------------------------------------------------------------------
def test_graph_component_holds_the_nodes_escaped(seeded: SqliteStore) -> None:
    at = run(page_test("graph"))
    component = graph_components(at)[0].proto
    payload = graph_payload(at)
    ids = {n["id"] for n in payload["nodes"]}
    episodes = seeded.list_nodes("demo", NodeType.EPISODE)
    assert {e.id for e in episodes} <= ids
    assert any(n["label"] == "Sarah" for n in payload["nodes"])
    tips = json.dumps([n["tip"] for n in payload["nodes"]])
    assert XSS not in tips and IMG not in tips, "tooltips reach the page escaped"
    assert any("&lt;script" in n["tip"] for n in payload["nodes"])
    assert all(n["font"]["multi"] is False for n in payload["nodes"]), "labels are canvas text, never parsed"
    assert "vis.Network" in component.js_content and "export default function" in component.js_content
    assert remote_references(component.js_content + component.css_content) == [], "nothing loads from the network"


def test_graph_search_and_focus_centre_the_graph(seeded: SqliteStore) -> None:
    at = run(page_test("graph"))
    at.text_input(key="graph_search").input("marathon")
    run(at)
    assert "matches of the search" in texts(at)
    assert graph_payload(at)["zoom_to"], "the graph zooms to the first match"
    sarah = next(e for e in seeded.list_nodes("demo", NodeType.ENTITY) if e.name == "Sarah")
    at.text_input(key="graph_search").input("")
    at.selectbox(key="graph_focus").select(sarah.id)
    run(at)
    assert "Centred on the focused node" in texts(at)
    assert "MENTIONS" in texts(at), "the details panel lists the focused node's links"
    assert graph_payload(at)["focus"] == sarah.id


def test_graph_click_opens_details_and_double_click_adds_neighbours(seeded: SqliteStore) -> None:
    """What the component reports (the browser suite clicks for real) reaches the details panel and the view."""
    goal = seeded.list_nodes("demo", NodeType.GOAL)[0]
    at = page_test("graph")
    at.session_state["graph_limit"] = 50
    at.session_state["graph_types"] = [NodeType.EPISODE]
    run(at)
    drawn = {n["id"] for n in real_nodes(graph_payload(at))}
    assert goal.id not in drawn
    at.session_state["graph_selected"] = goal.id
    run(at)
    assert goal.title in texts(at), "the clicked node's details open beside the graph"
    episode = seeded.list_nodes("demo", NodeType.EPISODE)[-1]
    at.session_state["graph_expanded"] = [episode.id]
    at.session_state["graph_types"] = [NodeType.EPISODE, NodeType.ENTITY]
    run(at)
    payload = graph_payload(at)
    neighbours = {lk.target_id for lk in seeded.neighbours("demo", [episode.id], link_types=None)}
    assert neighbours & {n["id"] for n in real_nodes(payload)}, "a double-click adds the node's neighbours"
    assert "Expanded 1 node" in texts(at)


def test_graph_forgets_a_focus_that_was_deleted(seeded: SqliteStore) -> None:
    goal = seeded.list_nodes("demo", NodeType.GOAL)[0]
    at = page_test("graph")
    at.session_state["graph_focus"] = goal.id
    run(at)
    assert "Centred on the focused node" in texts(at)
    seeded.delete_node("demo", goal.id)
    run(at)
    assert at.selectbox(key="graph_focus").value is None
    assert graph_components(at), "the default view is drawn instead"


def test_graph_groups_what_the_cap_left_out_and_says_so(sqlite_store: SqliteStore, provider: OfflineProvider) -> None:
    people = ["Sarah", "Tom", "Priya", "Jonas", "Helena", "Ada", "Rui", "Marta", "Carla", "Omar"]
    items = [
        (f"Cooked dinner with {people[i % 10]} in Porto, day {i}. I want to visit Lisbon by May.", ENTRIES[0][0])
        for i in range(40)
    ]
    ingest_many(sqlite_store, provider, "demo", items)
    at = run(page_test("graph"))
    assert graph_payload(at)["notes"] == [], "under the default cap everything is drawn"
    at.slider(key="graph_limit").set_value(50)
    run(at)
    payload = graph_payload(at)
    groups = [n for n in payload["nodes"] if n["ptype"] == "Group"]
    total = sum(sqlite_store.count_nodes("demo", t) for t in (NodeType.EPISODE, NodeType.PSYCHE, NodeType.GOAL))
    total += sqlite_store.count_nodes("demo", NodeType.ENTITY)
    assert len(real_nodes(payload)) == 50
    assert sum(g["count"] for g in groups) == total - 50, "every node left out is counted in a grey box"
    assert any("grouped into" in note for note in payload["notes"])


# -- chat ----------------------------------------------------------------------------------------------------------
def test_chat_answers_offline_with_cited_sources(seeded: SqliteStore) -> None:
    at = run(page_test("chat"))
    assert any("Offline" in i.value for i in at.info)
    at.chat_input[0].set_value("What did I do with Sarah?")
    run(at)
    shown = texts(at)
    assert "Offline answer" in shown
    assert "Sources" in " ".join(e.label for e in at.expander)
    assert "Why:" in shown
    history = at.session_state["chat_history"]["demo"]
    assert history[-1]["cited"], "the offline answer cites memory ids"
    assert set(history[-1]["cited"]) <= {s["id"] for s in history[-1]["sources"]}


def test_chat_offline_answer_is_one_item_per_entry_and_a_follow_up_uses_the_earlier_turn(seeded: SqliteStore) -> None:
    at = run(page_test("chat"))
    at.chat_input[0].set_value("What did I do with Sarah?")
    run(at)
    first = at.session_state["chat_history"]["demo"][-1]
    keys = [item["key"] for item in first["items"]]
    assert keys and len(keys) == len(set(keys)), "one item per entry"
    assert all(item["why"] for item in first["items"])
    assert all(item["date"] for item in first["items"] if item["key"] not in item["ids"]), "an entry's item is dated"
    assert "**" in "\n".join(m.value for m in at.markdown), "the matching sentence is in bold"
    at.chat_input[0].set_value("and after that?")
    run(at)
    asked = at.session_state["chat_history"]["demo"][-2]
    follow = at.session_state["chat_history"]["demo"][-1]
    assert asked["search"] == "What did I do with Sarah? and after that?"
    assert follow["note"].startswith("after ")
    latest = max(datetime.fromisoformat(w) for w in first["when"])
    assert all(datetime.fromisoformat(w) > latest for w in follow["when"]), "only what came after the first answer"


def test_chat_show_in_graph_highlights_the_sources(seeded: SqliteStore) -> None:
    at = run(app_test())
    at.switch_page("pages/chat.py")
    run(at)
    at.chat_input[0].set_value("Sarah")
    run(at)
    at.button(key="chat-graph-1").click()
    run(at)
    assert at.title[0].value == "Graph"
    highlighted = at.session_state["highlight_ids"]
    assert highlighted
    payload = graph_payload(at)
    assert payload["highlighted"] is True
    assert any(n.get("highlighted") for n in payload["nodes"]), "the sources are drawn with a red border"


# -- timeline ------------------------------------------------------------------------------------------------------
def test_timeline_groups_by_month_and_walks_the_chain(seeded: SqliteStore) -> None:
    at = run(page_test("timeline"))
    assert {"June 2026", "July 2026"} <= {h.value for h in at.subheader}
    chain = seeded.chain("demo")
    at.button(key=f"ep-{chain[0]}-focus").click()
    run(at)
    assert "Following the chain" in [h.value for h in at.subheader]
    at.button(key="focused-next").click()
    run(at)
    assert at.session_state["timeline_focus"] == chain[1]
    at.button(key="focused-prev").click()
    run(at)
    assert at.session_state["timeline_focus"] == chain[0]
    assert any(e.label == "Entry text" for e in at.expander)
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart"), "the density chart is drawn"


def test_timeline_band_thread_and_jump_to_a_date(seeded: SqliteStore) -> None:
    at = run(page_test("timeline"))
    charts = at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    assert charts, "the band is drawn above the list"
    assert '"Goals"' in str(charts[0].proto) or "Goals" in str(charts[0].proto), "goal markers have their lane"
    tom = next(e for e in seeded.list_nodes("demo", NodeType.ENTITY) if e.name == "Tom")
    at.selectbox(key="timeline_thread-demo").select(tom.id)
    run(at)
    shown = [b.key for b in at.button if b.key and b.key.endswith("-focus") and b.key.startswith("ep-")]
    assert len(shown) == 1, "only the episode that mentions Tom is listed"
    assert "1 of 3 episodes in this thread" in texts(at)
    at.date_input(key="timeline_jump-demo").set_value(datetime(2026, 7, 1).date())
    run(at)
    jumped = seeded.get_nodes("demo", [at.session_state["timeline_focus"]])[0]
    assert jumped.occurred_at.date() == ENTRIES[2][0].date(), "the nearest episode (2 July) opens at the top"


def test_timeline_show_in_graph_focuses_the_episode(seeded: SqliteStore) -> None:
    at = run(app_test())
    at.switch_page("pages/timeline.py")
    run(at)
    episode = seeded.chain("demo")[-1]
    at.button(key=f"ep-{episode}-graph").click()
    run(at)
    assert at.title[0].value == "Graph"
    assert at.selectbox(key="graph_focus").value == episode
    assert "Centred on the focused node" in texts(at)


def test_switching_persona_drops_the_other_personas_highlights(seeded: SqliteStore) -> None:
    seeded.ensure_user("maya")
    at = run(app_test())
    at.session_state["highlight_ids"] = [seeded.chain("demo")[0]]
    at.sidebar.selectbox(key="user_picker").select("maya")
    run(at)
    assert "highlight_ids" not in at.session_state
    assert "Nothing here yet" in texts(at)  # the Home page of a persona with no entries


# -- memories ------------------------------------------------------------------------------------------------------
def test_memories_goal_status_change_persists(seeded: SqliteStore) -> None:
    goal = seeded.list_nodes("demo", NodeType.GOAL)[0]
    assert isinstance(goal, Goal) and goal.status is GoalStatus.ACTIVE
    at = run(page_test("memories"))
    at.selectbox(key="mem_pick").select(goal.id)
    run(at)
    at.selectbox(key=f"mem_goal-{goal.id}").select("done")
    button(at, "Save changes").click()
    run(at)
    assert seeded.get_node("demo", goal.id).status is GoalStatus.DONE
    assert "Saved: status" in texts(at)


def test_memories_edit_text_and_delete_with_confirmation(seeded: SqliteStore) -> None:
    goal = seeded.list_nodes("demo", NodeType.GOAL)[0]
    at = run(page_test("memories"))
    at.selectbox(key="mem_pick").select(goal.id)
    run(at)
    at.text_area(key=f"mem_text-{goal.id}").input("Run the Lisbon half marathon")
    button(at, "Save changes").click()
    run(at)
    assert seeded.get_node("demo", goal.id).text == "Run the Lisbon half marathon"
    assert at.button(key=f"mem_del-{goal.id}").disabled, "delete waits for the confirmation"
    at.checkbox(key=f"mem_del_ok-{goal.id}").check()
    run(at)
    at.button(key=f"mem_del-{goal.id}").click()
    run(at)
    assert seeded.get_nodes("demo", [goal.id]) == []


def test_memories_filters_and_entity_merge(seeded: SqliteStore) -> None:
    at = run(page_test("memories"))
    at.text_input(key="mem_contains").input("marathon")
    run(at)
    counts = [c.value for c in at.caption if re.fullmatch(r"\d+ memories", c.value)]
    assert counts and int(counts[0].split()[0]) >= 1, [c.value for c in at.caption]
    assert not [i for i in at.info if "No memories match" in i.value]
    shown = at.dataframe[0].value
    assert len(shown) == int(counts[0].split()[0])
    assert all("marathon" in " ".join(map(str, row)).lower() for row in shown.itertuples(index=False))
    at.text_input(key="mem_contains").input("no-such-word-anywhere")
    run(at)
    assert [i for i in at.info if "No memories match" in i.value]
    assert not [c for c in at.caption if re.fullmatch(r"\d+ memories", c.value)]
    at.text_input(key="mem_contains").input("")
    run(at)
    names = {e.name: e.id for e in seeded.list_nodes("demo", NodeType.ENTITY)}
    at.selectbox(key="mem_keep").select(names["Sarah"])
    at.selectbox(key="mem_drop").select(names["Tom"])
    run(at)
    at.button(key="mem_merge").click()
    run(at)
    assert seeded.get_nodes("demo", [names["Tom"]]) == []
    assert "Tom" in seeded.get_node("demo", names["Sarah"]).aliases


# -- settings ------------------------------------------------------------------------------------------------------
def test_settings_restores_an_export(seeded: SqliteStore) -> None:
    export = json.dumps(seeded.export_user("demo")).encode()
    seeded.delete_user("demo")
    at = run(page_test("settings"))
    at.get("file_uploader")[0].upload("persona-demo.json", export, "application/json")
    run(at)
    at.button(key="settings_import").click()
    run(at)
    assert "Restored 3 entries" in texts(at)
    assert seeded.count_nodes("demo", NodeType.EPISODE) == 3
    assert len(seeded.chain("demo")) == 3


@pytest.mark.parametrize(
    "case", ["json-deep-nesting", "json-huge-integer", "export-nodes-number", "dayone-kiritimati-9999"]
)
def test_settings_refuses_a_hostile_file_with_a_message_and_writes_nothing(seeded: SqliteStore, case: str) -> None:
    from tests.test_reliability_import_fuzz import HOSTILE_FILES

    name, raw, expected = HOSTILE_FILES[case]
    before = seeded.stats()
    at = run(page_test("settings"))  # run() also fails on any exception the page lets through
    at.get("file_uploader")[0].upload(name, raw, "application/json")
    run(at)
    at.button(key="settings_import").click()
    run(at)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "was not imported" in errors[0] and expected.lower() in errors[0].lower(), errors
    assert seeded.stats() == before


def test_settings_shows_counts_and_deletes_the_persona_after_typing_its_id(seeded: SqliteStore) -> None:
    at = run(page_test("settings"))
    assert any(m.label == "Episode" and m.value == "3" for m in at.metric)
    assert at.get("download_button"), "export is offered"
    assert at.button(key="settings_delete").disabled
    at.text_input(key="settings_delete-demo").input("demo")
    run(at)
    at.button(key="settings_delete").click()
    run(at)
    assert seeded.count_nodes("demo", NodeType.EPISODE) == 0
    assert "Deleted persona demo" in texts(at)
