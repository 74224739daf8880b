"""Memories: a table of the user's episodes, psyche and goals with filters; edit a memory's text or a goal's status,
delete a memory or an entry (with a confirmation), merge two entities. A goal or psyche memory shows its history
(when it became true and stopped, what replaced it, the changes Persona made) and each detected change can be
confirmed, undone exactly, or (a goal's) corrected. Every change goes to the store at once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import streamlit as st

import app_support as ui
from persona.actions import delete_node, find_node, merge_entities
from persona.errors import PersonaError
from persona.ingest import edit_memory
from persona.models import MEMORY_TYPES, AnyNode, Goal, GoalStatus, NodeType, Psyche
from persona.revisions import GOAL_CHANGES, confirm_change, edit_change, undo_change
from persona.views import (
    CHANGE_COLOURS,
    MEMORY_FOCUS_KEY,
    HistoryStep,
    MemoryHistory,
    entities,
    memory_changes,
    memory_history,
    memory_rows,
    node_label,
    recent_entries,
    safe_markdown,
)

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
        column_order=["date", "type", "kind", "status", "until", "title", "text"],
        column_config={
            "date": st.column_config.DatetimeColumn("Date", format="YYYY-MM-DD HH:mm"),
            "type": st.column_config.TextColumn("Type", width="small"),
            "kind": st.column_config.TextColumn("Kind", width="small"),
            "status": st.column_config.TextColumn("Status", width="small"),
            "until": st.column_config.DateColumn(
                "True until", format="YYYY-MM-DD", width="small", help="Empty while it is still true"
            ),
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
    requested = st.session_state.pop(MEMORY_FOCUS_KEY, None)  # "Show its history" on the Timeline or Changes page
    if requested in labels:
        st.session_state["mem_pick"] = requested
    elif requested:
        st.info("The memory asked for is hidden by the filters above: widen them to see it.")
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
            status = st.selectbox(
                "Status",
                choices,
                index=choices.index(node.status.value),
                key=f"mem_goal-{node.id}",
                help=CHANGED_GOAL_HELP if node.revisions else None,
            )
        saved = st.form_submit_button("Save changes", type="primary", icon=":material/save:")
    if saved:
        save(node, title=title, text=text, status=status)
    history(node.id)
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


HISTORY_ERROR = "mem_history_error"
CHANGED_GOAL_HELP = (
    "Persona changed this goal on its own: correct or undo that change under History below, so it stays undoable."
)


def history(node_id: str) -> None:
    """A goal's or psyche memory's life and its changes, each detected change with confirm, undo and edit."""
    found = memory_history(store, user, node_id)
    if found is None:
        return
    st.markdown("**History**")
    with st.container(border=True):
        error = st.session_state.pop(HISTORY_ERROR, None)
        if error:
            st.error(safe_markdown(error))
        st.markdown(validity_text(found))
        for label, others in (("Replaced by", found.replaced_by), ("Replaces", found.replaces)):
            if others:
                st.caption(f"{label}: " + "; ".join(safe_markdown(o) for o in others))
        if not found.steps:
            st.caption("No changes yet: nothing later has finished, dropped, postponed or replaced it.")
        for step in found.steps:
            change_step(found, step)


def validity_text(found: MemoryHistory) -> str:
    """True since when, until when (or still true), and when Persona learned it."""
    until = f"no longer true since {found.stopped:%Y-%m-%d}" if found.stopped else "still true"
    return f"True from **{found.became_true:%Y-%m-%d}**, {until} · learned {found.learned:%Y-%m-%d}"


def change_step(found: MemoryHistory, step: HistoryStep) -> None:
    """One change: when, what, the sentence that caused it; the latest one can be confirmed, undone or edited."""
    colour = CHANGE_COLOURS.get(step.change, "orange")
    st.markdown(f"**{step.at:%Y-%m-%d}** · :{colour}-badge[{step.label}] {safe_markdown(step.what)}")
    state = "confirmed" if step.confirmed else "not confirmed yet"
    st.caption(f"You wrote: {safe_markdown(step.sentence)} · {state}" + ("" if step.automatic else " · corrected"))
    if not step.latest:
        return
    memory = found.memory
    args = (user, memory.id, step.revision_id)
    row = st.container(horizontal=True)
    row.button(
        "Confirm",
        key=f"hist_ok-{step.revision_id}",
        disabled=step.confirmed,
        on_click=confirm,
        args=args,
        icon=":material/check:",
    )
    row.button(
        "Undo this change", key=f"hist_undo-{step.revision_id}", on_click=undo, args=args, icon=":material/undo:"
    )
    if isinstance(memory, Goal):
        correction(args, step)


def correction(args: tuple[str, str, str], step: HistoryStep) -> None:
    """Correct what the rules chose for a goal: done, dropped, or postponed to a new due date."""
    with st.expander("Correct this change", icon=":material/edit:"):
        choices = list(GOAL_CHANGES)
        st.selectbox(
            "The goal was",
            choices,
            index=choices.index(step.change) if step.change in choices else 0,
            key=f"hist_change-{step.revision_id}",
        )
        st.date_input(
            "New due date (when postponed)", value=None, key=f"hist_due-{step.revision_id}", format="YYYY-MM-DD"
        )
        st.button("Save the correction", key=f"hist_edit-{step.revision_id}", on_click=correct, args=args)


def confirm(user_id: str, memory_id: str, revision_id: str) -> None:
    """Callback: mark the change as seen and right."""
    run_change(lambda: confirm_change(store, user_id, memory_id, revision_id), "Confirmed the change.")


def undo(user_id: str, memory_id: str, revision_id: str) -> None:
    """Callback: undo the change exactly."""
    run_change(lambda: undo_change(store, user_id, memory_id, revision_id), "Undone: the memory is as it was.")


def correct(user_id: str, memory_id: str, revision_id: str) -> None:
    """Callback: apply the correction picked in the change's form."""
    change = st.session_state.get(f"hist_change-{revision_id}", "")
    due: date | None = st.session_state.get(f"hist_due-{revision_id}")
    run_change(
        lambda: edit_change(store, user_id, memory_id, revision_id, change=change, due=due),
        f"Corrected: the goal is {change}.",
    )


def run_change(action: Callable[[], object], message: str) -> None:
    """Run a history action; its refusal is shown in the history box (a callback runs before the page is drawn)."""
    try:
        action()
    except PersonaError as exc:
        st.session_state[HISTORY_ERROR] = f"Nothing changed: {exc}"
        return
    ui.flash(message)


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
