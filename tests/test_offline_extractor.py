"""The offline (rule-based) extractor: quality on a hand-labelled set, due dates, and robustness.

Quality is measured on ``tests/data/labelled_entries.jsonl`` (52 development entries, labelled before the rules were
written and then used to write them, and 16 ``"split": "heldout"`` entries written afterwards). The first held-out
measurement was goals P 1.00 / R 0.83, psyche 1.00 / 1.00, entities 1.00 / 0.93; it exposed two bugs that were then
fixed ("Mark" read as the plural of the month "Mar"; "Grocery list for ...:" not seen as a to-do heading) and one
inconsistent gold due date (an item under "... for Saturday:" without the date its neighbours had). Since then the
held-out numbers are no longer blind: treat both sets as regression tests, and add new held-out entries before
trusting a new number. Run with ``-s`` to see the table.

Matching:
- a predicted goal matches a gold goal when every gold ``title_keywords`` word occurs (case-insensitively) in the
  predicted title or text; a predicted psyche item matches when every gold ``keywords`` word occurs in its text.
  Pairs are matched one-to-one, greedily, in order. Kind, due date and status accuracy are reported over the matched
  pairs, separately from precision and recall.
- a predicted entity matches a gold one when their canonical names are equal (a predicted alias counts too).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persona.errors import ProviderError
from persona.llm.base import Extraction
from persona.llm.dates import parse_due
from persona.llm.embedding import HashEmbedder
from persona.llm.offline import MAX_GOALS, MAX_PSYCHE, OfflineProvider, extract_offline, split_sentences
from persona.models import canonical_name

DATA = Path(__file__).parent / "data" / "labelled_entries.jsonl"
WHEN = datetime(2024, 3, 12, 20, 0, tzinfo=UTC)  # a Tuesday
TODAY = WHEN.date()

# (precision, recall) floors a little below what the rules measure today (see the printed table); falling below one
# is a regression. The held-out set is small (12 goals, 5 psyche, 15 entities): one miss moves it by 0.07-0.2.
FLOORS = {
    ("dev", "goals"): (0.93, 0.93),
    ("dev", "psyche"): (0.93, 0.85),
    ("dev", "entities"): (0.93, 0.93),
    ("heldout", "goals"): (0.9, 0.8),
    ("heldout", "psyche"): (0.8, 0.8),
    ("heldout", "entities"): (0.9, 0.85),
}
# Kind accuracy over matched pairs, both splits together.
KIND_FLOORS = {"goals": 0.9, "psyche": 0.9, "entities": 0.8}


def _load() -> list[dict[str, Any]]:
    with DATA.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@dataclass
class Score:
    """Counts for one kind of item on one split."""

    predicted: int = 0
    gold: int = 0
    matched: int = 0
    same_kind: int = 0
    extra: dict[str, list[int]] = field(default_factory=dict)  # name -> [right, total] over matched pairs

    @property
    def precision(self) -> float:
        return self.matched / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.gold if self.gold else 1.0

    def note(self, name: str, right: bool) -> None:
        counts = self.extra.setdefault(name, [0, 0])
        counts[0] += int(right)
        counts[1] += 1


def _contains_all(text: str, keywords: list[str]) -> bool:
    lowered = text.lower()
    return all(k.lower() in lowered for k in keywords)


def _match(predicted: list[Any], gold: list[dict[str, Any]], text_of, keys_of) -> list[tuple[Any, dict[str, Any]]]:
    """Greedy one-to-one matching, gold in order, each taking the first free prediction that contains its keys."""
    free = list(predicted)
    pairs = []
    for item in gold:
        for candidate in free:
            if _contains_all(text_of(candidate), keys_of(item)):
                pairs.append((candidate, item))
                free.remove(candidate)
                break
    return pairs


def _score_entry(entry: dict[str, Any], result: Extraction, scores: dict[str, Score]) -> None:
    goals, psyche, entities = scores["goals"], scores["psyche"], scores["entities"]
    goals.predicted += len(result.goals)
    goals.gold += len(entry["goals"])
    for pred, gold in _match(
        result.goals, entry["goals"], lambda g: f"{g.title} {g.text}", lambda g: g["title_keywords"]
    ):
        goals.matched += 1
        goals.same_kind += pred.kind.value == gold["kind"]
        goals.note("due", (pred.due.isoformat() if pred.due else None) == gold["due"])
        goals.note("status", pred.status.value == gold.get("status", "active"))
    psyche.predicted += len(result.psyche)
    psyche.gold += len(entry["psyche"])
    for pred, gold in _match(result.psyche, entry["psyche"], lambda p: p.text, lambda p: p["keywords"]):
        psyche.matched += 1
        psyche.same_kind += pred.kind.value == gold["kind"]
    entities.predicted += len(result.entities)
    entities.gold += len(entry["entities"])
    names = {}
    for entity in result.entities:
        for name in [entity.name, *entity.aliases]:
            names.setdefault(canonical_name(name), entity)
    for gold in entry["entities"]:
        found = names.get(canonical_name(gold["name"]))
        if found is not None:
            entities.matched += 1
            entities.same_kind += found.kind.value == gold["kind"]


@pytest.fixture(scope="module")
def evaluation() -> dict[str, dict[str, Score]]:
    results: dict[str, dict[str, Score]] = {}
    for entry in _load():
        split = entry.get("split", "dev")
        scores = results.setdefault(split, {"goals": Score(), "psyche": Score(), "entities": Score()})
        result = extract_offline(entry["text"], occurred_at=datetime.fromisoformat(entry["occurred_at"]))
        _score_entry(entry, result, scores)
    return results


def test_labelled_set_is_well_formed() -> None:
    entries = _load()
    assert len(entries) >= 40
    for entry in entries:
        assert set(entry) <= {"text", "occurred_at", "goals", "psyche", "entities", "split"}
        assert datetime.fromisoformat(entry["occurred_at"]).tzinfo is not None
        for goal in entry["goals"]:
            assert goal["kind"] in {"task", "project", "reminder", "todo"} and goal["title_keywords"]
            assert goal["due"] is None or date.fromisoformat(goal["due"])
        for item in entry["psyche"]:
            assert item["kind"] in {"trait", "preference", "value", "belief"} and item["keywords"]
        for entity in entry["entities"]:
            assert entity["kind"] in {"person", "place", "org", "topic", "thing"} and entity["name"]
    assert any(not e["goals"] and not e["psyche"] for e in entries), "some entries must have neither"


def test_quality_on_labelled_entries(evaluation: dict[str, dict[str, Score]]) -> None:
    lines = ["", f"{'split':8} {'what':9} {'gold':>5} {'pred':>5} {'P':>6} {'R':>6} {'kind':>6}  other (matched pairs)"]
    for split, scores in sorted(evaluation.items()):
        for what, s in scores.items():
            kind = s.same_kind / s.matched if s.matched else 1.0
            other = "  ".join(f"{k} {r}/{t}" for k, (r, t) in s.extra.items())
            lines.append(
                f"{split:8} {what:9} {s.gold:5} {s.predicted:5} {s.precision:6.2f} {s.recall:6.2f} {kind:6.2f}  {other}"
            )
    print("\n".join(lines))
    for (split, what), (min_p, min_r) in FLOORS.items():
        s = evaluation[split][what]
        assert s.precision >= min_p, f"{split} {what} precision {s.precision:.2f} < {min_p}"
        assert s.recall >= min_r, f"{split} {what} recall {s.recall:.2f} < {min_r}"
    for what, floor in KIND_FLOORS.items():
        right = sum(scores[what].same_kind for scores in evaluation.values())
        matched = sum(scores[what].matched for scores in evaluation.values())
        assert right / matched >= floor, f"{what} kind accuracy {right}/{matched} < {floor}"
    goals = [scores["goals"].extra for scores in evaluation.values()]
    for name in ("due", "status"):
        right, total = sum(g[name][0] for g in goals), sum(g[name][1] for g in goals)
        assert right / total >= 0.9, f"goal {name} accuracy {right}/{total} < 0.9"


# --- due dates ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [
        ("by Friday", date(2024, 3, 15)),
        ("I need to buy shoes by friday.", date(2024, 3, 15)),
        ("on Tuesday", date(2024, 3, 19)),  # today is Tuesday: the next one
        ("this Tuesday", date(2024, 3, 12)),
        ("next Tuesday", date(2024, 3, 19)),
        ("tomorrow", date(2024, 3, 13)),
        ("the day after tomorrow", date(2024, 3, 14)),
        ("tonight", date(2024, 3, 12)),
        ("next week", date(2024, 3, 19)),
        ("by the end of the week", date(2024, 3, 17)),
        ("this weekend", date(2024, 3, 16)),
        ("next weekend", date(2024, 3, 23)),
        ("next month", date(2024, 4, 1)),
        ("by the end of the month", date(2024, 3, 31)),
        ("by the end of next month", date(2024, 4, 30)),
        ("next year", date(2025, 1, 1)),
        ("in two weeks", date(2024, 3, 26)),
        ("in 3 days", date(2024, 3, 15)),
        ("in a couple of weeks", date(2024, 3, 26)),
        ("in a fortnight", date(2024, 3, 26)),
        ("in a month", date(2024, 4, 12)),
        ("3 days from now", date(2024, 3, 15)),
        ("on 12 March", date(2024, 3, 12)),
        ("on 11 March", date(2025, 3, 11)),  # already past this year: next year's
        ("March 20", date(2024, 3, 20)),
        ("the 15th of April", date(2024, 4, 15)),
        ("Mar 3rd, 2026", date(2026, 3, 3)),
        ("by the 25th", date(2024, 3, 25)),
        ("2024-11-05", date(2024, 11, 5)),
        ("by March", date(2025, 3, 1)),
        ("in May", date(2024, 5, 31)),
        ("end of June", date(2024, 6, 30)),
        ("Next week I'm back at yoga on Thursday", date(2024, 3, 14)),  # the more specific phrase wins
    ],
)
def test_parse_due(phrase: str, expected: date) -> None:
    assert parse_due(phrase, today=TODAY) == expected


@pytest.mark.parametrize(
    "phrase",
    ["", "12/03", "03.12.", "every Friday", "on Mondays", "I may go", "at 9:30", "by 31 February", "someday", "soon"],
)
def test_parse_due_gives_none(phrase: str) -> None:
    assert parse_due(phrase, today=TODAY) is None


def test_due_is_relative_to_the_entry_not_the_clock() -> None:
    old = datetime(2019, 12, 30, 9, 0, tzinfo=UTC)  # a Monday
    goal = extract_offline("I need to renew my passport by Friday.", occurred_at=old).goals[0]
    assert goal.due == date(2020, 1, 3)
    assert goal.title == "Renew my passport"


# --- extraction rules ----------------------------------------------------------------------------------------------


def test_goal_kinds_status_and_negatives() -> None:
    text = (
        "Remind me to call Mum on Sunday. I want to learn Spanish this year. I will never forget Lisbon. "
        'My sister wants to move to Oslo. Should I quit? I don\'t want to go back. She said "I need to rest".\n'
        "TODO:\n- [ ] pay rent\n- [x] book flights"
    )
    goals = extract_offline(text, occurred_at=WHEN).goals
    assert [(g.kind.value, g.title, g.status.value) for g in goals] == [
        ("reminder", "Call Mum", "active"),
        ("project", "Learn Spanish", "active"),
        ("todo", "Pay rent", "active"),
        ("todo", "Book flights", "done"),
    ]
    assert goals[0].due == date(2024, 3, 17) and goals[1].due == date(2024, 12, 31)
    assert goals[0].entities == ["Mum"] and goals[0].sentence == "Remind me to call Mum on Sunday."


def test_psyche_kinds() -> None:
    text = (
        "I love trail running. I value honesty. I believe that people can change. I'm a night owl. "
        "I tend to overthink. I can't believe it rained. Do I really like jazz?"
    )
    psyche = extract_offline(text, occurred_at=WHEN).psyche
    assert [(p.kind.value, p.text) for p in psyche] == [
        ("preference", "I love trail running"),
        ("value", "I value honesty"),
        ("belief", "I believe that people can change"),
        ("trait", "I'm a night owl"),
        ("trait", "I tend to overthink"),
    ]
    assert all(0 <= p.confidence <= 1 and p.sentence for p in psyche)


def test_entities_kinds_aliases_and_skips() -> None:
    text = (
        "On Monday I had lunch with Sarah Jones at Blue Bottle Cafe in Lisbon. Sarah works at Acme Corp. "
        "Then I called Dr. Patel. In March I will visit Porto. #running #running"
    )
    entities = {e.name: e for e in extract_offline(text, occurred_at=WHEN).entities}
    assert set(entities) == {"Sarah Jones", "Blue Bottle Cafe", "Lisbon", "Acme Corp", "Dr. Patel", "Porto", "running"}
    assert entities["Sarah Jones"].kind.value == "person" and entities["Sarah Jones"].aliases == ["Sarah"]
    assert entities["Blue Bottle Cafe"].kind.value == "place" and entities["Lisbon"].kind.value == "place"
    assert entities["Acme Corp"].kind.value == "org" and entities["Dr. Patel"].kind.value == "person"
    assert entities["running"].kind.value == "topic"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Finished the Q4 roadmap draft at Acme.", {"Acme": "org"}),
        ("Presented the H2 budget review at Initech with Sarah.", {"Initech": "org", "Sarah": "person"}),
        (
            "FY24 was a good year at the Lisbon office. Lunch at Porto with Tom.",
            {"Lisbon": "place", "Porto": "place", "Tom": "person"},
        ),
    ],
)
def test_period_codes_are_not_names_and_work_artefacts_point_at_orgs(text: str, expected: dict[str, str]) -> None:
    """ "the Q4 roadmap draft at Acme": Q4 is a date, not an organisation; Acme is where the work is, not a place."""
    entities = {e.name: e.kind.value for e in extract_offline(text, occurred_at=WHEN).entities}
    assert entities == expected


def test_sentence_split_handles_abbreviations_and_bullets() -> None:
    text = "Met Dr. Smith at 9 a.m. today. We talked, e.g. about sleep!\nShopping:\n- milk\n* eggs\n1. bread"
    sentences = [s.text for s in split_sentences(text)]
    assert sentences == [
        "Met Dr. Smith at 9 a.m. today.",
        "We talked, e.g. about sleep!",
        "Shopping:",
        "milk",
        "eggs",
        "bread",
    ]


# --- the episode ---------------------------------------------------------------------------------------------------


def test_episode_title_summary_importance() -> None:
    text = (
        "Today we finally drove from Lisbon to Porto with Ana and her dog, stopping twice for coffee. "
        "The river at sunset was beautiful. I cried a little. We ate at Cantina 32. Tomorrow we hike."
    )
    result = extract_offline(text, occurred_at=WHEN)
    assert 1 <= len(result.title.split()) <= 10
    assert result.title.startswith("Today we finally drove from Lisbon to Porto")
    assert "Lisbon" in result.summary and "Porto" in result.summary
    assert all(sentence.strip() in text for sentence in result.summary.split(". ") if sentence)
    calm = extract_offline("Read a book. Made tea.", occurred_at=WHEN)
    assert 0 <= calm.importance < result.importance <= 1


def test_deterministic() -> None:
    text = DATA.read_text(encoding="utf-8")
    first = extract_offline(text, occurred_at=WHEN).model_dump()
    assert all(extract_offline(text, occurred_at=WHEN).model_dump() == first for _ in range(3))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t ",
        "🎉🎉🎉",
        "😀 I love 🍕 and I need to buy 🥑 by Friday! 🎉",
        "ذهبت إلى السوق اليوم مع أحمد. أريد أن أتعلم الطبخ.",
        "אני אוהב ללכת לים בשבת.",
        "NUL\x00inside\x00text. I want to\x00 sleep.",
        "\x00\x01\x02",
        "- [ ]\n- [x]\n* \n1. ",
        '"""""" ((( ))) [[[ ]]] ... ??? !!!',
        "I" * 5000,
        "Dr. Mr. Mrs. e.g. i.e. etc. St.",
        "I need to" + " by Friday" * 200,
        "a" * 100_000,
    ],
)
def test_never_raises_on_odd_text(text: str) -> None:
    result = extract_offline(text, occurred_at=WHEN)
    assert result.title.strip() and result.summary.strip()
    assert len(result.title.split()) <= 10 or len(result.title) <= 60
    assert 0 <= result.importance <= 1


_PIECES = [
    "I", "I'm", "I’ll", "we", "want to", "need to", "by Friday", "Dr.", "e.g.", "\n", "\n- [ ] ", "- [x]", "* ",
    "1. ", '"', "“", "”", "'", ":", "?", "!", ".", ",", "Sarah", "Jones", "of", "Lisbon", "#tag", "@bob", "TODO:",
    "remind me to", "never", "not", "love", "the", "St", "Mary's", "\x00", "🎉", "ذهبت", "אני", " ", "\t",
    "2024-02-30", "31 February", "in 3 days", "next month", "my goal is to", "Note to self:", "remember to",
    "don't forget to", "(", "&", "Bar", "88",
]  # fmt: skip


def _check(result: Extraction) -> None:
    assert result.title.strip() and result.summary.strip() and 0 <= result.importance <= 1
    assert all(g.title.strip() and g.text.strip() for g in result.goals)
    assert all(p.text.strip() and 0 <= p.confidence <= 1 for p in result.psyche)
    assert all(e.name.strip() for e in result.entities)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=60).map(" ".join))
def test_never_raises_on_journal_like_noise(text: str) -> None:
    _check(extract_offline(text, occurred_at=WHEN))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_never_raises_on_any_unicode(text: str) -> None:
    _check(extract_offline(text, occurred_at=WHEN))


def test_text_without_words_gives_minimal_extraction() -> None:
    result = extract_offline("  \n ", occurred_at=WHEN)
    assert (result.title, result.entities, result.goals, result.psyche) == ("Empty entry", [], [], [])


def test_long_entry_is_bounded() -> None:
    sentence = (
        "I went to the market with Sarah in Lisbon and I love fresh figs. I need to call Tom about the garden "
        "by Friday. The weather was grey and we talked about work, books and plans. "
    )
    text = sentence * 600  # ~20,000 words
    assert 19_000 < len(text.split()) < 22_000
    start = time.perf_counter()
    result = extract_offline(text, occurred_at=WHEN)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"20,000 words took {elapsed:.1f}s"
    assert len(result.goals) <= MAX_GOALS and len(result.psyche) <= MAX_PSYCHE
    assert len(result.title.split()) <= 10 and len(result.summary) < 2000

    one_sentence = " and ".join(f"I want to call person {i} and I love dish {i}" for i in range(2000))  # no full stop
    start = time.perf_counter()
    result = extract_offline(one_sentence, occurred_at=WHEN)
    assert time.perf_counter() - start < 5.0
    assert len(result.goals) == MAX_GOALS and len(result.psyche) == MAX_PSYCHE

    varied = " ".join(f"I want to visit place number {i} by Friday. I love dish {i}." for i in range(2000))
    result = extract_offline(varied, occurred_at=WHEN)
    assert len(result.goals) == MAX_GOALS and len(result.psyche) == MAX_PSYCHE


# --- the provider --------------------------------------------------------------------------------------------------


def test_offline_provider() -> None:
    provider = OfflineProvider()
    assert provider.offline is True and provider.name == "offline (rules)" == provider.describe()
    assert isinstance(provider.embedder, HashEmbedder)
    result = provider.extract("I want to learn the cello.", occurred_at=WHEN)
    assert result == extract_offline("I want to learn the cello.", occurred_at=WHEN)
    with pytest.raises(ProviderError, match="no language model"):
        provider.chat_stream([{"role": "user", "content": "hi"}])
    with pytest.raises(ProviderError, match="no language model"):
        provider.complete_json([], {}, name="x")
    custom = HashEmbedder(dimension=64)
    assert OfflineProvider(embedder=custom).embedder is custom


@pytest.mark.parametrize(
    ("text", "titles"),
    [
        (
            "Goals for March: repaint the bathroom, learn to use the sewing machine, and renew my driving licence.",
            ["Repaint the bathroom", "Learn to use the sewing machine", "Renew my driving licence"],
        ),
        ("New year's resolutions: quit smoking, learn Italian.", ["Quit smoking", "Learn Italian"]),
        ("Big goal for this semester: hand in my dissertation.", ["Hand in my dissertation"]),
        ("Plans for the weekend: nothing much.", []),
        ("The goals of the meeting were unclear.", []),
    ],
)
def test_a_labelled_list_gives_one_goal_per_item(text: str, titles: list[str]) -> None:
    assert [g.title for g in extract_offline(text, occurred_at=WHEN).goals] == titles


@pytest.mark.parametrize(
    ("text", "psyche"),
    [
        ("I find yoga boring.", ["I find yoga boring"]),
        ("Tea is my favourite drink.", ["Tea is my favourite drink"]),
        ("I find it hard to sleep.", []),
        ("I find out tomorrow.", []),
    ],
)
def test_a_judgement_and_a_favourite_named_first_are_preferences(text: str, psyche: list[str]) -> None:
    assert [p.text for p in extract_offline(text, occurred_at=WHEN).psyche] == psyche


def test_a_plan_made_in_a_sentence_is_no_goal_list() -> None:
    text = "I made a plan for the plan: a schedule, colour-coded, with buffers."
    assert extract_offline(text, occurred_at=WHEN).goals == []


@pytest.mark.parametrize(
    ("text", "titles"),
    [
        ("I've set myself the goal of running a marathon.", ["Running a marathon"]),
        ("My aim this year is to read 30 books.", ["Read 30 books"]),
        ("Hoping to finish the shed.", ["Finish the shed"]),
        ("I've signed up to run the Berlin marathon.", ["Run the Berlin marathon"]),
        ("I signed up for the gym.", []),
        ("She signed up to run it.", []),
    ],
)
def test_goals_set_signed_up_for_or_hoped_for(text: str, titles: list[str]) -> None:
    assert [g.title for g in extract_offline(text, occurred_at=WHEN).goals] == titles


@pytest.mark.parametrize(
    ("text", "psyche"),
    [
        ("Opera bores me.", ["Opera bores me"]),
        ("I've never liked olives.", ["I've never liked olives"]),
        ("I can't get enough of sushi.", ["I can't get enough of sushi"]),
        ("He annoys me.", []),
    ],
)
def test_likings_said_another_way_are_preferences(text: str, psyche: list[str]) -> None:
    assert [p.text for p in extract_offline(text, occurred_at=WHEN).psyche] == psyche


@pytest.mark.parametrize(
    ("text", "psyche"),
    [
        # The liked thing came before the verb ("the people I love"): the clause says nothing of the writer's taste.
        ("Being able to understand the people I love in their own language.", []),
        ("The friends I like and trust came over.", []),
        ("The colleagues I like at work left.", []),
        # Still preferences: an object, a gerund, an infinitive, a hyphenated word.
        ("I love in-jokes.", ["I love in-jokes"]),
        ("I love cooking for friends.", ["I love cooking for friends"]),
        ("I like to swim in the sea.", ["I like to swim in the sea"]),
    ],
)
def test_a_relative_clause_about_someone_liked_is_no_preference(text: str, psyche: list[str]) -> None:
    assert [p.text for p in extract_offline(text, occurred_at=WHEN).psyche] == psyche


@pytest.mark.parametrize(
    ("text", "titles"),
    [
        # Giving up on a pursuit ends an earlier goal (persona.evolution finds it): it is no new goal.
        ("I've decided to give up on the web design course.", []),
        ("I need to abandon the garden project.", []),
        # A habit to stop is a goal.
        ("I want to give up smoking.", ["Give up smoking"]),
    ],
)
def test_giving_up_on_a_pursuit_is_no_new_goal(text: str, titles: list[str]) -> None:
    assert [g.title for g in extract_offline(text, occurred_at=WHEN).goals] == titles
