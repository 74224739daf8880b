"""Graph: the user's memory graph (pyvis data drawn by a clickable component), with type, date and search filters,
focus and depth, a node cap that groups what it leaves out, the sources of the last chat answer highlighted, and a
details panel for the node clicked (or focused). Double-click a node to add its neighbours."""

from __future__ import annotations

import streamlit as st

import app_support as ui
from persona.actions import GRAPH_TYPES, find_node
from persona.models import AnyNode, NodeType
from persona.views import (
    NodeDetails,
    date_span,
    day_bounds,
    expand_view,
    graph_view,
    left_out_groups,
    node_details,
    node_label,
    safe_markdown,
)
from persona.viz import GROUP_PREFIX, graph_data, node_title, short

FOCUS_KEY = "graph_focus"
SELECTED_KEY = "graph_selected"
EXPANDED_KEY = "graph_expanded"
GRAPH_HEIGHT = 640
DRAWABLE = [NodeType.EPISODE, NodeType.PSYCHE, NodeType.GOAL, NodeType.ENTITY, NodeType.ENTRY, NodeType.PASSAGE]

store, provider, user = ui.context()
st.title("Graph")

# Another page (the timeline) asked to centre on a node: take it before the picker is drawn.
if ui.GRAPH_FOCUS_REQUEST in st.session_state:
    st.session_state[FOCUS_KEY] = st.session_state.pop(ui.GRAPH_FOCUS_REQUEST)
# A focus deleted meanwhile (Memories page) would centre the graph on nothing: forget it.
if st.session_state.get(FOCUS_KEY) and find_node(store, user, st.session_state[FOCUS_KEY]) is None:
    st.session_state[FOCUS_KEY] = None
canvas_key = f"graph_canvas-{user}"


def filters() -> dict[str, object]:
    """Type, date, search, depth and cap filters; returns the arguments of ``graph_view``."""
    row = st.columns([3, 2, 3])
    types = row[0].multiselect(
        "Types", DRAWABLE, default=list(GRAPH_TYPES), key="graph_types", format_func=lambda t: t.value
    )
    span = date_span(store, user)
    start = end = None
    if span is not None:
        picked = row[1].date_input("Dates", value=span, key=f"graph_dates-{user}", format="YYYY-MM-DD")
        # The whole span means no date filter: the cap message can then count everything left out.
        if isinstance(picked, tuple) and len(picked) == 2 and tuple(picked) != span:
            start, end = day_bounds(picked[0], picked[1])
    search = row[2].text_input("Search", key="graph_search", placeholder="e.g. Sarah, running, Lisbon")
    more = st.columns([2, 2, 3])
    depth = more[0].slider("Depth around the centre", 1, 3, 1, key="graph_depth")
    limit = more[1].slider("Node cap", 50, 500, 300, step=50, key="graph_limit")
    return {
        "types": types or list(GRAPH_TYPES),
        "start": start,
        "end": end,
        "search": search,
        "depth": depth,
        "limit": limit,
    }


def highlight_bar() -> list[str]:
    """The sources of the last chat answer, with a button to clear them."""
    ids = list(st.session_state.get(ui.HIGHLIGHT_KEY) or [])
    if ids:
        note, clear = st.columns([5, 1])
        note.info(
            f"Highlighting the {len(ids)} sources of the last chat answer (red border); a passage is shown "
            "through its episode.",
            icon=":material/forum:",
        )
        if clear.button("Clear", key="graph_clear_highlight", icon=":material/close:"):
            st.session_state.pop(ui.HIGHLIGHT_KEY, None)
            st.rerun()
    return ids


def focus_picker(view_nodes: list[AnyNode], focus_id: str | None) -> None:
    """Choose the node to focus on among those drawn (the focus itself stays listed)."""
    labels = {n.id: node_label(n, limit=60) for n in view_nodes}
    if focus_id and focus_id not in labels:
        found = find_node(store, user, focus_id)
        labels[focus_id] = node_label(found, limit=60) if found else focus_id
    options = [None, *sorted(labels, key=lambda i: labels[i].casefold())]
    st.selectbox(
        "Focus on",
        options,
        key=FOCUS_KEY,
        format_func=lambda i: "— none —" if i is None else labels.get(i, i),
        on_change=lambda: st.session_state.update({SELECTED_KEY: None, EXPANDED_KEY: []}),
    )


def clicked() -> None:
    """Callback: a click in the graph selected a node; its details open beside the graph."""
    state = st.session_state.get(canvas_key) or {}
    st.session_state[SELECTED_KEY] = state.get("selected")


def details_panel(details: NodeDetails | None, selected: str | None) -> None:
    """The clicked (or focused) node: type, dates, text, links, source entry."""
    if selected and selected.startswith(GROUP_PREFIX):
        st.info("A grey box stands for nodes the cap left out. Narrow the dates or types to draw them.")
        return
    if details is None:
        st.caption("Click a node in the graph (or pick one in “Focus on”) to see its details here.")
        return
    node = details.node
    st.markdown(f"{ui.TYPE_ICONS.get(node.type.value, '')} **{node.type.value}**")
    st.markdown(f"**{safe_markdown(short(node_title(node), 200))}**")
    when = getattr(node, "occurred_at", None)
    st.caption((f"Happened {when:%a %d %b %Y, %H:%M} · " if when else "") + f"stored {node.created_at:%d %b %Y, %H:%M}")
    ui.text(details.text)
    if details.links:
        st.markdown("**Links**")
        for link in details.links:
            st.caption(f"{link.direction} {link.type} · {safe_markdown(link.other_label)}")
    if details.entry is not None:
        with st.expander("Source entry"):
            st.text(details.entry.text)
    row = st.columns(2)
    row[0].button(
        "Centre",
        key="graph_centre_here",
        icon=":material/center_focus_strong:",
        on_click=lambda: st.session_state.update({FOCUS_KEY: node.id, EXPANDED_KEY: []}),
    )
    row[1].button(
        "Clear",
        key="graph_clear_focus",
        on_click=lambda: st.session_state.update({FOCUS_KEY: None, SELECTED_KEY: None, EXPANDED_KEY: []}),
    )


def expanded_ids(double_clicked: str | None) -> list[str]:
    """The nodes whose neighbours were added by a double-click (kept until the view changes)."""
    ids = list(st.session_state.get(EXPANDED_KEY) or [])
    if double_clicked and not double_clicked.startswith(GROUP_PREFIX) and double_clicked not in ids:
        ids.append(double_clicked)
        st.session_state[EXPANDED_KEY] = ids
        st.rerun()  # draw the expanded graph in this same click
    return ids


args = filters()
highlight = highlight_bar()
focus_id = st.session_state.get(FOCUS_KEY)
view = graph_view(store, provider, user, focus_id=focus_id, highlight_ids=highlight, **args)
types = args["types"]
view = expand_view(store, user, view, list(st.session_state.get(EXPANDED_KEY) or []), types=types)  # type: ignore[arg-type]
groups = left_out_groups(store, user, view, types=types, start=args["start"], end=args["end"])  # type: ignore[arg-type]
graph_column, side = st.columns([3, 1], gap="medium")
with graph_column:
    st.caption(f"{safe_markdown(view.note)} {len(view.subgraph.nodes)} nodes, {len(view.subgraph.links)} links.")
    if view.subgraph.nodes:
        zoom_to = view.centre_ids[0] if args["search"] and view.centre_ids else None
        data = graph_data(
            view.subgraph, highlight_ids=view.highlight_ids, focus_id=focus_id, zoom_to=zoom_to, groups=groups
        )
        data["height"] = GRAPH_HEIGHT
        _selected, double_clicked = ui.graph_canvas(data, key=canvas_key, on_select=clicked)
        expanded_ids(double_clicked)
    else:
        st.info("Nothing to draw: write an entry in the Journal, load the demo persona, or widen the filters.")
with side:
    focus_picker(view.subgraph.nodes, focus_id)
    selected = st.session_state.get(SELECTED_KEY) or focus_id
    is_node = bool(selected) and not str(selected).startswith(GROUP_PREFIX)
    details_panel(node_details(store, user, selected) if is_node else None, selected)
