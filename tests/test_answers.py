"""persona.answers: one readable item per entry with the matching sentence, and follow-up questions."""

from __future__ import annotations

from datetime import UTC, datetime

from persona.answers import answer_items, best_sentence, highlight_markdown, is_follow_up, resolve_follow_up
from persona.ingest import ingest_entry
from persona.retrieval import RetrievalQuery, retrieve

JUNE = datetime(2026, 6, 1, 9, tzinfo=UTC)
JULY = datetime(2026, 7, 5, 9, tzinfo=UTC)
AUGUST = datetime(2026, 8, 9, 9, tzinfo=UTC)


def test_one_item_per_entry_dated_with_the_matching_sentence(store, provider, user) -> None:
    ingest_entry(
        store,
        provider,
        user,
        "Slow morning at home. Went sailing with Marta on the river in the afternoon. Pasta for dinner.",
        occurred_at=JUNE,
    )
    ingest_entry(store, provider, user, "Finished the tax forms. Marta called about the boat.", occurred_at=JULY)
    question = "When did I go sailing with Marta?"
    sources = retrieve(store, provider.embedder, user, RetrievalQuery(text=question, limit=12))
    entry_ids = {getattr(s.node, "entry_id", None) or s.node.id for s in sources}
    items = answer_items(sources, question, top=50)
    assert len(items) == len(entry_ids), "a passage and its own episode are one item"
    assert len({i.key for i in items}) == len(items)
    first = items[0]
    assert first.sentence == "Went sailing with Marta on the river in the afternoon."
    assert first.when == JUNE and first.why
    assert first.title not in first.text or first.text.startswith(first.title), "the title is not repeated inside"
    assert {i for item in items for i in item.ids} == {s.node.id for s in sources}, "every source is cited once"


def test_best_sentence_and_highlight_are_escaped() -> None:
    text = "Nothing here. I met <b>Tom</b> at the *market* today! Home late."
    sentence = best_sentence([text], "Where did I meet Tom?")
    assert sentence == "I met <b>Tom</b> at the *market* today!"
    marked = highlight_markdown(text, sentence)
    assert marked.startswith("Nothing here\\. **I met \\<b\\>Tom\\</b\\>")
    assert "<b>" not in marked and "\\*market\\*" in marked
    assert highlight_markdown("Other text.", "Missing.").startswith("**Missing\\.**")


def test_a_follow_up_is_read_with_the_previous_question_and_its_dates() -> None:
    history = [
        {"role": "user", "content": "What did I do with Marta?"},
        {"role": "assistant", "content": "...", "when": [JUNE.isoformat(), JULY.isoformat()]},
    ]
    assert is_follow_up("and after that?") and is_follow_up("what else?") and not is_follow_up("Who is Tom?")
    after = resolve_follow_up("and after that?", history)
    assert after.text == "What did I do with Marta? and after that?"
    assert after.start is not None and after.start > JULY and after.end is None
    before = resolve_follow_up("and before that?", history)
    assert before.end == JUNE and before.start is None
    assert resolve_follow_up("Who is Tom?", history).text == "Who is Tom?", "a new question stands alone"
    assert resolve_follow_up("and after that?", []).text == "and after that?"


def test_a_memory_no_longer_true_is_marked_as_the_text_answer_marks_it(store, provider, user) -> None:
    """The Chat page's offline items and the API's offline text are two renderings of one answer: a belief the
    user changed their mind about says so in both."""
    from persona.chat import extractive_answer
    from persona.models import NodeType
    from persona.retrieval import RetrievedMemory

    ingest_entry(store, provider, user, "I love coffee, it gets me going.", occurred_at=JUNE)
    ingest_entry(store, provider, user, "I quit coffee last month, green tea now.", occurred_at=AUGUST)
    old = next(p for p in store.list_nodes(user, NodeType.PSYCHE) if "love coffee" in p.text.lower())
    assert old.valid_until is not None, "the later entry replaced it"
    episode = next(e for e in store.list_nodes(user, NodeType.EPISODE) if e.entry_id == old.entry_id)
    alone = answer_items([RetrievedMemory(old, 1.0, {}, "words")], "coffee?")
    assert alone[0].title.endswith("(no longer true since 9 August 2026)")
    assert "(no longer true since 9 August 2026)" in extractive_answer([RetrievedMemory(old, 1.0, {}, "words")])
    behind_episode = answer_items([RetrievedMemory(n, 1.0, {}, "words") for n in (episode, old)], "coffee?")
    assert "no longer true" not in behind_episode[0].title, "the episode itself is still what happened"
    assert behind_episode[0].why.endswith("psyche no longer true since 9 August 2026")
