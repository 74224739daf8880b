"""Chat: ask your memory. Answers stream in (offline: one readable item per entry, dated, the matching sentence in
bold, a one-line why), cite memory ids, and list their sources; a follow-up ("and after that?") is read with the
earlier turns; "Show in graph" highlights the sources on the graph page."""

from __future__ import annotations

import streamlit as st

import app_support as ui
from persona.answers import answer_items, highlight_markdown, resolve_follow_up
from persona.chat import OFFLINE_LABEL, answer
from persona.errors import PersonaError
from persona.views import safe_markdown, source_rows

HISTORY_KEY = "chat_history"

store, provider, user = ui.context()
st.title("Chat")
if provider.offline:
    st.info(
        "Offline: answers are the memories that match best, cited, with no language model. "
        "Set OPENAI_API_KEY or OPENAI_BASE_URL for written answers.",
        icon=":material/cloud_off:",
    )

# One history per persona: switching persona must not show another person's answers.
histories: dict[str, list[dict]] = st.session_state.setdefault(HISTORY_KEY, {})
history = histories.setdefault(user, [])


def show_sources(turn: dict[str, object], number: int) -> None:
    """The sources of one answer, and the button that shows them in the graph."""
    sources = turn.get("sources") or []
    if not sources:
        return
    with st.expander(f"Sources ({len(sources)})", icon=":material/library_books:"):
        cited = set(turn.get("cited") or [])
        for row in sources:
            mark = " · **cited**" if row["id"] in cited else ""
            kind = f" · {row['kind']}" if row["kind"] else ""
            date = f" · {row['date']}" if row["date"] else ""
            st.markdown(f"{ui.TYPE_ICONS.get(row['type'], '')} **{row['type']}**{kind}{date}{mark}")
            st.markdown(safe_markdown(row["text"]))
            st.caption(f"Why: {safe_markdown(row['reason'])} · {row['shares']} · id {row['id']}")
    if st.button("Show in graph", key=f"chat-graph-{number}", icon=":material/hub:"):
        st.session_state[ui.HIGHLIGHT_KEY] = [row["id"] for row in sources]
        ui.go_to_page("pages/graph.py", "Graph")


def show_items(turn: dict[str, object]) -> None:
    """An offline answer as one item per entry: date and title, the text with the matching sentence in bold, why."""
    items = turn.get("items") or []
    st.markdown(OFFLINE_LABEL if items else safe_markdown(str(turn["content"])))
    for item in items:
        with st.container(border=True):
            date = f"{item['date']} · " if item["date"] else ""
            st.markdown(f"**{safe_markdown(date)}{safe_markdown(item['title'])}**")
            body = item["text"] or (item["sentence"] if item["sentence"] != item["title"] else "")
            if body:  # an entity's item is its name: the title says it once
                st.markdown(highlight_markdown(body, item["sentence"]))
            cites = " ".join(f"[{i}]" for i in item["ids"][:1])
            st.caption(f"Why: {safe_markdown(item['why'])} · {cites}")


def show_turn(turn: dict[str, object]) -> None:
    """One turn's text: the question, a model's answer, or the offline items."""
    if turn["role"] == "assistant" and turn.get("offline"):
        st.badge("offline answer", icon=":material/cloud_off:", color="orange")
        if turn.get("note"):
            st.caption(safe_markdown(f"Read as a follow-up: {turn['note']}."))
        show_items(turn)
    else:
        st.markdown(safe_markdown(str(turn["content"])))


def replay() -> None:
    """Earlier turns of this session."""
    for number, turn in enumerate(history):
        with st.chat_message(turn["role"]):
            show_turn(turn)
            if turn.get("error"):
                st.warning(safe_markdown(turn["error"]))
            show_sources(turn, number)


def ask(question: str) -> None:
    """Answer ``question``: stream it, then keep it (with its sources) in the history."""
    with st.chat_message("user"):
        st.markdown(safe_markdown(question))
    earlier = [{"role": t["role"], "content": t["content"]} for t in history]
    follow_up = resolve_follow_up(question, history)
    history.append({"role": "user", "content": question, "search": follow_up.text})
    with st.chat_message("assistant"):
        try:
            reply = answer(
                store,
                provider,
                user,
                question,
                history=earlier,
                search=follow_up.text,
                start=follow_up.start,
                end=follow_up.end,
            )
        except PersonaError as exc:
            st.error(safe_markdown(str(exc)))
            history.append({"role": "assistant", "content": f"(no answer: {exc})"})
            return
        items = [i.as_dict() for i in answer_items(reply.sources, follow_up.text)] if reply.offline else []
        turn = {
            "role": "assistant",
            "content": "",
            "offline": reply.offline,
            "items": items,
            "when": [i["when"] for i in items if i["when"]],
            "note": follow_up.note,
            "sources": source_rows(reply.sources),
            "cited": [],
            "error": None,
        }
        if reply.offline:
            turn["content"] = reply.complete()
            show_turn(turn)
        else:
            # Escaped per token: the model may quote journal text, which must stay text.
            st.write_stream(safe_markdown(token) for token in reply)
            turn["content"] = reply.text
            turn["when"] = [d.isoformat() for s in reply.sources if (d := getattr(s.node, "occurred_at", None))]
        turn["cited"], turn["error"] = reply.cited_ids, reply.error
        if reply.error:
            st.warning(safe_markdown(reply.error))
        history.append(turn)
        show_sources(turn, len(history) - 1)


replay()
question = st.chat_input("Ask about your memories, e.g. “What did I do with Sarah?”", key="chat_input")
if question:
    ask(question)
if history and st.button("Clear the conversation", key="chat_clear", type="tertiary", icon=":material/delete_sweep:"):
    histories[user] = []
    st.rerun()
