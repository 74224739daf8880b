"""Memories: a table of the user's episodes, psyche and goals with filters; edit a memory's text or a goal's status,
delete a memory or an entry (with a confirmation), merge two entities. Every change goes to the store at once."""

from __future__ import annotations

import streamlit as st

import app_support as ui
from persona.actions import delete_node, find_node, merge_entities
from persona.errors import PersonaError
from persona.ingest import edit_memory
from persona.models import MEMORY_TYPES, AnyNode, Goal, GoalStatus, NodeType, Psyche
from persona.views import entities, memory_changes, memory_rows, node_label, recent_entries, safe_markdown

store, provider, user = ui.context()
st.title("Memories")


def filters() -> dict[str, object]:
    """Type, goal status and text filters."""
    row = st.columns([3, 2, 3])
    types = row[0].multiselect(
        "Types", list(MEMORY_TYPES), default=list(MEMORY_TYPES), key="mem_types", format_func=lambda t: t.value
    )
    status = row[1].selectbox(
        "Goal status", [None, *[s.value for s in GoalStatus]], key="mem_status", format_func=lambda s: s or "any"
    )
    contains = row[2].text_input("Text contains", key="mem_contains")
    return {"types": types or list(MEMORY_TYPES), "status": status, "contains": contains}


def table(rows: list[dict[str, object]]) -> None:
    """The memories as a read-only table (the grid draws text as text)."""
    if not rows:
        st.info("No memories match. Write an entry in the Journal, or widen the filters.")
        return
    st.caption(f"{len(rows)} memories")
    st.dataframe(
        rows,
        hide_index=True,
        height="auto" if len(rows) < 10 else 360,  # no empty rows under a short table
        column_order=["date", "type", "kind", "status", "title", "text"],
        column_config={
            "date": st.column_config.DatetimeColumn("Date", format="YYYY-MM-DD HH:mm"),
            "type": st.column_config.TextColumn("Type", width="small"),
            "kind": st.column_config.TextColumn("Kind", width="small"),
            "status": st.column_config.TextColumn("Status", width="small"),
            "title": st.column_config.TextColumn("Title", width="medium"),
            "text": st.column_config.TextColumn("Text", width="large"),
        },
    )


def editor(rows: list[dict[str, object]]) -> None:
    """Edit one memory: its title and text, a goal's status; or delete it."""
    st.subheader("Edit a memory")
    if not rows:
        st.caption("Nothing to edit.")
        return
    labels = {r["id"]: f"{r['type']} · {r['date']:%Y-%m-%d} · {(r['title'] or r['text'])[:70]}" for r in rows}
    memory_id = st.selectbox("Memory", list(labels), key="mem_pick", format_func=lambda i: labels[i])
    node = find_node(store, user, memory_id)
    if node is None:
        st.warning("That memory is gone.")
        return
    with st.form(f"mem_edit-{node.id}"):
        title = (
            None if isinstance(node, Psyche) else st.text_input("Title", value=node.title, key=f"mem_title-{node.id}")
        )
        body = node.summary if node.type is NodeType.EPISODE else node.text
        text = st.text_area("Text", value=body, key=f"mem_text-{node.id}", height=120)
        status = None
        if isinstance(node, Goal):
            choices = [s.value for s in GoalStatus]
            status = st.selectbox("Status", choices, index=choices.index(node.status.value), key=f"mem_goal-{node.id}")
        saved = st.form_submit_button("Save changes", type="primary", icon=":material/save:")
    if saved:
        save(node, title=title, text=text, status=status)
    delete_memory(node)


def save(node: AnyNode, *, title: str | None, text: str, status: str | None) -> None:
    """Write the edits to the store (only the fields that changed)."""
    changes = memory_changes(node, title=title, text=text, status=status)
    if not changes:
        st.info("Nothing changed.")
        return
    try:
        edit_memory(store, provider, user, node.id, changes)
    except (PersonaError, ValueError) as exc:  # pydantic refuses e.g. an empty title
        st.error(safe_markdown(f"Not saved: {exc}"))
        return
    ui.flash(f"Saved: {', '.join(changes)} of the {node.type.value.lower()}.")
    st.rerun()


def delete_memory(node: AnyNode) -> None:
    """Delete the memory after an explicit confirmation."""
    with st.expander("Delete this memory", icon=":material/delete:"):
        extra = (
            " and everything extracted from its entry (the entry stays in the journal, to extract again)"
            if node.type is NodeType.EPISODE
            else ""
        )
        sure = st.checkbox(f"Yes, delete this {node.type.value.lower()}{extra}.", key=f"mem_del_ok-{node.id}")
        if st.button("Delete", key=f"mem_del-{node.id}", disabled=not sure, type="primary"):
            removed = delete_node(store, user, node.id)
            ui.flash(f"Deleted {removed} node{'s' if removed != 1 else ''}.")
            st.rerun()


def delete_entry() -> None:
    """Delete an entry with everything extracted from it."""
    st.subheader("Delete an entry")
    entries = recent_entries(store, user, limit=200)
    if not entries:
        st.caption("No entries.")
        return
    labels = {e.id: node_label(e, limit=80) for e in entries}
    entry_id = st.selectbox("Entry", list(labels), key="mem_entry", format_func=lambda i: labels[i])
    sure = st.checkbox("Yes, delete this entry and every memory extracted from it.", key=f"mem_entry_ok-{entry_id}")
    if st.button("Delete entry", key="mem_entry_del", disabled=not sure, type="primary"):
        removed = delete_node(store, user, entry_id)
        ui.flash(f"Deleted the entry and {removed - 1} nodes that came from it.")
        st.rerun()


def merge() -> None:
    """Merge two entities that are the same person, place or thing."""
    st.subheader("Merge two entities")
    known = entities(store, user)
    if len(known) < 2:
        st.caption("Merging needs at least two entities.")
        return
    labels = {e.id: f"{e.name} ({e.kind.value})" for e in known}
    ids = list(labels)
    left, right = st.columns(2)
    keep = left.selectbox("Keep this entity", ids, key="mem_keep", format_func=lambda i: labels[i])
    drop = right.selectbox(
        "Fold this one into it",
        ids,
        index=1,
        key="mem_drop",
        format_func=lambda i: labels[i],
        help="Its mentions move to the kept entity, its names become aliases, and it is deleted.",
    )
    if st.button("Merge", key="mem_merge", disabled=keep == drop, icon=":material/merge:"):
        try:
            merged = merge_entities(store, user, keep, drop)
        except PersonaError as exc:
            st.error(safe_markdown(str(exc)))
            return
        ui.flash(
            safe_markdown(f"Merged into {merged.name}; also known as {', '.join(merged.aliases) or 'nothing else'}.")
        )
        st.rerun()


rows = memory_rows(store, user, **filters())
table(rows)
left, right = st.columns(2, gap="large")
with left:
    editor(rows)
with right:
    delete_entry()
    merge()
st.caption(safe_markdown(f"Persona {user}: edits, deletions and merges are written to the store immediately."))
