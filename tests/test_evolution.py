"""Memory evolution, the rules: goals that finish, beliefs that change, one person under many names (pure functions,
and the labelled dev set's figures)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from persona.entities import (
    described_as_other,
    known_mentions,
    person_key,
    relation_fact,
    relations_in,
    resolve,
    stated_nicknames,
)
from persona.evolution import POSTPONED, detect_belief_changes, detect_goal_changes
from persona.evolution_eval import evaluate_evolution
from persona.llm.offline import extract_offline
from persona.models import Entity, EntityKind, Goal, GoalKind, Psyche, PsycheKind

DATA = Path(__file__).parent / "data"
WHEN = datetime(2025, 1, 10, 12, tzinfo=UTC)


def _goal(title: str) -> Goal:
    return Goal(user_id="u", entry_id="e", occurred_at=WHEN, kind=GoalKind.TASK, title=title, text=title)


def _psyche(text: str) -> Psyche:
    return Psyche(user_id="u", entry_id="e", occurred_at=WHEN, kind=PsycheKind.PREFERENCE, text=text)


def _person(name: str, *aliases: str) -> Entity:
    return Entity(user_id="u", name=name, kind=EntityKind.PERSON, aliases=list(aliases))


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("I have given up on the cello.", "dropped"),
        ("Finally submitted the thesis today!", "done"),
        ("Renewed my passport at the town hall.", "done"),
        ("The half marathon is postponed to spring.", POSTPONED),
    ],
)
def test_a_later_entry_changes_the_right_goal(text: str, status: str):
    goals = [
        _goal("Learn the cello"),
        _goal("Submit the thesis"),
        _goal("Renew my passport"),
        _goal("Run a half marathon"),
    ]
    changes = detect_goal_changes(text, goals, today=date(2025, 5, 1))
    assert [(c.status,) for c in changes] == [(status,)]
    assert changes[0].sentence == text


def test_a_postponed_goal_gets_its_new_due_date():
    [change] = detect_goal_changes(
        "The podcast launch moved to September.", [_goal("Launch my podcast")], today=date(2025, 4, 1)
    )
    assert change.status == POSTPONED and change.due is not None and change.due.month == 9


@pytest.mark.parametrize(
    "text",
    [
        "I did not finish the book this week, only halfway.",
        "Thinking about giving up on the cello, but not yet.",
        "My neighbour finished repainting her kitchen.",
        "Should I renew my passport now?",
        "I finished a chapter of the thesis today.",
        "I'll submit the thesis tomorrow.",
    ],
)
def test_distractors_change_no_goal(text: str):
    goals = [_goal("Read the book"), _goal("Learn the cello"), _goal("Repaint the kitchen"), _goal("Submit the thesis")]
    goals.append(_goal("Renew my passport"))
    assert detect_goal_changes(text, goals, today=date(2025, 5, 1)) == []


def test_a_belief_that_changed_is_found_and_a_stable_one_stays():
    coffee, honesty = _psyche("I love coffee"), _psyche("I value honesty")
    changes = detect_belief_changes("I quit coffee last month, it's green tea now.", [coffee, honesty])
    assert [c.old_id for c in changes] == [coffee.id]
    assert detect_belief_changes("Someone lied to me, which is why I value honesty.", [coffee, honesty]) == []
    assert detect_belief_changes("My sister hates coffee.", [coffee]) == []


def test_titles_surnames_and_first_names_resolve_when_unambiguous():
    okonkwo, haddad = _person("Professor Okonkwo"), _person("Dr. Amir Haddad")
    known = [okonkwo, haddad]
    assert resolve("Prof. Okonkwo", EntityKind.PERSON, known) is okonkwo
    assert resolve("Okonkwo", EntityKind.PERSON, known) is okonkwo
    assert resolve("Amir", EntityKind.PERSON, known) is haddad
    assert resolve("Dr. Haddad", EntityKind.PERSON, known) is haddad
    assert person_key("Prof. Ingrid Holm") == ("ingrid", "holm")


def test_ambiguous_names_and_conflicting_titles_stay_apart():
    lee, kim = _person("Sarah Lee"), _person("Sarah Kim")
    assert resolve("Sarah", EntityKind.PERSON, [lee, kim]) is None
    assert resolve("Mrs. Grant", EntityKind.PERSON, [_person("Mr. Grant")]) is None
    assert resolve("Paris", EntityKind.PLACE, [_person("Paris Hilton")]) is None


def test_aliases_from_a_merge_and_relations_are_kept():
    robert = _person("Robert Hale", "Bobby")
    assert resolve("Bobby", EntityKind.PERSON, [robert]) is robert
    assert relations_in("Dinner with my sister Layla and my friend Tom.") == {"layla": "sister", "tom": "friend"}
    assert relations_in("My ex-boss Tom called. My former wife Ana too; my old boss Li Wu.") == {
        "tom": "ex-boss", "ana": "ex-wife", "li wu": "boss"
    }  # fmt: skip
    assert known_mentions("Priya is such a good neighbour.", [_person("Priya Patel")], set())[0][0] == "Priya"
    assert known_mentions("Priya is back.", [_person("Mrs. Patel")], set()) == []


def test_dev_set_meets_the_targets():
    """The offline figures on the hand-labelled dev set (issue 12's targets: precision >= 0.9; recall >= 0.8 for goals
    and aliases, >= 0.7 for beliefs)."""
    report = evaluate_evolution(DATA / "evolution_dev.jsonl")
    kinds = report["kinds"]
    assert kinds["goals"]["tp"] + kinds["goals"]["fn"] >= 30 and kinds["beliefs"]["tp"] + kinds["beliefs"]["fn"] >= 20
    assert kinds["relations"]["tp"] + kinds["relations"]["fn"] >= 10  # relations stated, changed, repeated
    for kind, recall in (("goals", 0.8), ("beliefs", 0.7), ("aliases", 0.8), ("relations", 0.8)):
        assert kinds[kind]["precision"] >= 0.9, report["errors"]
        assert kinds[kind]["recall"] >= recall, report["errors"]


@pytest.mark.parametrize(
    ("text", "names", "expected"),
    [
        ("Met Ines Duarte at the fair; everyone calls her Nessa.", ["Ines Duarte", "Nessa"], {"Nessa": "Ines Duarte"}),
        ("My uncle Frederick goes by Fred these days.", ["Frederick"], {"Fred": "Frederick"}),
        ("Margaret, or Peggy as the choir calls her, sang.", [], {"Peggy": "Margaret"}),
        ("Kit (short for Christopher Lamb) phoned.", [], {"Kit": "Christopher Lamb"}),
        ("Oskar Lind is known as Ossi at the club.", ["Oskar Lind"], {"Ossi": "Oskar Lind"}),
        ("I saw Lisbon, or Porto maybe.", ["Lisbon"], {}),  # no nickname said
        ("Everyone calls him Ace.", [], {}),  # nobody named before the cue
    ],
)
def test_stated_nicknames(text: str, names: list[str], expected: dict[str, str]):
    assert stated_nicknames(text, names) == expected


def test_a_first_name_family_member_does_not_take_a_full_name_introduced_by_another_role():
    sister = _person("Nora").model_copy(update={"relation": "sister", "facts": [relation_fact("sister", WHEN, None)]})
    intern = "Nora Quist, the new intern at work, started today."
    assert described_as_other(intern, "Nora Quist") is True
    assert resolve("Nora Quist", EntityKind.PERSON, [sister], introduced_as_other=True) is None
    family = "Nora Quist, the family's only lawyer, read the will."
    assert described_as_other(family, "Nora Quist") is False
    assert resolve("Nora Quist", EntityKind.PERSON, [sister], introduced_as_other=False) is sister
    friend = _person("Nora")  # not known as family: a full name still finds the one Nora
    assert resolve("Nora Quist", EntityKind.PERSON, [friend], introduced_as_other=True) is friend


@pytest.mark.parametrize("verb", ["Gave", "Sent", "Brought", "Taught"])
def test_a_sentence_initial_irregular_verb_is_not_part_of_a_name(verb: str):
    found = extract_offline(f"{verb} Ruth the blanket yesterday.", occurred_at=WHEN).entities
    assert [e.name for e in found] == ["Ruth"]
