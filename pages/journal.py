"""Journal: write an entry and see what Persona extracted; recent entries (retry the failed ones); bulk import."""

from __future__ import annotations

from datetime import date

import streamlit as st

import app_support as ui
from persona.errors import PersonaError
from persona.ingest import IngestResult, ingest_entry, process_entry, retry_failed, validate_entry_input
from persona.models import EntryStatus
from persona.similar import similar_entries
from persona.views import (
    STATUS_ICONS,
    entry_datetime,
    failed_entries,
    memory_cards,
    recent_entries,
    safe_markdown,
    short,
)

store, provider, user = ui.context()
st.title("Journal")
st.caption(f"Writing as **{safe_markdown(user)}**. Each entry becomes episodes, psyche, goals and entities.")


def write_entry() -> None:
    """The entry form; on submit, ingest with each step shown, and keep the extracted cards for display."""
    with st.form("journal_entry", clear_on_submit=False):
        text = st.text_area("What happened?", key="journal_text", height=180, placeholder="Today I…")
        left, right = st.columns(2)
        day = left.date_input("Date", value=date.today(), key="journal_date", format="YYYY-MM-DD")
        at = right.time_input("Time (optional)", value=None, key="journal_time", step=300)
        submitted = st.form_submit_button("Save entry", type="primary", icon=":material/save:")
    if not submitted:
        return
    try:
        when = entry_datetime(day, at)
        validate_entry_input(user, text, when)  # bad input is refused here, before anything is stored
    except PersonaError as exc:
        st.error(safe_markdown(f"Not saved: {exc}."))
        return
    with st.status("Saving your entry…", expanded=True) as status:
        try:
            result = ingest_entry(
                store,
                provider,
                user,
                text,
                occurred_at=when,
                on_step=lambda step: status.write(safe_markdown(step)),
            )
        except PersonaError as exc:  # bad input: nothing was stored
            status.update(label="Not saved", state="error")
            st.error(safe_markdown(str(exc)))
            return
        label, state = _outcome(result)
        status.update(label=label, state=state, expanded=not result.ok)
    st.session_state["journal_last"] = {
        "cards": memory_cards(result.batch),
        "error": result.error,
        "duplicate": result.duplicate,
        "similar": similar_entries(store, provider.embedder, user, result.entry) if result.ok else [],
    }


def _outcome(result: IngestResult) -> tuple[str, str]:
    """The status box's last label and state for an ingest result."""
    if result.duplicate:
        return "Already in your journal: nothing new to extract", "complete"
    if not result.ok:
        return f"Saved, but extraction failed: {result.error}", "error"
    batch = result.batch
    counts = (
        f"episodes {len(batch.episodes)} · psyche {len(batch.psyche)} · goals {len(batch.goals)} · "
        f"entities {len(batch.entities)}"
    )
    return f"Saved · {counts}", "complete"


def show_last() -> None:
    """The memories extracted from the last entry, as cards."""
    last = st.session_state.get("journal_last")
    if not last:
        return
    if last["error"]:
        st.warning(safe_markdown(f"The entry is saved but was not processed: {last['error']}. Retry it below."))
    cards = last["cards"]
    if cards:
        st.subheader("Extracted memories")
        columns = st.columns(min(3, len(cards)))
        for number, card in enumerate(cards):
            with columns[number % len(columns)]:
                ui.memory_card(card)
    if last.get("similar"):
        st.subheader("You wrote something similar")
        for match in last["similar"]:
            st.markdown(
                f":material/history: **{match.occurred_at:%a %d %b %Y}** · {safe_markdown(short(match.excerpt, 220))}"
            )


def show_recent() -> None:
    """The latest entries with their status; failed ones get a retry button."""
    st.subheader("Recent entries")
    entries = recent_entries(store, user, limit=10)
    if not entries:
        st.info("No entries yet. Write one above, import a journal, or load the demo persona.")
        return
    for entry in entries:
        icon = STATUS_ICONS.get(entry.status, "")
        with st.container(border=True):
            left, right = st.columns([5, 1])
            left.markdown(f"{icon} **{entry.occurred_at:%a %d %b %Y, %H:%M}** · {entry.status.value}")
            left.caption(safe_markdown(short(entry.text, 220)))
            if entry.status is not EntryStatus.DONE:
                if entry.error:
                    left.caption(f"Reason: {safe_markdown(entry.error)}")
                if right.button("Retry", key=f"retry-{entry.id}", icon=":material/refresh:"):
                    result = process_entry(store, provider, entry)
                    ui.flash("Processed." if result.ok else safe_markdown(f"Failed again: {result.error}"))
                    st.rerun()
    stuck = failed_entries(store, user)
    if len(stuck) > 1 and st.button(f"Retry all {len(stuck)} unfinished entries", icon=":material/refresh:"):
        results = retry_failed(store, provider, user)
        ui.flash(f"Retried {len(results)}: {sum(r.ok for r in results)} processed.")
        st.rerun()


def bulk_import() -> None:
    """Markdown with date headings, JSON Lines, a Day One export, or a Persona export."""
    with st.expander("Import a journal file", icon=":material/upload_file:"):
        st.caption(
            "Markdown or text with date headings (`## 2024-03-01`), JSON Lines (`text`, `occurred_at`), "
            "a Day One JSON export, or a Persona export."
        )
        upload = st.file_uploader("Journal file", type=["md", "txt", "jsonl", "json"], key="journal_upload")
        if upload is None or not st.button("Import", key="journal_import", icon=":material/download:"):
            return
        ui.import_upload(store, provider, user, upload)


write_entry()
show_last()
left, right = st.columns([3, 2], gap="large")
with left:
    show_recent()
with right:
    bulk_import()
    with st.container(border=True):
        st.markdown("**Demo persona**")
        st.caption("A synthetic three-month journal (Maya), loaded offline in seconds into the persona “demo”.")
        ui.demo_button(store, provider, key="journal_demo")
