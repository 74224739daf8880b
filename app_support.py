"""What every page of the app shares: the clients (ONE cached factory), the current persona, the sidebar, and a few
render helpers. Streamlit lives here and in ``pages/``; ``persona/`` never imports it.

Every page starts with ``store, provider, user = app_support.context()``, so it also works run on its own
(``streamlit run pages/graph.py`` or ``AppTest.from_file``): it then draws the sidebar itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from streamlit.errors import StreamlitAPIException
from streamlit.navigation.page import StreamlitPage
from streamlit.runtime.uploaded_file_manager import UploadedFile

from persona.actions import create_persona, personas
from persona.config import get_settings
from persona.demo import load_demo
from persona.errors import PersonaError, StoreUnavailableError, ValidationError
from persona.llm.base import Provider
from persona.models import check_user_id
from persona.reembed import reembed, stale_embedders, vector_search_notice
from persona.runtime import make_provider, open_store
from persona.store.base import Store
from persona.views import MEMORY_FOCUS_KEY, MemoryCard, import_file, safe_markdown
from persona.viz import graph_component_css, graph_component_js

USER_KEY = "user_id"
PICKER_KEY = "user_picker"
SHELL_KEY = "_app_shell"
HIGHLIGHT_KEY = "highlight_ids"
GRAPH_FOCUS_REQUEST = "graph_focus_request"
DEMO_USER = "demo"
TYPE_ICONS = {
    "Episode": ":material/event:",
    "Psyche": ":material/psychology:",
    "Goal": ":material/flag:",
    "Entity": ":material/label:",
    "Entry": ":material/description:",
    "Passage": ":material/format_quote:",
}


# The clickable graph: registered once per process; its JS carries vis-network, so nothing loads from the network.
_graph_component = st.components.v2.component(
    "persona_graph", html="", css=graph_component_css(), js=graph_component_js()
)


def graph_canvas(data: dict[str, object], *, key: str, on_select: Callable[[], None]) -> tuple[str | None, str | None]:
    """Draw the graph built by ``persona.viz.graph_data``; returns (the node last clicked, a node double-clicked
    in this run). ``on_select`` runs when a click selects another node."""
    result = _graph_component(
        data=data, key=key, default={"selected": None}, on_selected_change=on_select, on_expand_change=lambda: None
    )
    return result.get("selected"), result.get("expand")


@dataclass(frozen=True)
class Clients:
    """The store and the provider, shared by every session of this process."""

    store: Store
    provider: Provider


@st.cache_resource(show_spinner="Opening your memory store…")
def _open_clients() -> Clients:
    # One factory for the whole process: a store holds a connection (SQLite file, Neo4j driver) worth reusing.
    # A failure raises and is not cached, so the next run tries again.
    provider = make_provider()
    return Clients(store=open_store(provider, warm_up=True), provider=provider)


def clients() -> Clients:
    """The cached clients, or a clear message (not a traceback) and a stopped run when the store is unreachable."""
    try:
        opened = _open_clients()
    except PersonaError as exc:
        show_store_error(exc)
        st.stop()
        raise  # st.stop() raises; this keeps type checkers and readers sure nothing runs past it
    backup = opened.store.backup_path
    if backup is not None and not st.session_state.get("_backup_announced"):
        st.session_state["_backup_announced"] = True
        st.toast(f"Your journal was brought up to date; a copy as it was is at {backup}", icon=":material/backup:")
    return opened


def show_store_error(exc: Exception) -> None:
    """An error box saying what failed and what to do about it."""
    settings = get_settings()
    st.error(f"Persona cannot open its memory store: {exc}", icon=":material/cloud_off:")
    if settings.persona_store == "neo4j":
        st.info(
            f"Start Neo4j at {settings.neo4j_uri} (`make neo4j-start`, or `docker compose up -d neo4j`), check "
            "NEO4J_PASSWORD in `.env`, or use the embedded store with `PERSONA_STORE=sqlite`. Then reload the page."
        )
    else:
        st.info(f"Check that the data folder {settings.home} exists and is writable (PERSONA_HOME), then reload.")


def default_user() -> str:
    """The persona the app opens with: ``PERSONA_USER`` from the settings, or ``demo`` when that is not valid."""
    try:
        return check_user_id(get_settings().persona_user)
    except ValidationError:
        return DEMO_USER


def current_user() -> str:
    """The persona this session looks at."""
    return st.session_state.get(USER_KEY) or default_user()


PER_PERSONA_KEYS = (
    HIGHLIGHT_KEY,
    GRAPH_FOCUS_REQUEST,
    "graph_focus",
    "graph_selected",
    "graph_expanded",
    "timeline_focus",
    "journal_last",
)
"""Session state that points at one persona's nodes: dropped when the persona changes."""


def set_user(user_id: str) -> None:
    """Switch the session to another persona (the picker follows on the next run)."""
    if st.session_state.get(USER_KEY, default_user()) != user_id:
        for key in PER_PERSONA_KEYS:
            st.session_state.pop(key, None)
    st.session_state[USER_KEY] = user_id


def context() -> tuple[Store, Provider, str]:
    """Store, provider and current user for a page; draws the sidebar when the page runs without ``app.py``."""
    shared = clients()
    if not st.session_state.get(SHELL_KEY):
        render_sidebar(shared)
    show_flash()
    if notice := vector_search_notice(shared.store):  # the store's vectors come from another embedder
        st.warning(safe_markdown(notice), icon=":material/manage_search:")
    return shared.store, shared.provider, current_user()


# -- sidebar ---------------------------------------------------------------------------------------------------
def render_sidebar(shared: Clients) -> None:
    """The persona picker, "new persona", and the store and provider badges."""
    with st.sidebar:
        _user_picker(shared.store)
        _new_persona(shared.store)
        st.divider()
        st.caption("Memory store")
        st.badge(safe_markdown(shared.store.description or "store"), icon=":material/database:", color="blue")
        st.caption("Language model")
        if shared.provider.offline:
            st.badge("offline", icon=":material/cloud_off:", color="orange")
            st.caption(
                f"{safe_markdown(shared.provider.describe())}: rule-based extraction and extractive answers. "
                "Set OPENAI\\_API\\_KEY or OPENAI\\_BASE\\_URL to use a model."
            )
        else:
            st.badge(safe_markdown(shared.provider.describe()), icon=":material/smart_toy:", color="green")


def _user_picker(store: Store) -> None:
    """The persona picker: every stored persona, plus the current one even before it holds anything."""
    user = current_user()
    options = sorted({*personas(store), user})
    # The picker's own state follows the session's user, which other code may have switched (demo, new persona).
    if st.session_state.get(PICKER_KEY) != user:
        st.session_state[PICKER_KEY] = user
    st.selectbox("Persona", options, key=PICKER_KEY, on_change=_picked)


def _picked() -> None:
    """Callback: the picker changed, so the session follows it."""
    set_user(st.session_state[PICKER_KEY])


def _new_persona(store: Store) -> None:
    """A small form that creates a persona with a validated id."""
    with st.expander("New persona", icon=":material/person_add:"):
        with st.form("new_persona", clear_on_submit=False, border=False):
            st.text_input("Id", key="new_user_id", placeholder="e.g. maya", help="lowercase letters, digits, - or _")
            st.form_submit_button("Create", on_click=_create_user, args=(store,))
        error = st.session_state.pop("new_user_error", None)
        if error:
            st.error(error)


def _create_user(store: Store) -> None:
    """Callback of the form: validate the id, create the persona, switch to it (or leave an error to show)."""
    # A callback runs before the script, so it may still set the picker's state.
    raw = st.session_state.get("new_user_id", "").strip()
    try:
        user_id = check_user_id(raw)
        create_persona(store, user_id)
    except PersonaError as exc:
        st.session_state["new_user_error"] = str(exc)
        return
    set_user(user_id)
    st.session_state[PICKER_KEY] = user_id
    st.session_state["new_user_id"] = ""
    flash(f"Created persona {user_id}: write a first entry in the Journal.")


def run_page(page: StreamlitPage, shared: Clients | None = None) -> None:
    """Draw the shared sidebar (when given the clients) and run the chosen page; a store that goes away mid-session
    gets the same clear message as at start-up, whether the sidebar or the page notices first."""
    try:
        if shared is not None:
            render_sidebar(shared)
        page.run()
    except StoreUnavailableError as exc:
        show_store_error(exc)
    except PersonaError as exc:  # e.g. a memory deleted meanwhile in another tab: a message, not a traceback
        st.error(safe_markdown(f"That did not work: {exc}"))


def import_upload(store: Store, provider: Provider, user: str, upload: UploadedFile) -> None:
    """Import an uploaded journal or export with a progress bar, then say what happened (or why not)."""
    bar = st.progress(0.0, text="Reading the file")
    try:
        summary = import_file(
            store, provider, user, upload.name, upload.getvalue(), on_progress=progress_callback(bar, "Entries")
        )
    except PersonaError as exc:
        st.error(safe_markdown(f"{upload.name} was not imported: {exc}"))
        return
    st.success(summary.message())
    for error in summary.errors[:10]:
        st.caption(safe_markdown(error))


def show_memory_history(memory_id: str) -> None:
    """Callback of a "Show its history" button: ask the Memories page to open this memory and its history (where a
    goal's change can be corrected)."""
    st.session_state[MEMORY_FOCUS_KEY] = memory_id


def go_to_page(path: str, title: str) -> None:
    """Switch to another page; run on its own (no ``app.py`` navigation), say where to go instead."""
    try:
        st.switch_page(path)
    except StreamlitAPIException:
        st.info(f"Open the {title} page to see it.")


# -- render helpers --------------------------------------------------------------------------------------------
def text(value: str) -> None:
    """User text, shown as the words it is (markdown and HTML in it are not interpreted)."""
    st.markdown(safe_markdown(value))


def memory_card(card: MemoryCard) -> None:
    """One extracted memory in a bordered card: type, kind, title, text, entities."""
    with st.container(border=True):
        kind = f" · {card.kind}" if card.kind else ""
        status = f" · {card.status}" if card.status else ""
        st.markdown(f"{TYPE_ICONS.get(card.type, '')} **{card.type}**{kind}{status}")
        st.markdown(f"**{safe_markdown(card.title)}**")
        if card.text and card.text != card.title:
            st.caption(safe_markdown(card.text))
        if card.entities:
            st.caption("Mentions: " + ", ".join(safe_markdown(name) for name in card.entities))


def progress_callback(bar: DeltaGenerator, label: str) -> Callable[[int, int], None]:
    """A progress callback that moves ``bar`` (an ``st.progress``) and says how far it is."""

    def update(done: int, total: int) -> None:
        bar.progress(done / total if total else 1.0, text=f"{label}: {done} of {total}")

    return update


def demo_button(store: Store, provider: Provider, *, key: str) -> None:
    """ "Load the demo persona": ingests the bundled journal into ``demo`` with a progress bar and switches to it."""
    if not st.button("Load the demo persona", key=key, icon=":material/auto_awesome:"):
        return
    bar = st.progress(0.0, text="Loading the demo journal")
    update = progress_callback(bar, "Demo entries")
    results = load_demo(store, provider, DEMO_USER, on_progress=lambda n, total, _r: update(n, total))
    failed = sum(1 for r in results if not r.ok)
    set_user(DEMO_USER)
    flash(f"Loaded the demo persona: {len(results)} entries ({failed} failed). You are now viewing “demo”.")
    st.rerun()  # the sidebar, drawn before this page, must show the new persona


def flash(message: str) -> None:
    """A success message for the next run (a page that reruns itself would otherwise never show it)."""
    st.session_state["flash"] = message


def show_flash() -> None:
    """Show, once, the message left by ``flash``."""
    message = st.session_state.pop("flash", None)
    if message:
        st.success(message)


def reembed_button(store: Store, provider: Provider) -> None:
    """Re-embed every stored memory with the embedder in use, with a progress bar (shown while vector search is off
    because the store's vectors come from another embedder)."""
    embedders = stale_embedders(store)
    if embedders is None:
        return
    stored, in_use = embedders
    st.subheader("Search by meaning")
    st.caption(
        f"Stored vectors: {safe_markdown(stored.name)}; embedder in use: "
        f"{safe_markdown(in_use.name)}. Re-embedding changes nothing else in the store."
    )
    if not st.button("Re-embed all memories", key="settings_reembed", icon=":material/autorenew:"):
        return
    bar = st.progress(0.0, text="Re-embedding…")
    result = reembed(
        store,
        provider.embedder,
        on_progress=lambda done, total: bar.progress(done / max(total, 1), text=f"{done:,} of {total:,}"),
    )
    flash(f"Re-embedded {result.replaced:,} memories: search by meaning is on.")
    st.rerun()
