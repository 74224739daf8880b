"""persona.viz: the pyvis page has the nodes, escaped text, no network references, the cap data, highlights."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from persona.models import (
    Entity,
    EntityKind,
    Entry,
    Episode,
    Goal,
    GoalKind,
    Link,
    LinkType,
    Psyche,
    PsycheKind,
    Subgraph,
)
from persona.viz import (
    FOCUS_COLOUR,
    GROUP_PREFIX,
    HIGHLIGHT_COLOUR,
    TYPE_STYLES,
    canvas_label,
    cap_message,
    graph_component_css,
    graph_component_js,
    graph_data,
    group_left_out,
    grouped_message,
    remote_references,
    render_graph,
    strip_remote_assets,
    tooltip_html,
)

USER = "demo"
WHEN = datetime(2026, 6, 1, 9, tzinfo=UTC)
XSS = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


def graph(*, truncated: bool = False, total: int = 0) -> Subgraph:
    """An episode with hostile text, a psyche, a goal and two entities, linked."""
    entry = Entry(user_id=USER, text="x", occurred_at=WHEN)
    common = {"user_id": USER, "entry_id": entry.id, "occurred_at": WHEN}
    episode = Episode(title=XSS, summary=f"With Sarah {IMG} & friends", importance=0.9, **common)
    psyche = Psyche(kind=PsycheKind.PREFERENCE, text="I love 'quiet' mornings", confidence=0.8, **common)
    goal = Goal(kind=GoalKind.PROJECT, title="Run a half marathon", text="href=javascript:alert(1)", **common)
    sarah = Entity(user_id=USER, name="Sarah", kind=EntityKind.PERSON)
    place = Entity(user_id=USER, name=f"Café {XSS}", kind=EntityKind.PLACE)
    links = [
        Link(type=LinkType.DERIVED_FROM, source_id=psyche.id, target_id=episode.id),
        Link(type=LinkType.DERIVED_FROM, source_id=goal.id, target_id=episode.id),
        Link(type=LinkType.MENTIONS, source_id=episode.id, target_id=sarah.id),
        Link(type=LinkType.MENTIONS, source_id=episode.id, target_id=place.id),
    ]
    nodes = [episode, psyche, goal, sarah, place]
    return Subgraph(nodes=nodes, links=links, truncated=truncated, total_nodes=total or len(nodes))


def node_data(page: str) -> list[dict]:
    """The node list pyvis embedded in the page (as JSON)."""
    match = re.search(r"nodes = new vis\.DataSet\((\[.*?\])\);", page, re.DOTALL)
    assert match, "node data not found"
    return json.loads(match.group(1))


def test_page_has_every_node_and_link() -> None:
    sub = graph()
    page = render_graph(sub)
    ids = {n["id"] for n in node_data(page)}
    assert ids == {n.id for n in sub.nodes}
    assert page.count('"title": "MENTIONS"') == 2 and page.count('"title": "DERIVED_FROM"') == 2
    assert 'data-shown="5"' in page and 'data-links="4"' in page


def test_hostile_text_appears_only_escaped() -> None:
    page = render_graph(graph())
    assert XSS not in page and IMG not in page
    assert "onerror=alert(1)>" not in page
    data = {n["ptype"]: n for n in node_data(page)}
    episode = data["Episode"]
    assert episode["label"] == "<script>alert(1)</script>", "drawn as canvas text, never parsed"
    assert episode["font"]["multi"] is False
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in episode["tip"]
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; friends" in episode["tip"]
    assert "&#x27;quiet&#x27;" in data["Psyche"]["tip"]


def test_no_network_references_remain() -> None:
    page = render_graph(graph())
    assert remote_references(page) == []
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", page, re.IGNORECASE)
    assert "bootstrap" not in page.lower()
    assert "vis-network" in page, "vis-network is embedded in line"


def test_strip_remote_assets_removes_link_and_script_tags() -> None:
    raw = (
        '<link href="https://cdn.example/b.css" rel="stylesheet" />'
        '<script src="https://cdn.example/b.js" crossorigin="anonymous"></script><center><h1></h1></center><p>ok</p>'
    )
    assert strip_remote_assets(raw) == "<p>ok</p>"
    assert remote_references('<img src="//cdn.example/x.png">') == ['src="//cdn.example/x.png']


def test_a_title_with_href_does_not_switch_pyvis_to_raw_html_popups() -> None:
    page = render_graph(graph())
    # pyvis turns on an innerHTML popup when a node "title" contains "href"; tooltips travel as "tip" instead.
    assert "popup.innerHTML" not in page
    assert all("title" not in n for n in node_data(page))


def test_cap_message_says_what_was_left_out() -> None:
    assert cap_message(graph()) is None
    sub = graph(truncated=True, total=1234)
    message = cap_message(sub)
    assert message is not None and "5 of 1,234" in message and "1,229 left out" in message
    page = render_graph(sub)
    assert 'data-truncated="true"' in page and 'data-total-nodes="1234"' in page
    assert "1,229 left out" in page


def test_highlighted_and_focused_nodes_are_styled() -> None:
    sub = graph()
    episode, goal = sub.nodes[0], sub.nodes[2]
    page = render_graph(sub, highlight_ids=[episode.id, "not-drawn"], focus_id=goal.id)
    data = {n["id"]: n for n in node_data(page)}
    assert data[episode.id]["highlighted"] is True
    assert data[episode.id]["color"]["border"] == HIGHLIGHT_COLOUR and data[episode.id]["borderWidth"] == 4
    assert data[episode.id]["font"]["size"] > data[goal.id]["font"]["size"] - 3, "a highlighted label is larger"
    assert data[episode.id]["font"]["color"] == "#000000" and "color" not in data[goal.id]["font"]
    assert data[goal.id]["color"]["border"] == FOCUS_COLOUR
    assert f'network.selectNodes(["{goal.id}"])' in page
    assert 'data-highlighted="1"' in page and "source of the last chat answer" in page


def test_colour_and_shape_per_type_and_size_by_importance() -> None:
    data = {n["ptype"]: n for n in node_data(render_graph(graph()))}
    for type_name, node in data.items():
        style = next(s for t, s in TYPE_STYLES.items() if t.value == type_name)
        assert node["shape"] == style.shape and node["color"]["background"] == style.colour
    assert data["Episode"]["size"] > data["Psyche"]["size"]
    # Each node's own font turns vis-network's label parser off again (a node's font replaces the global one).
    assert all(n["font"]["multi"] is False for n in data.values())


@pytest.mark.parametrize("text", ["Barro & wine", "<b>bold</b>", "x < y", "Tom & me (work", "Zoë 🙂", "מה שלומך"])
def test_canvas_labels_are_the_text_a_person_reads(text: str) -> None:
    # vis-network 9.1.2's html label parser decodes no entity ("&amp;" was drawn as such) and compiled a label
    # holding "&" as a regular expression ("Tom & me (work" threw): labels go as plain text with the parser off.
    assert canvas_label(text) == text
    assert canvas_label(f"  {text}\n second  line ") == f"{text} second line"


def test_tooltip_escapes_every_value() -> None:
    sub = graph()
    tip = tooltip_html(sub.nodes[4], 1)
    assert "<script>" not in tip and "Café &lt;script&gt;" in tip


def test_empty_and_single_node_graphs_render() -> None:
    assert "vis.Network" in render_graph(Subgraph())
    one = graph().nodes[:1]
    assert '"enabled": false' in render_graph(Subgraph(nodes=one, total_nodes=1))


def test_journal_text_that_mentions_a_url_still_renders() -> None:
    """Text like `href=https://...` is escaped data, not a reference: the page renders and stays offline."""
    user = "viz-user"
    episode = Episode(
        user_id=user,
        entry_id="e1",
        occurred_at=datetime(2024, 3, 1, tzinfo=UTC),
        title='Fixed the link href="https://example.com/x"',
        summary="<a href='//evil.example/steal'>click</a> src=https://example.com/a.js",
    )
    page = render_graph(Subgraph(nodes=[episode], total_nodes=1))
    assert "Fixed the link" in page
    assert not re.search(r"<a href='//evil", page)


# -- the clickable graph component's data ----------------------------------------------------------------------
def test_graph_data_has_the_nodes_escaped_and_the_component_script_is_local() -> None:
    sub = graph()
    data = graph_data(sub, highlight_ids=[sub.nodes[0].id, "not-drawn"], focus_id=sub.nodes[2].id)
    assert [n["id"] for n in data["nodes"]] == [n.id for n in sub.nodes]
    assert len(data["edges"]) == len(sub.links)
    tips = json.dumps([n["tip"] for n in data["nodes"]])
    assert XSS not in tips and IMG not in tips, "tooltips (the only node text that becomes markup) are escaped"
    episode = next(n for n in data["nodes"] if n["ptype"] == "Episode")
    assert episode["label"] == "<script>alert(1)</script>" and episode["font"]["multi"] is False, "canvas text"
    assert "&lt;img" in episode["tip"] and "<img" not in episode["tip"], "tooltip escaped with html.escape"
    assert data["focus"] == sub.nodes[2].id and data["highlighted"] is True
    assert data["options"]["physics"]["enabled"] is True and data["settle_ms"] <= 2000
    assert data["options"]["layout"] == {"improvedLayout": False}
    script = graph_component_js()
    assert "vis.Network" in script and script.rstrip().endswith("}")
    assert remote_references(script + graph_component_css()) == []


def test_graph_data_signature_follows_the_graph_only() -> None:
    sub = graph()
    assert graph_data(sub)["signature"] == graph_data(sub)["signature"], "a rerun keeps the drawn graph"
    assert graph_data(sub)["signature"] != graph_data(sub, focus_id=sub.nodes[1].id)["signature"]


def test_left_out_nodes_are_grouped_by_month_and_kind_and_all_counted() -> None:
    june = [Episode(user_id=USER, entry_id="e", title=f"J{i}", summary="s", occurred_at=WHEN) for i in range(5)]
    july = [Episode(user_id=USER, entry_id="e", title="J", summary="s", occurred_at=datetime(2026, 7, 2, tzinfo=UTC))]
    people = [Entity(user_id=USER, name=f"P{i}", kind=EntityKind.PERSON) for i in range(3)]
    groups = group_left_out([*june, *july, *people])
    labels = {g.label: g.count for g in groups}
    assert labels == {"+5 episodes · Jun 2026": 5, "+3 entities · person": 3, "+1 episode · Jul 2026": 1}
    folded = group_left_out([*june, *july, *people], max_groups=1)
    assert sum(g.count for g in folded) == 9, "beyond max_groups the rest is folded, never dropped"
    message = grouped_message(groups)
    assert message is not None and message.startswith("9 nodes beyond the cap are grouped into 3 grey boxes")
    data = graph_data(graph(truncated=True, total=14), groups=groups)
    boxes = [n for n in data["nodes"] if n["ptype"] == "Group"]
    assert [b["count"] for b in boxes] == [5, 3, 1] and all(b["id"].startswith(GROUP_PREFIX) for b in boxes)
    assert data["notes"] == [message]
