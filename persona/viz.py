"""A subgraph as a self-contained pyvis (vis-network) HTML page. Pure: no Streamlit, no network access when viewed.

Safety and offline rules this module keeps:
- vis-network is embedded in line (``cdn_resources="in_line"``) and the Bootstrap ``<link>``/``<script>`` tags of
  pyvis's template are stripped, so the page loads nothing from the network (``remote_references`` checks it).
- Every piece of user text is escaped: tooltips with ``html.escape`` (they become DOM elements through
  ``innerHTML``); labels are drawn on the canvas as plain text, never parsed (see ``canvas_label``). The node data is
  embedded as JSON by pyvis's ``tojson`` filter, which also escapes ``<``, ``>`` and ``&``.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import pyvis
from jinja2 import Environment
from pyvis.network import Network

from persona.models import AnyNode, Entity, Entry, Episode, Goal, LinkType, NodeType, Passage, Psyche, Subgraph


@dataclass(frozen=True)
class NodeStyle:
    """How one node type looks: the legend shows the same colour and shape."""

    colour: str
    shape: str
    base_size: float
    legend: str


TYPE_STYLES: dict[NodeType, NodeStyle] = {
    NodeType.EPISODE: NodeStyle("#4C78A8", "dot", 14, "what happened"),
    NodeType.PSYCHE: NodeStyle("#B279A2", "diamond", 11, "trait, preference, value, belief"),
    NodeType.GOAL: NodeStyle("#F58518", "star", 13, "task, project, reminder, todo"),
    NodeType.ENTITY: NodeStyle("#54A24B", "square", 9, "person, place, org, topic, thing"),
    NodeType.ENTRY: NodeStyle("#8C8C8C", "triangleDown", 10, "the text you wrote"),
    NodeType.PASSAGE: NodeStyle("#BAB0AC", "dot", 6, "a sentence of an entry"),
}
LINK_COLOURS: dict[LinkType, str] = {
    LinkType.NEXT: "#4C78A8",
    LinkType.DERIVED_FROM: "#B279A2",
    LinkType.MENTIONS: "#A8B8A0",
    LinkType.FROM_ENTRY: "#9D9DA0",
    LinkType.PART_OF: "#C8C0BC",
    # Changes of mind stand out: a red arrow from the new memory to the one it replaced, orange to the causing entry.
    LinkType.SUPERSEDES: "#E45756",
    LinkType.CHANGED_BY: "#F58518",
}
CHANGE_LINKS = (LinkType.SUPERSEDES, LinkType.CHANGED_BY)
HIGHLIGHT_COLOUR = "#D62728"
FOCUS_COLOUR = "#111111"
MAX_LABEL_CHARS = 28
MAX_TOOLTIP_CHARS = 400

# pyvis 0.3.2's template (the version is pinned): the anchors below are where the extra script and legend go.
_DATA_ANCHOR = "data = {nodes: nodes, edges: edges};"
_RETURN_ANCHOR = "return network;"
_CONTAINER_ANCHOR = '<div id="mynetwork" class="card-body"></div>'
_REMOTE_LINK = re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"']?(?:https?:)?//[^>]*>", re.IGNORECASE)
_REMOTE_SCRIPT = re.compile(
    r"<script\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//[^>]*>\s*</script>", re.IGNORECASE | re.DOTALL
)
_EMPTY_HEADING = re.compile(r"<center>\s*<h1>\s*</h1>\s*</center>", re.IGNORECASE)
_REMOTE_REFERENCE = re.compile(r"\b(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//[^\s\"'>]*", re.IGNORECASE)

# Turns each node's escaped ``tip`` into a DOM element: vis-network 9 shows a string ``title`` as plain text, and
# pyvis switches to an ``innerHTML`` popup when a title contains "href"; a ``tip`` field avoids both surprises.
_TOOLTIP_SCRIPT = """
                  nodes.update(nodes.get().filter(function (n) { return typeof n.tip === "string"; })
                      .map(function (n) {
                          var box = document.createElement("div");
                          box.className = "persona-tip";
                          box.innerHTML = n.tip;  // escaped by persona.viz
                          return {id: n.id, title: box};
                      }));
"""
# Once laid out, the graph stops moving: calmer to read, and a screenshot shows the settled layout.
_SETTLE_SCRIPT = """
                  network.once("stabilizationIterationsDone", function () {
                      network.setOptions({physics: {enabled: false}});
                      document.body.setAttribute("data-settled", "true");
                  });
                  {focus}
"""
_STYLE = """
<style>
  body { margin: 0; font-family: "Source Sans Pro", "Segoe UI", Roboto, sans-serif; }
  .card { border: none; }
  #mynetwork { border: 1px solid #E3E5E8 !important; border-radius: 8px; box-sizing: border-box; }
  .persona-tip { max-width: 360px; white-space: normal; font-size: 13px; line-height: 1.35; }
  #persona-legend { position: absolute; top: 8px; left: 8px; background: rgba(255,255,255,0.92);
    border: 1px solid #E3E5E8; border-radius: 6px; padding: 6px 10px; font-size: 12px; color: #333; z-index: 5; }
  #persona-legend span.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 5px;
    border-radius: 2px; vertical-align: middle; }
  #persona-cap { position: absolute; bottom: 8px; left: 8px; background: rgba(255,248,230,0.95);
    border: 1px solid #F2D39B; border-radius: 6px; padding: 4px 8px; font-size: 12px; color: #5A4200; z-index: 5; }
</style>
"""


def short(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters (whitespace folded, an ellipsis when cut)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: max(0, limit - 1)].rstrip() + "…"


def node_title(node: AnyNode) -> str:
    """The plain-text name of a node: an episode's or goal's title, a psyche's text, an entity's name."""
    match node:
        case Episode() | Goal():
            return node.title
        case Entity():
            return node.name
        case Entry() | Psyche() | Passage():
            return node.text
    return node.id


def node_date(node: AnyNode) -> str:
    """When it happened (``12 Jun 2026``), or an empty string for entities."""
    when = getattr(node, "occurred_at", None)
    return f"{when:%d %b %Y}" if when else ""


def node_kind(node: AnyNode) -> str:
    """The subtype (``preference``, ``task``, ``person``...) or an empty string."""
    kind = getattr(node, "kind", None)
    return kind.value if kind is not None else ""


def canvas_label(text: str) -> str:
    """A label as vis-network draws it: the text itself, on a canvas that has no markup.

    Node fonts keep ``multi`` off, so vis-network never parses a label: its HTML label parser (9.1.2, the version
    pyvis ships) decodes no entity at all (it drew "Barro &amp; wine" for "Barro & wine") and, for a label with a
    ``&``, compiles the whole label as a regular expression, so a label such as "Tom & me (work" stopped the
    drawing. Canvas text cannot run or load anything; the label only loses line breaks and runs of spaces.
    """
    return " ".join(text.split())


def tooltip_html(node: AnyNode, degree: int) -> str:
    """The hover card of a node as HTML; every value from the user's data goes through ``html.escape``."""
    heading = " · ".join(p for p in (node.type.value, node_kind(node), node_date(node)) if p)
    lines = [f"<b>{html.escape(heading)}</b>", html.escape(short(node_title(node), MAX_TOOLTIP_CHARS))]
    if isinstance(node, Episode) and node.summary != node.title:
        lines.append(html.escape(short(node.summary, MAX_TOOLTIP_CHARS)))
    if isinstance(node, Goal):
        lines.append(html.escape(f"status: {node.status.value}" + (f", due {node.due:%d %b %Y}" if node.due else "")))
    if isinstance(node, Entity) and node.aliases:
        lines.append(html.escape("also: " + ", ".join(node.aliases)))
    lines.append(f"<small>{degree} link{'s' if degree != 1 else ''}</small>")
    return "<br>".join(lines)


def node_size(node: AnyNode, degree: int) -> float:
    """Bigger for what matters: an episode's importance, a psyche's confidence, and how connected a node is."""
    size = TYPE_STYLES[node.type].base_size + min(16.0, 3.0 * math.sqrt(degree))
    if isinstance(node, Episode):
        size += 10 * node.importance
    elif isinstance(node, Psyche):
        size += 6 * node.confidence
    return round(size, 1)


def label_size(node: AnyNode, degree: int) -> int:
    """Hubs get bigger labels: zoomed out on a large graph, vis-network hides small labels, so the names that
    hold the graph together (Sarah, the important episodes) stay readable and the rest appear when zooming in."""
    if node.type is NodeType.ENTITY:
        return 13 + min(30, 3 * degree)
    if node.type is NodeType.EPISODE:
        return 12 + min(10, degree)
    return 12


def degrees(subgraph: Subgraph) -> Counter[str]:
    """How many drawn links touch each node."""
    counts: Counter[str] = Counter()
    for link in subgraph.links:
        counts[link.source_id] += 1
        counts[link.target_id] += 1
    return counts


def cap_message(subgraph: Subgraph) -> str | None:
    """What the node cap left out, in words; None when everything is drawn."""
    if not subgraph.truncated:
        return None
    shown, total = len(subgraph.nodes), max(subgraph.total_nodes, len(subgraph.nodes))
    return (
        f"Showing {shown:,} of {total:,} nodes ({total - shown:,} left out to keep the graph readable). "
        "Narrow the types or dates, search, or focus on a node to see the rest."
    )


def remote_references(page: str) -> list[str]:
    """Every ``src``/``href`` that points at the network (``http:``, ``https:`` or ``//``): should be none."""
    return _REMOTE_REFERENCE.findall(page)


def _node_options(node: AnyNode, degree: int, *, highlighted: bool, focused: bool) -> dict[str, object]:
    style = TYPE_STYLES[node.type]
    label = canvas_label(short(node_title(node), MAX_LABEL_CHARS))
    size = node_size(node, degree)
    colour: dict[str, object] = {"background": style.colour, "border": style.colour}
    border = 1
    if highlighted:
        colour["border"], border, size = HIGHLIGHT_COLOUR, 4, round(size * 1.35, 1)
    if focused:
        colour["border"], border, size = FOCUS_COLOUR, 5, round(size * 1.2, 1)
    return {
        "label": label,
        "shape": style.shape,
        "size": size,
        # "multi" off again: a node's own font settings replace the global ones in vis-network, not merge with them.
        "font": _label_font(label_size(node, degree), highlighted=highlighted),
        "color": colour,
        "borderWidth": border,
        "tip": tooltip_html(node, degree),
        "ptype": node.type.value,
        "highlighted": highlighted,
    }


def _label_font(size: int, *, highlighted: bool) -> dict[str, object]:
    """A node's label font: plain text (no markup parser, see ``canvas_label``), larger and darker when the node is
    a source of the last chat answer, with a white outline that keeps it legible where it crosses links."""
    font: dict[str, object] = {"size": size, "multi": False, "strokeWidth": 3, "strokeColor": "#ffffff"}
    if highlighted:
        font |= {"size": size + 3, "color": "#000000", "strokeWidth": 4}
    return font


def _options(physics: bool) -> dict[str, object]:
    return {
        # drawThreshold: zoomed out, only labels drawn above 8 px show (the hubs, see label_size).
        "nodes": {
            # A white outline keeps labels legible where they cross links.
            "font": {
                "multi": False,
                "size": 12,
                "face": "sans-serif",
                "color": "#222222",
                "strokeWidth": 3,
                "strokeColor": "#ffffff",
            },
            "scaling": {"label": {"drawThreshold": 8}},
        },
        "edges": {
            "arrows": {"to": {"enabled": True, "scaleFactor": 0.45}},
            "smooth": {"type": "continuous"},
            "width": 1.2,
        },
        "interaction": {"hover": True, "tooltipDelay": 120, "hideEdgesOnDrag": True},
        "physics": {
            "enabled": physics,
            "solver": "forceAtlas2Based",
            "forceAtlas2Based": {"gravitationalConstant": -55, "springLength": 90, "springConstant": 0.05},
            "stabilization": {"enabled": True, "iterations": 250, "fit": True},
            "minVelocity": 1.0,
        },
    }


def _legend(types: Iterable[NodeType], highlighted: bool) -> str:
    # Only fixed strings go into the legend: no user data.
    items = [
        f'<div><span class="swatch" style="background:{TYPE_STYLES[t].colour}"></span>'
        f"{t.value} <small>({TYPE_STYLES[t].shape}) {TYPE_STYLES[t].legend}</small></div>"
        for t in TYPE_STYLES
        if t in set(types)
    ]
    if highlighted:
        items.append(
            f'<div><span class="swatch" style="border:2px solid {HIGHLIGHT_COLOUR};background:#fff"></span>'
            "source of the last chat answer</div>"
        )
    return f'<div id="persona-legend">{"".join(items)}</div>'


def _meta(subgraph: Subgraph, highlighted: int) -> str:
    message = cap_message(subgraph)
    cap = f'<div id="persona-cap">{html.escape(message)}</div>' if message else ""
    return (
        f'<div id="persona-meta" hidden data-shown="{len(subgraph.nodes)}" data-links="{len(subgraph.links)}" '
        f'data-total-nodes="{subgraph.total_nodes}" data-truncated="{str(subgraph.truncated).lower()}" '
        f'data-highlighted="{highlighted}"></div>{cap}'
    )


_ENVIRONMENTS: list[Environment] = []


def _template_environment(fresh: Environment) -> Environment:
    """One Jinja environment for every network: it compiles pyvis's template (with ~700 kB of vis-network in line)
    once per process instead of on every render, which took most of the page's time."""
    if not _ENVIRONMENTS:
        _ENVIRONMENTS.append(fresh)
    return _ENVIRONMENTS[0]


def build_network(
    subgraph: Subgraph, *, highlight_ids: Iterable[str] = (), focus_id: str | None = None, height: int = 620
) -> Network:
    """The pyvis network of a subgraph: colour and shape per type, size by importance and degree."""
    net = Network(height=f"{height}px", width="100%", directed=True, cdn_resources="in_line")
    net.templateEnv = _template_environment(net.templateEnv)
    highlight = set(highlight_ids)
    counts = degrees(subgraph)
    for node in subgraph.nodes:
        options = _node_options(node, counts[node.id], highlighted=node.id in highlight, focused=node.id == focus_id)
        net.add_node(node.id, **options)
    known = {n.id for n in subgraph.nodes}
    for link in subgraph.links:
        if link.source_id in known and link.target_id in known:
            net.add_edge(
                link.source_id,
                link.target_id,
                title=link.type.value,
                color=LINK_COLOURS[link.type],
                width=2.2 if link.type in (LinkType.NEXT, *CHANGE_LINKS) else 1.0,
                dashes=link.type in (LinkType.FROM_ENTRY, *CHANGE_LINKS),
            )
    net.options = _options(physics=len(subgraph.nodes) > 1)
    return net


def render_graph(
    subgraph: Subgraph,
    *,
    highlight_ids: Iterable[str] = (),
    focus_id: str | None = None,
    height: int = 620,
) -> str:
    """A complete HTML page drawing ``subgraph``, with nothing loaded from the network.

    ``highlight_ids`` get a red border and a larger, darker label (the sources of a chat answer); ``focus_id`` a dark
    border and the selection. The page also carries the cap message and a ``#persona-meta`` element with the counts.
    """
    _check_template_is_offline()
    return _page(subgraph, highlight_ids=highlight_ids, focus_id=focus_id, height=height)


@lru_cache(maxsize=1)
def _check_template_is_offline() -> None:
    """Refuse to ship pages that reach out, if a pyvis upgrade changes its template. The check reads a page with no
    user data: journal text may well say "href=https://..." and is escaped data, not a reference."""
    leftover = remote_references(_page(Subgraph(), highlight_ids=(), focus_id=None, height=100))
    if leftover:
        raise RuntimeError(f"graph HTML still loads from the network: {leftover[:3]}")


def _page(subgraph: Subgraph, *, highlight_ids: Iterable[str], focus_id: str | None, height: int) -> str:
    highlight = [i for i in dict.fromkeys(highlight_ids) if i in {n.id for n in subgraph.nodes}]
    page = build_network(subgraph, highlight_ids=highlight, focus_id=focus_id, height=height).generate_html()
    page = strip_remote_assets(page)
    # The id goes into a script block: JSON, with "<" escaped so no text can close the block.
    focus = f"network.selectNodes([{_script_json(focus_id)}]);" if focus_id else ""
    page = _insert(page, _DATA_ANCHOR, _DATA_ANCHOR + _TOOLTIP_SCRIPT)
    page = _insert(page, _RETURN_ANCHOR, _SETTLE_SCRIPT.replace("{focus}", focus) + _RETURN_ANCHOR)
    overlay = _legend({n.type for n in subgraph.nodes}, bool(highlight)) + _meta(subgraph, len(highlight))
    page = _insert(page, _CONTAINER_ANCHOR, f'<div style="position:relative">{_CONTAINER_ANCHOR}{overlay}</div>')
    return page.replace("</head>", _STYLE + "</head>", 1)


def strip_remote_assets(page: str) -> str:
    """Remove the Bootstrap ``<link>``/``<script>`` tags and the empty heading that pyvis's template adds."""
    page = _REMOTE_LINK.sub("", page)
    page = _REMOTE_SCRIPT.sub("", page)
    return _EMPTY_HEADING.sub("", page)


def _script_json(value: object) -> str:
    """JSON for a ``<script>`` block, with ``<`` escaped so no value can close the block."""
    return json.dumps(value).replace("<", "\\u003c")


def _insert(page: str, anchor: str, replacement: str) -> str:
    if anchor not in page:
        raise RuntimeError(f"pyvis template changed: {anchor!r} not found")
    return page.replace(anchor, replacement, 1)


# -- the clickable graph (a bidirectional Streamlit component draws this data; see persona/static/graph.js) ------
GROUP_COLOUR = "#D9D4CF"
GROUP_PREFIX = "group:"
SETTLE_MS = 2000
"""The layout runs at most this long, then stops: a graph that keeps moving cannot be read."""
_STATIC = Path(__file__).with_name("static")


@dataclass(frozen=True)
class NodeGroup:
    """Nodes the cap left out, drawn as one box: the episodes of a month, the entities of a kind."""

    key: str
    label: str
    count: int
    type: NodeType


def group_left_out(left_out: Iterable[AnyNode], *, max_groups: int = 12) -> list[NodeGroup]:
    """Group nodes that did not fit under the cap: dated memories by type and month, entities by kind.

    The largest groups come first; beyond ``max_groups`` the rest are folded into one "other" group per type, so
    the count of what is not drawn is always complete.
    """
    counts: Counter[tuple[NodeType, str]] = Counter()
    for node in left_out:
        when = getattr(node, "occurred_at", None)
        bucket = f"{when:%Y-%m}" if when is not None else (node_kind(node) or "other")
        counts[(node.type, bucket)] += 1
    ranked = counts.most_common()
    groups = [_group(kind, bucket, n) for (kind, bucket), n in ranked[:max_groups]]
    rest: Counter[NodeType] = Counter()
    for (kind, _bucket), n in ranked[max_groups:]:
        rest[kind] += n
    groups += [_group(kind, "more", n) for kind, n in rest.items()]
    return groups


_PLURALS = {NodeType.ENTITY: "entities", NodeType.PSYCHE: "psyche", NodeType.ENTRY: "entries"}


def count_of(kind: NodeType, count: int) -> str:
    """``3 episodes``, ``1 entity``, ``2 entities``."""
    word = kind.value.lower() if count == 1 else _PLURALS.get(kind, f"{kind.value.lower()}s")
    return f"{count:,} {word}"


def _group(kind: NodeType, bucket: str, count: int) -> NodeGroup:
    if bucket == "more":
        where = "in other groups"
    elif re.fullmatch(r"\d{4}-\d{2}", bucket):
        where = datetime.strptime(bucket, "%Y-%m").strftime("%b %Y")
    else:
        where = bucket
    return NodeGroup(f"{GROUP_PREFIX}{kind.value}:{bucket}", f"+{count_of(kind, count)} · {where}", count, kind)


def grouped_message(groups: Sequence[NodeGroup]) -> str | None:
    """What the grey boxes stand for, in one sentence; None when nothing was grouped."""
    if not groups:
        return None
    total = sum(g.count for g in groups)
    by_type: Counter[NodeType] = Counter()
    for group in groups:
        by_type[group.type] += group.count
    parts = ", ".join(count_of(t, n) for t, n in by_type.most_common())
    return (
        f"{total:,} nodes beyond the cap are grouped into {len(groups)} grey boxes ({parts}): "
        "episodes, psyche and goals by month, entities by kind."
    )


def graph_data(
    subgraph: Subgraph,
    *,
    highlight_ids: Iterable[str] = (),
    focus_id: str | None = None,
    zoom_to: str | None = None,
    groups: Sequence[NodeGroup] = (),
) -> dict[str, object]:
    """What the clickable graph component draws: pyvis's nodes, edges and options, plus the legend, the cap note
    and grouped boxes. Labels are plain canvas text (``canvas_label``) and tooltips are escaped with ``html.escape``
    (``tooltip_html``); the component puts nothing else from the data into the page as markup.
    """
    drawn = {n.id for n in subgraph.nodes}
    highlight = [i for i in dict.fromkeys(highlight_ids) if i in drawn]
    net = build_network(subgraph, highlight_ids=highlight, focus_id=focus_id)
    nodes = [dict(node) for node in net.nodes] + [_group_node(g) for g in groups]
    edges = [dict(edge) for edge in net.edges]
    options = dict(net.options)
    physics = dict(options["physics"])  # type: ignore[arg-type]
    # Stabilise in the background, in small batches, so the page stays responsive; the component stops it.
    physics["stabilization"] = {"enabled": True, "iterations": 400, "updateInterval": 25, "fit": True}
    options["physics"] = physics
    # vis-network's "improved layout" (a Kamada-Kawai pre-pass) takes seconds at a few hundred nodes.
    options["layout"] = {"improvedLayout": False}
    legend = [
        {"type": t.value, "colour": TYPE_STYLES[t].colour, "shape": TYPE_STYLES[t].shape, "text": TYPE_STYLES[t].legend}
        for t in TYPE_STYLES
        if t in {n.type for n in subgraph.nodes}
    ]
    notes = [m for m in (cap_message(subgraph) if not groups else None, grouped_message(groups)) if m]
    payload: dict[str, object] = {
        "nodes": nodes,
        "edges": edges,
        "options": options,
        "legend": legend,
        "highlighted": bool(highlight),
        "notes": notes,
        "focus": focus_id if focus_id in drawn else None,
        "zoom_to": zoom_to if zoom_to in drawn else None,
        "settle_ms": SETTLE_MS,
    }
    payload["signature"] = hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return payload


def _group_node(group: NodeGroup) -> dict[str, object]:
    return {
        "id": group.key,
        "label": canvas_label(group.label),
        "shape": "box",
        "color": {"background": GROUP_COLOUR, "border": "#A39B94"},
        "font": {"size": 13, "multi": False, "color": "#333333"},
        "tip": html.escape(f"{group.label}: not drawn, to keep the graph readable. Narrow the dates or types."),
        "ptype": "Group",
        "count": group.count,
    }


@lru_cache(maxsize=1)
def graph_component_js() -> str:
    """The component's JavaScript: the vis-network script pyvis ships (local, nothing from the network), then
    ``graph.js``. vis-network's UMD wrapper sets ``globalThis.vis`` when loaded as a module."""
    vis = (Path(pyvis.__file__).parent / "templates" / "lib" / "vis-9.1.2" / "vis-network.min.js").read_text()
    return vis + "\n;\n" + (_STATIC / "graph.js").read_text()


@lru_cache(maxsize=1)
def graph_component_css() -> str:
    """The component's styles (legend, notes, tooltip, find box)."""
    return (_STATIC / "graph.css").read_text()
