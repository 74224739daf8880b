"""Home: active goals (overdue, due soon), on this day, recent entries, entries per week and a quick entry."""

from __future__ import annotations

from datetime import date

import altair as alt
import pandas as pd
import streamlit as st

import app_support as ui
from persona.errors import PersonaError
from persona.home import HomeView, days_text, home_view
from persona.ingest import ingest_entry
from persona.models import Goal
from persona.views import STATUS_ICONS, entry_datetime, safe_markdown, short

store, provider, user = ui.context()
st.title("Home")


def quick_entry() -> None:
    """A one-box entry, saved as happening now; the Journal page has the date, time and import."""
    with st.form("home_quick_entry", clear_on_submit=True):
        text = st.text_area("Quick entry", key="home_text", height=90, placeholder="What happened today?")
        saved = st.form_submit_button("Save", type="primary", icon=":material/save:")
    if not saved:
        return
    try:
        result = ingest_entry(store, provider, user, text, occurred_at=entry_datetime(date.today()))
    except PersonaError as exc:
        st.error(safe_markdown(f"Not saved: {exc}."))
        return
    if result.ok and result.batch is not None:
        batch = result.batch
        ui.flash(
            f"Saved: {len(batch.episodes)} episodes, {len(batch.psyche)} psyche, {len(batch.goals)} goals, "
            f"{len(batch.entities)} entities."
        )
    else:
        ui.flash(safe_markdown(f"Saved; extraction did not finish: {result.error}. Retry it in the Journal."))
    st.rerun()


def goal_line(goal: Goal, today: date) -> str:
    """One goal as a markdown line: title, kind, when it is due."""
    when = f" · {days_text(goal.due, today)} ({goal.due:%d %b})" if goal.due else ""
    return f"- **{safe_markdown(short(goal.title, 90))}** · {goal.kind.value}{when}"


def goals(view: HomeView, today: date) -> None:
    """Overdue, due soon, and how many more are active."""
    st.subheader("Active goals")
    due = view.goals
    if not due.count:
        st.caption("No active goals. Write “I want to…” in an entry and Persona keeps track.")
        return
    if due.overdue:
        st.markdown("**Overdue**")
        st.markdown("\n".join(goal_line(g, today) for g in due.overdue[:8]))
    if due.due_soon:
        st.markdown("**Due in the next two weeks**")
        st.markdown("\n".join(goal_line(g, today) for g in due.due_soon[:8]))
    if due.later:
        st.markdown(f"**Later or undated** ({len(due.later)})")
        st.markdown("\n".join(goal_line(g, today) for g in due.later[:5]))


def recent(view: HomeView) -> None:
    """The latest entries, one line each."""
    st.subheader("Recent entries")
    for entry in view.recent:
        icon = STATUS_ICONS.get(entry.status, "")
        st.markdown(f"{icon} **{entry.occurred_at:%a %d %b %Y}** · {safe_markdown(short(entry.text, 160))}")


def this_day(view: HomeView, today: date) -> None:
    """Episodes from this day in other years (the section is left out when there are none)."""
    if not view.on_this_day:
        return
    st.subheader(f"On this day, {today:%d %B}")
    for episode in view.on_this_day[:5]:
        st.markdown(f"- **{episode.occurred_at:%Y}** · {safe_markdown(short(episode.title, 120))}")


def changes(view: HomeView) -> None:
    """The latest changes Persona made on its own (left out when there are none); the Changes page can undo them."""
    if not view.changes:
        return
    st.subheader("What changed lately")
    for row in view.changes:
        st.markdown(
            f"- **{row['date']:%d %b %Y}** · {safe_markdown(str(row['memory']))} — "
            f"{safe_markdown(str(row['description']))}"
        )
    st.caption("The Changes page lists them all and can confirm or undo each one.")


def weekly(view: HomeView) -> None:
    """Entries per week as a bar chart."""
    if not view.weekly:
        return
    st.subheader("Entries per week")
    frame = pd.DataFrame(view.weekly)
    chart = (
        alt.Chart(frame)
        .mark_bar(color="#4C78A8")
        .encode(x=alt.X("week:T", title="Week"), y=alt.Y("entries:Q", title="Entries"), tooltip=["week:T", "entries"])
        .properties(height=180)
    )
    st.altair_chart(chart, width="stretch")


today = date.today()
view = home_view(store, user, today=today)
if view.empty:
    st.info("Nothing here yet: write a first entry below, or load the demo persona to look around.")
    ui.demo_button(store, provider, key="home_demo")
counts = view.counts
st.caption(
    f"**{safe_markdown(user)}** · {counts.get('Entry', 0)} entries · {counts.get('Episode', 0)} episodes · "
    f"{counts.get('Goal', 0)} goals · {counts.get('Entity', 0)} people, places and topics"
)
quick_entry()
left, right = st.columns([3, 2], gap="large")
with left:
    goals(view, today)
    this_day(view, today)
    weekly(view)
with right:
    changes(view)
    recent(view)
