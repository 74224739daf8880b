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


@pytest.mark.parametrize(
    ("text", "title", "status"),
    [
        # done, said without "finished": a completion verb, the goal's verb class, a skill one now has
        ("Submitted the grant application at midnight.", "Apply for the research grant", "done"),
        ("We adopted a tabby from the rescue centre.", "Get a cat from the rescue centre", "done"),
        ("I can actually swim properly now!", "Learn to swim properly", "done"),
        ("Stopped drinking coffee a month ago and feel great.", "Stop drinking coffee", "done"),
        ("New boiler is in!", "Replace the boiler before winter", "done"),
        ("Tax return: done and dusted.", "Finish the tax return", "done"),
        ("I can juggle three balls now.", "Learn to juggle", "done"),
        ("The loft clear-out is over, thank god.", "Clear out the loft", "done"),
        # dropped, in its phrasal forms
        ("I've decided against the motorbike licence.", "Get my motorbike licence", "dropped"),
        ("I'm calling it quits on the Discworld marathon.", "Read all of the Discworld books", "dropped"),
        ("Scrapped the bakery stall idea, the fees are absurd.", "Open a small bakery stall", "dropped"),
        ("Withdrew my name from the council election.", "Run for the parish council", "dropped"),
        ("Knitting a jumper isn't happening.", "Learn to knit a jumper", "dropped"),
        ("I'm done with the banjo, it's gathering dust.", "Learn the banjo", "dropped"),
        ("We've had to cancel Iceland, Sam lost his job.", "Go to Iceland", "dropped"),
        ("The podcast idea is dead.", "Start a podcast", "dropped"),
        # postponed, with or without a date
        ("We pushed the shed renovation to next spring.", "Renovate the garden shed", POSTPONED),
        ("Pottery will have to wait until next year.", "Take a pottery course", POSTPONED),
        ("Putting the swimming lessons off until March.", "Take swimming lessons", POSTPONED),
        ("We moved the Japan trip to October.", "Visit Japan", POSTPONED),
        ("Painting the hallway is on ice until the baby is born.", "Paint the hallway", POSTPONED),
        ("I've put the short story aside for now.", "Write a short story", POSTPONED),
        ("The half marathon was brutal but I finished in 2:03!", "Run a half marathon", "done"),
    ],
)
def test_verb_classes_change_goals_in_many_wordings(text: str, title: str, status: str):
    changes = detect_goal_changes(text, [_goal(title)], today=date(2025, 5, 1))
    assert [c.status for c in changes] == [status]


def test_two_goals_done_in_one_entry_each_by_its_own_clause():
    thesis, kitchen = _goal("Finish the thesis"), _goal("Repaint the kitchen")
    changes = detect_goal_changes(
        "Finished the thesis! Also painted the kitchen.", [thesis, kitchen], today=WHEN.date()
    )
    assert {(c.goal_id, c.status) for c in changes} == {(thesis.id, "done"), (kitchen.id, "done")}


def test_one_sentence_changes_two_goals_clause_by_clause():
    licence, bathroom, sewing = (
        _goal("Renew my driving licence"),
        _goal("Repaint the bathroom"),
        _goal("Learn to use the sewing machine"),
    )
    text = "The driving licence renewal came through and the bathroom is repainted."
    changes = detect_goal_changes(text, [licence, bathroom, sewing], today=date(2025, 4, 1))
    assert {(c.goal_id, c.status) for c in changes} == {(licence.id, "done"), (bathroom.id, "done")}


def test_a_plan_ended_in_the_next_sentence_is_dropped():
    guitar = _goal("Learn the guitar properly")
    text = "Sold the guitar on Marketplace. Let's be honest, that's the end of that plan."
    assert [(c.goal_id, c.status) for c in detect_goal_changes(text, [guitar], today=date(2025, 4, 1))] == [
        (guitar.id, "dropped")
    ]


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("Almost gave up on marathon training this week, but I kept going.", "Run a marathon"),
        ("Bad mark on the essay, but I'm not giving up on the first-class degree.", "Get a first-class degree"),
        ("Dreamt last night that I'd given up sailing.", "Learn to sail"),
        ("Did half of the photo album tonight, the rest tomorrow.", "Finish the photo album"),
        ("I finished a book last night, a thriller.", "Write a children's book"),
        ("Finished reading a novel on the train.", "Write a novel"),
        ("Fixed the wobbly chair in the kitchen.", "Fix the leaking tap in the kitchen"),
        ("Fixed the bike light this morning.", "Fix the bathroom light"),
        ("Laura finished the London marathon!", "Run the London marathon"),
        ("Quit the chess club's committee but I'm still learning chess.", "Learn to play chess"),
        ("Booked the flights to Japan for April.", "Visit Japan"),
        ("Failed my driving test again.", "Learn to drive"),
        ("My husband cleaned out the garage while I was away.", "Clean out the garage"),
        ("Uncle Joe fixed my bike.", "Fix the bike brakes"),
        ("Replaced the kitchen tap this afternoon.", "Repaint the kitchen"),
        ("The bedroom painting is delayed because the decorator is booked up.", "Return the library books"),
        ("All the thank-you cards are finally in the post.", "Fix the car door"),
        ("I want to quit my job and open a bakery.", "Open a small bakery stall"),
        ("I'm not a morning person anymore; since the new job I sleep in.", "Quit my job"),
        ("We decided not to move to Lisbon after all.", "Learn Portuguese before the Lisbon trip"),
        ("Finished the thesis introduction today.", "Finish my thesis"),
        ("Painted the fence instead of the shed.", "Paint the shed"),
        ("Read a few pages of the Italian cookbook.", "Read the Italian cookbook"),
        ("Saved another 200 pounds this month.", "Save 2000 pounds"),
        ("The garden path is half done.", "Finish the garden path"),
        ("Wrote 500 words of the short story.", "Write a short story"),
    ],
)
def test_guards_keep_near_misses_from_changing_a_goal(text: str, title: str):
    assert detect_goal_changes(text, [_goal(title)], today=date(2025, 5, 1)) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("I don't like jazz", "Went to a jazz club and loved it. I was completely wrong about jazz."),
        ("I believe money doesn't matter much", "I used to think money didn't matter; after this year I know it does."),
        ("I hate cooking", "I've come round to cooking."),
        ("I think social media is harmless fun", "Changed my mind about social media."),
        ("I love spicy food", "I can't handle spicy food anymore since the stomach thing."),
        ("My favourite season is summer", "Autumn is my favourite season now, summer is too hot."),
        ("I think cats are better than dogs", "After a month of fostering I'm a dog person now."),
        ("I love mornings", "I've become a night owl, mornings are awful."),
        ("I hate winter", "Winter is growing on me."),
        ("I love running", "I've fallen out of love with running."),
        ("I prefer paper books to e-readers", "Honestly I prefer my Kindle these days, paper books hurt my wrists."),
        ("I prefer working alone", "Working in a team has grown on me; I actually prefer it to working alone now."),
        ("I prefer baths to showers", "I'm more of a shower person now."),
        ("I think I'm a bad cook", "I'm actually a decent cook these days."),
        ("I love my commute", "My commute is killing me these days."),
    ],
)
def test_beliefs_revised_in_many_wordings(old: str, new: str):
    belief = _psyche(old)
    assert [c.old_id for c in detect_belief_changes(new, [belief])] == [belief.id]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("I enjoy cooking", "I used to think I'd never cook for twelve, but I still enjoy cooking for crowds."),
        ("I prefer trains to planes", "My dad used to hate trains, these days he prefers them."),
        ("My favourite season is summer", "My favourite season is still summer."),
        ("I love the beach", "I love the mountains too."),
        ("I love coffee", "I used to drink three coffees a day."),
        ("I don't like jazz", "I don't enjoy big parties anymore."),
        ("I love running", "I actually love running now."),
        ("I love board games", "I no longer enjoy video games."),
        ("I like rainy days", "I didn't repair the roof yet, it keeps raining."),
        ("I hate running", "I'd like to run for the parish council in May."),
        ("I love living by the sea", "These days I prefer the sea over the mountains."),
    ],
)
def test_near_misses_replace_no_belief(old: str, new: str):
    assert detect_belief_changes(new, [_psyche(old)]) == []


def test_second_dev_set_meets_the_targets():
    """``evolution_dev2.jsonl``: 44 cases in new wording written before the rules were widened (tuning data now)."""
    kinds = evaluate_evolution(DATA / "evolution_dev2.jsonl")["kinds"]
    assert kinds["goals"]["precision"] >= 0.9 and kinds["goals"]["recall"] >= 0.8
    assert kinds["beliefs"]["precision"] >= 0.9 and kinds["beliefs"]["recall"] >= 0.7


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # One shared word in passing is not the same topic.
        ("I like making things with my hands", "Typing this with cold hands, which I hate."),
        ("I love early morning runs", "I hate running in the rain."),
        ("I hate swimming in cold water", "I've come to love swimming lessons."),
        ("I love small towns", "Ana called me into the small office, which is never good."),
        # A stance with no words of its own, after an event, is about that event, not a view of the writer.
        ("I hate driving at night", "The trip was moved to the night because of traffic, and I enjoyed it."),
        ("I hate long meetings", "Ana kept me after the long meeting, which did actually help."),
    ],
)
def test_a_stance_sharing_a_word_in_passing_replaces_no_belief(old: str, new: str):
    assert detect_belief_changes(new, [_psyche(old)]) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("I love living in the city", "I'm sick of the city."),
        ("I find yoga boring", "Turns out I actually enjoy yoga."),
        ("I hate podcasts", "Podcasts fill my long drives now, I've grown to love them."),
        ("I think social media is harmless", "I changed my mind about social media, it is harmful."),
    ],
)
def test_a_stance_on_the_same_topic_still_replaces_a_belief(old: str, new: str):
    belief = _psyche(old)
    assert [c.old_id for c in detect_belief_changes(new, [belief])] == [belief.id]


def test_demo_journal_changes_only_what_a_careful_reader_accepts():
    """``evolution_demo.jsonl``: the bundled demo journal (what ``persona demo`` loads), labelled by hand."""
    kinds = evaluate_evolution(DATA / "evolution_demo.jsonl")["kinds"]
    assert kinds["beliefs"]["precision"] >= 0.9 and kinds["beliefs"]["recall"] >= 0.9


@pytest.mark.parametrize(
    ("text", "title", "status"),
    [
        # The goal's qualifying word names, in the clause, another thing qualified its own way.
        ("Pottery course: dropped, no regrets.", "Pay the course deposit", None),
        ("Herb garden: done.", "Print the garden plans", None),
        # Still changes: the goal's own head, or its word unqualified.
        ("Finally paid the course deposit.", "Pay the course deposit", "done"),
        ("Passed the final dive, so I'm officially scuba certified!", "Get my scuba certification", "done"),
    ],
)
def test_a_goal_word_qualified_by_another_names_another_thing(text: str, title: str, status: str | None):
    changes = detect_goal_changes(text, [_goal(title)], today=date(2025, 5, 1))
    assert [c.status for c in changes] == ([status] if status else [])


def test_a_stated_full_name_is_at_most_four_words_so_long_capitalised_runs_stay_linear():
    # Unbounded, the "X, or Y as" pattern was tried from every capitalised word of a run without a full stop and
    # scanned to its end each time: a pasted 240 KB entry of capitalised words took 234 s to ingest (0.4 s now).
    assert stated_nicknames("Met Ana Maria Lopez Garcia Ruiz, or Nita as the team calls her.", []) == {
        "Nita": "Maria Lopez Garcia Ruiz"
    }
    assert stated_nicknames("Kit (for Christopher John Paul Lamb Smith) phoned.", []) == {}
    assert stated_nicknames(" ".join(["Word"] * 50_000) + " (for", []) == {}
