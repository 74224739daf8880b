"""Changes: what Persona changed in your memories on its own (goals done, dropped or postponed; beliefs you changed
your mind about), newest first, each with the sentence that said so; confirm it, or undo it exactly."""

from __future__ import annotations

import streamlit as st

import app_support as ui
from persona.actions import undo_name_match
from persona.errors import PersonaError
from persona.revisions import confirm_change, undo_change
from persona.views import change_rows, name_match_rows, safe_markdown

store, provider, user = ui.context()

st.title("Changes")
st.caption("Nothing is deleted by a change: the earlier memory is kept, marked no longer true, and linked.")

rows = change_rows(store, user)
matches = name_match_rows(store, user)
if not rows and not matches:
    st.info("No changes yet. When a later entry finishes a goal or changes your mind, it shows here.")
for row in rows:
    key = f"{row['memory_id']}-{row['revision_id']}"
    with st.container(border=True):
        st.markdown(f"**{row['date']:%Y-%m-%d}** · {safe_markdown(str(row['memory']))}")
        st.caption(safe_markdown(str(row["description"])) + (" · confirmed" if row["confirmed"] else ""))
        left, right, third = st.columns(3)
        if third.button(
            "Show its history",
            key=f"chg_hist-{key}",
            icon=":material/history:",
            on_click=ui.show_memory_history,
            args=(str(row["memory_id"]),),
        ):
            ui.go_to_page("pages/memories.py", "Memories")
        try:
            if left.button("Confirm", key=f"chg_ok-{key}", disabled=bool(row["confirmed"])):
                confirm_change(store, user, str(row["memory_id"]), str(row["revision_id"]))
                st.rerun()
            if right.button("Undo", key=f"chg_undo-{key}"):
                undo_change(store, user, str(row["memory_id"]), str(row["revision_id"]))
                st.rerun()
        except PersonaError as exc:
            st.error(str(exc))

if matches:
    st.subheader("Names taken for someone you know")
    st.caption("Undo makes the name its own person again, with that entry's mentions.")
for match in matches:
    with st.container(border=True):
        st.markdown(
            f"**{match['date']:%Y-%m-%d}** · “{safe_markdown(str(match['name']))}” → "
            f"{safe_markdown(str(match['entity']))} ({safe_markdown(str(match['rule']))})"
        )
        try:
            if st.button("Undo", key=f"match_undo-{match['match_id']}", disabled=not match["undoable"]):
                undo_name_match(store, provider.embedder, user, str(match["entity_id"]), str(match["match_id"]))
                st.rerun()
        except PersonaError as exc:
            st.error(str(exc))
