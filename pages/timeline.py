"""Timeline: a band of episodes with goal and psyche markers, jump to a date, follow one entity's or goal's thread;
the chain of episodes by month, each with its psyche, goals and entry, and the changes Persona made (goals done,
dropped or postponed; beliefs you changed your mind about) marked at the date of the entry that caused them, or
those changes only; on this day; entry density."""

from __future__ import annotations

from datetime import date, datetime

import altair as alt
import pandas as pd
import streamlit as st

import app_support as ui
from persona.models import Episode
from persona.timeline_band import LANES, band_rows, follow_thread, nearest_episode, thread_options
from persona.views import (
    CHANGE_COLOURS,
    CHANGES_LANE,
    ChangeMark,
    TimelineItem,
    change_band_rows,
    change_marks,
    date_span,
    day_bounds,
    entry_density,
    group_rows_by_month,
    on_this_day,
    safe_markdown,
    timeline,
    timeline_item,
    timeline_rows,
)

FOCUS_KEY = "timeline_focus"

store, provider, user = ui.context()
st.title("Timeline")


def pick_range() -> tuple[date, date] | None:
    """A date range over the user's entries (the whole span by default)."""
    span = date_span(store, user)
    if span is None:
        return None
    picked = st.date_input("Dates", value=span, key=f"timeline_range-{user}", format="YYYY-MM-DD")
    if isinstance(picked, tuple) and len(picked) == 2:
        return picked[0], picked[1]
    return span  # half-picked range: keep showing everything until the second date is chosen


def density_chart() -> None:
    """Entries per week, as an area: when the journal was busy and when it was quiet."""
    rows = entry_density(store, user)
    if not rows:
        return
    frame = pd.DataFrame(rows)
    chart = (
        alt.Chart(frame)
        .mark_area(color="#4C78A8", opacity=0.35, line={"color": "#4C78A8"}, point=True, interpolate="monotone")
        .encode(
            x=alt.X("week:T", title="Week"),
            y=alt.Y("entries:Q", title="Entries"),
            tooltip=[alt.Tooltip("week:T", title="Week of"), "entries:Q"],
        )
        .properties(height=140)
    )
    st.altair_chart(chart, width="stretch")


def band_chart(
    items: list[TimelineItem], marks: list[ChangeMark], span: tuple[datetime | None, datetime | None]
) -> None:
    """Episodes on a time axis spanning the picked dates, with their goals and psyche in lanes above (bigger dots:
    more important), and the changes on top."""
    rows = [*change_band_rows(marks), *band_rows(items)]
    if not rows:
        return
    lanes = [CHANGES_LANE, *LANES]
    colours = alt.Scale(domain=lanes, range=["#E45756", "#F58518", "#B279A2", "#4C78A8"])
    chart = (
        alt.Chart(pd.DataFrame(rows))
        .mark_circle(opacity=0.85)
        .encode(
            x=alt.X("when:T", title=None, scale=time_scale(span)),
            y=alt.Y("lane:N", title=None, sort=lanes),
            size=alt.Size("size:Q", legend=None),
            color=alt.Color("lane:N", scale=colours, legend=None),
            tooltip=[alt.Tooltip("when:T", title="Date"), alt.Tooltip("lane:N", title="Type"), "label:N"],
        )
        .properties(height=170)
    )
    st.altair_chart(chart, width="stretch")


def time_scale(span: tuple[datetime | None, datetime | None]) -> alt.Scale:
    """The band's time axis: the picked dates (the same whatever the filters keep), or the data's when open."""
    low, high = span
    return alt.Scale(domain=[low.isoformat(), high.isoformat()]) if low and high else alt.Scale()


def jump_and_thread(items: list[TimelineItem], episodes: list[Episode]) -> str | None:
    """ "Jump to a date" (opens the nearest episode at the top) and the thread picker; returns the thread's id."""
    left, right = st.columns([1, 2])
    day = left.date_input("Jump to a date", value=None, key=f"timeline_jump-{user}", format="YYYY-MM-DD")
    if day is not None and st.session_state.get("timeline_jumped") != day:
        st.session_state["timeline_jumped"] = day
        nearest = nearest_episode(episodes, day)
        if nearest is not None:
            st.session_state[FOCUS_KEY] = nearest.id
    options = thread_options(items)
    return right.selectbox(
        "Follow a thread (a person, place, topic or goal)",
        [None, *options],
        key=f"timeline_thread-{user}",
        format_func=lambda i: "— everything —" if i is None else options.get(i, i),
    )


def focus(episode_id: str | None) -> None:
    """Callback: follow the chain to another episode."""
    st.session_state[FOCUS_KEY] = episode_id


def show_in_graph(episode_id: str) -> None:
    """Callback: ask the graph page to centre on this episode."""
    st.session_state[ui.GRAPH_FOCUS_REQUEST] = episode_id


def episode_block(item: TimelineItem, *, key: str, walking: bool = False) -> None:
    """One episode: date, title, summary, psyche and goals, entities, its entry in an expander, and buttons to walk
    the chain (``walking``: the focused episode gets previous / next) or to open it in the graph."""
    episode = item.episode
    with st.container(border=True):
        st.markdown(f"**{episode.occurred_at:%a %d %b %Y}** · {safe_markdown(episode.title)}")
        st.caption(safe_markdown(episode.summary))
        for psyche in item.psyche:
            st.markdown(f"{ui.TYPE_ICONS['Psyche']} *{psyche.kind.value}* · {safe_markdown(psyche.text)}")
        for goal in item.goals:
            label = f"*{goal.kind.value}, {goal.status.value}*"
            st.markdown(f"{ui.TYPE_ICONS['Goal']} {label} · {safe_markdown(goal.title)}")
        if item.entities:
            st.caption("Mentions: " + ", ".join(safe_markdown(e.name) for e in item.entities))
        if item.entry is not None:
            with st.expander("Entry text"):
                st.text(item.entry.text)
        chain_buttons(item, key=key, walking=walking)


def change_block(mark: ChangeMark) -> None:
    """One change, marked as such: a coloured badge naming it, what changed, and the sentence that said so."""
    colour = CHANGE_COLOURS.get(mark.change, "orange")
    with st.container(border=True):
        st.markdown(
            f":material/change_circle: **{mark.at:%a %d %b %Y}** · :{colour}-badge[{mark.label}] "
            f"{safe_markdown(mark.what)}"
        )
        st.caption(f"You wrote: {safe_markdown(mark.sentence)}" + (" · confirmed" if mark.confirmed else ""))
        if st.button(
            "Show its history",
            key=f"chg-{mark.revision_id}-history",
            icon=":material/history:",
            type="tertiary",
            on_click=ui.show_memory_history,
            args=(mark.memory_id,),
        ):
            ui.go_to_page("pages/memories.py", "Memories")


def chain_buttons(item: TimelineItem, *, key: str, walking: bool) -> None:
    """Previous / next along the NEXT chain (or "follow the chain from here"), and "show in graph"."""
    row = st.container(horizontal=True)
    if walking:
        row.button(
            "Previous",
            key=f"{key}-prev",
            icon=":material/arrow_back:",
            disabled=item.previous_id is None,
            on_click=focus,
            args=(item.previous_id,),
        )
        row.button(
            "Next",
            key=f"{key}-next",
            icon=":material/arrow_forward:",
            disabled=item.next_id is None,
            on_click=focus,
            args=(item.next_id,),
        )
    else:
        row.button(
            "Follow the chain from here",
            key=f"{key}-focus",
            icon=":material/linear_scale:",
            on_click=focus,
            args=(item.episode.id,),
            type="tertiary",
        )
    if row.button(
        "Show in graph",
        key=f"{key}-graph",
        icon=":material/hub:",
        type="tertiary",
        on_click=show_in_graph,
        args=(item.episode.id,),
    ):
        ui.go_to_page("pages/graph.py", "Graph")


def focused_episode() -> None:
    """The episode the chain buttons lead to, at the top of the page."""
    episode_id = st.session_state.get(FOCUS_KEY)
    if not episode_id:
        return
    item = timeline_item(store, user, episode_id)
    if item is None:  # deleted, or another persona's: forget it
        st.session_state.pop(FOCUS_KEY, None)
        return
    head = st.container(horizontal=True, vertical_alignment="center")
    head.subheader("Following the chain")
    head.button("Close", key="timeline-close", icon=":material/close:", on_click=focus, args=(None,))
    episode_block(item, key="focused", walking=True)


def day_memories(episodes: list[Episode]) -> None:
    """Episodes from today's date in other years."""
    today = date.today()
    same_day = on_this_day(episodes, today)
    with st.expander(f"On this day ({today:%d %B})", expanded=bool(same_day), icon=":material/today:"):
        if not same_day:
            st.caption("Nothing on this day in other years.")
        for episode in same_day:
            st.markdown(f"**{episode.occurred_at:%Y}** · {safe_markdown(episode.title)}")


chosen = pick_range()
if chosen is None:
    st.info("No entries yet: write one in the Journal, or load the demo persona there.")
    st.stop()
start, end = day_bounds(*chosen)
whole = timeline(store, user, start=start, end=end)
thread = jump_and_thread(whole.items, whole.episodes)
changes_only = st.toggle(
    "Changes only",
    key="timeline_changes_only",
    help="Only the goals Persona saw done, dropped or postponed and the beliefs you changed your mind about.",
)
shown = follow_thread(whole.items, thread)
# When the range holds more episodes than are drawn, the changes are marked among the drawn (newest) ones only;
# "Changes only" draws no episodes, so it lists every change of the range.
capped = not changes_only and whole.in_range > len(whole.items) and whole.items
marks = change_marks(store, user, start=whole.items[0].episode.occurred_at if capped else start, end=end)
in_time_order = timeline_rows(shown, marks, changes_only=changes_only, thread=thread)
band_chart([r.item for r in in_time_order if r.item], [r.change for r in in_time_order if r.change], (start, end))
if thread:
    st.caption(f"{len(shown)} of {len(whole.items)} episodes in this thread.")
focused_episode()
day_memories(whole.episodes)
with st.expander("Entries per week", icon=":material/bar_chart:"):
    density_chart()
newest_first = st.toggle("Newest first", value=True, key="timeline_newest")
if whole.in_range > len(whole.items):
    st.info(f"Showing the newest {len(whole.items)} of {whole.in_range} episodes in this range: narrow the dates.")
rows = timeline_rows(shown, marks, changes_only=changes_only, thread=thread, newest_first=newest_first)
if not rows:
    st.caption("No changes in this range." if changes_only else "No episodes in this range.")
for month, month_rows in group_rows_by_month(rows):
    st.subheader(month)
    for row in month_rows:
        if row.change is not None:
            change_block(row.change)
        elif row.item is not None:
            episode_block(row.item, key=f"ep-{row.item.episode.id}")
