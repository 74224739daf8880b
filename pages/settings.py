"""Settings: the provider and the store with their counts, export and import of a persona, the demo persona, and
deleting a persona (type its id to confirm)."""

from __future__ import annotations

from datetime import date

import streamlit as st

import app_support as ui
from persona import actions
from persona.config import get_settings
from persona.views import safe_markdown

store, provider, user = ui.context()
settings = get_settings()
st.title("Settings")


def status() -> None:
    """What the app runs on, and how much this persona holds."""
    summary = actions.store_summary(store, user)
    left, right = st.columns(2, gap="large")
    with left:
        st.subheader("Language model")
        st.markdown(safe_markdown(provider.describe()))
        if provider.offline:
            st.badge("offline", icon=":material/cloud_off:", color="orange")
            st.caption(
                "Rule-based extraction and extractive answers: private, fast, no network. Set OPENAI\\_API\\_KEY, "
                "or OPENAI\\_BASE\\_URL for Ollama, LM Studio or vLLM, to use a model."
            )
        st.caption(f"Embeddings: {safe_markdown(provider.embedder.info.name)} ({provider.embedder.info.dimension} d)")
    with right:
        st.subheader("Memory store")
        st.markdown(safe_markdown(summary.description))
        st.caption(f"Data folder: {safe_markdown(str(settings.home))}")
    counts = summary.counts
    st.subheader(f"Persona {safe_markdown(user)}")
    if summary.empty:
        st.caption("Nothing stored yet.")
        return
    columns = st.columns(min(7, len(counts)))
    for number, (name, count) in enumerate(counts.items()):
        columns[number % len(columns)].metric(name, f"{count:,}")


def export() -> None:
    """Download everything this persona holds as JSON."""
    st.subheader("Export")
    st.caption("Every entry, memory, entity and link of this persona, as JSON (Settings → Import reads it back).")
    st.download_button(
        "Download the export",
        # Built only when clicked (a callable is deferred): a big persona costs nothing until then.
        data=lambda: actions.export_json(store, user),
        file_name=f"persona-{user}-{date.today():%Y%m%d}.json",
        mime="application/json",
        icon=":material/download:",
        key="settings_download",
        on_click="ignore",
    )


def restore() -> None:
    """Upload a Persona export (or a journal file) into this persona."""
    st.subheader("Import")
    upload = st.file_uploader(
        "A Persona export (or a journal file)", type=["json", "jsonl", "md", "txt"], key="settings_up"
    )
    if upload is None or not st.button("Import into this persona", key="settings_import", icon=":material/upload:"):
        return
    ui.import_upload(store, provider, user, upload)


def delete_persona() -> None:
    """Delete this persona and everything it holds, after typing its id."""
    st.subheader("Delete this persona")
    typed = st.text_input(f"Type “{user}” to confirm", key=f"settings_delete-{user}")
    if st.button("Delete persona", key="settings_delete", type="primary", disabled=typed.strip() != user):
        removed = actions.delete_persona(store, user)
        ui.set_user(ui.default_user() if user != ui.default_user() else ui.DEMO_USER)
        ui.flash(f"Deleted persona {user} ({removed} nodes).")
        st.rerun()


status()
ui.reembed_button(store, provider)
st.divider()
left, right = st.columns(2, gap="large")
with left:
    export()
    st.subheader("Demo persona")
    ui.demo_button(store, provider, key="settings_demo")
with right:
    restore()
    delete_persona()
