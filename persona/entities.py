"""One entity per real thing: the rules that decide that "Prof. Okonkwo", "Professor Okonkwo" and "Okonkwo" are one
person for this user, that "Amir" is "Dr. Amir Haddad" when only one Amir is known, and that "my sister Layla" is
Layla (the relation kept).

``resolve`` is pure: given a new name and the user's known entities, it returns the one entity the name means, or
``None`` when it means none of them or could mean several ("Sarah" when Sarah Lee and Sarah Kim are both known).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from persona.models import Entity, EntityFact, EntityKind, canonical_name

TITLES = frozenset(
    {"mr", "mrs", "ms", "miss", "mx", "dr", "doctor", "prof", "professor", "sir", "dame", "lady", "lord", "coach",
     "captain", "capt", "father", "fr", "rev", "reverend", "aunt", "auntie", "uncle", "grandma", "grandpa", "granny",
     "grandad", "nana", "cousin", "sister", "brother", "judge", "officer", "madam"}
)  # fmt: skip
"""Honorifics, titles and family words that may stand before a name and are not part of it."""

_MALE = frozenset({"mr", "sir", "lord", "father", "fr", "uncle", "grandpa", "grandad", "brother"})
_FEMALE = frozenset({"mrs", "ms", "miss", "dame", "lady", "aunt", "auntie", "grandma", "granny", "nana", "sister"})
RELATIONS = (
    "sister", "brother", "mother", "father", "mum", "mom", "dad", "son", "daughter", "wife", "husband", "partner",
    "aunt", "uncle", "cousin", "niece", "nephew", "grandmother", "grandfather", "grandma", "grandpa", "friend",
    "boss", "manager", "colleague", "neighbour", "neighbor", "girlfriend", "boyfriend", "flatmate", "roommate",
)  # fmt: skip
_RELATION = re.compile(
    r"\b[Mm]y (?:(?:best|old|little|big|older|younger) )?((?:ex-|ex |former )?(?:" + "|".join(RELATIONS) + r")),? "
    r"([A-Z][\w'-]+(?: [A-Z][\w'-]+)?)"
)
_FORMER = re.compile(r"^(?:ex |former )")


def _tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[\s.]+", canonical_name(name)) if t]


def person_key(name: str) -> tuple[str, ...]:
    """The words of a person's name without titles: "Prof. Ingrid Holm" -> ("ingrid", "holm")."""
    tokens = _tokens(name)
    while len(tokens) > 1 and tokens[0] in TITLES:
        tokens = tokens[1:]
    return tuple(tokens)


def _gender(name: str) -> str | None:
    first = _tokens(name)[:1]
    if first and first[0] in _MALE:
        return "m"
    if first and first[0] in _FEMALE:
        return "f"
    return None


def _names(entity: Entity) -> list[str]:
    return [entity.name, *entity.aliases]


def _is_person(entity: Entity) -> bool:
    return entity.kind in (EntityKind.PERSON, EntityKind.THING) and entity.kind is not EntityKind.PLACE


def _compatible(name: str, entity: Entity) -> bool:
    """False when titles disagree on who it is (Mr. Grant is not Mrs. Grant)."""
    mine = _gender(name)
    theirs = {g for g in map(_gender, _names(entity)) if g}
    return mine is None or not theirs or theirs == {mine}


def _matches(key: tuple[str, ...], other: tuple[str, ...]) -> bool:
    """Whether two title-free names can be one person: the same words, or one a single word that is the other's
    first or last name ("Amir" / "Amir Haddad", "Okonkwo" / "Ngozi Okonkwo")."""
    if key == other:
        return True
    if len(key) == 1 and len(other) > 1:
        return key[0] in (other[0], other[-1])
    if len(other) == 1 and len(key) > 1:
        return other[0] in (key[0], key[-1])
    return False


KIN = frozenset(
    {"sister", "brother", "mother", "father", "mum", "mom", "dad", "son", "daughter", "aunt", "uncle", "cousin",
     "niece", "nephew", "grandmother", "grandfather", "grandma", "grandpa", "wife", "husband"}
)  # fmt: skip
"""Relations that make someone family (known by a first name and this, a full name introduced by another role is
someone else)."""
_FAMILY_CONTEXT = re.compile(r"\b(?:family|families|sis|bro|" + "|".join(sorted(KIN)) + r")\b", re.IGNORECASE)


def described_as_other(text: str, name: str) -> bool:
    """Whether ``text`` introduces ``name`` by a role that is not family: "Emma Clarke, the new intern", "Sarah Lowe
    from the climbing gym" (not "Tomasz Nowak, the family's only engineer")."""
    described = re.search(
        re.escape(name) + r"(?:'s)?(?:,\s*(?:the|a|an|our|my|his|her|their)\s+|\s+(?:from|at)\s+)(?P<role>[^,.;!?()]+)",
        text,
    )
    return described is not None and not _FAMILY_CONTEXT.search(described.group("role"))


def _family_by_first_name(entity: Entity) -> bool:
    """Known only by a one-word name and a family relation ("my sister Emma")."""
    relation = current_relation(entity.facts) or entity.relation or ""
    return relation.removeprefix("ex-") in KIN and all(len(person_key(n)) == 1 for n in _names(entity))


def resolve(
    name: str, kind: EntityKind, known: Sequence[Entity], *, introduced_as_other: bool = False
) -> Entity | None:
    """The one known entity ``name`` means, or ``None`` (new, or ambiguous). Exact names and aliases (including
    those learned from the user's merges) first; then, for people, the same name under other titles, and a first
    or last name alone when exactly one known person has it. A family member known by a first name only ("my
    sister Emma") does not take a full name the text introduces as someone else (``introduced_as_other``: "Emma
    Clarke, the new intern")."""
    wanted = canonical_name(name)
    exact = [e for e in known if wanted in {canonical_name(n) for n in _names(e)}]
    if exact:
        return exact[0] if len(exact) == 1 else None
    if kind not in (EntityKind.PERSON, EntityKind.THING):
        return None
    key = person_key(name)
    if not key:
        return None
    candidates = [
        e
        for e in known
        if e.kind is EntityKind.PERSON
        and _compatible(name, e)
        and any(_matches(key, person_key(n)) for n in _names(e))
        and not (introduced_as_other and len(key) > 1 and _family_by_first_name(e))
    ]
    if len(candidates) == 1:
        return candidates[0]
    # "Sarah" when Sarah Lee and Sarah Kim are known, or "Tom" with two Toms: say nothing rather than guess.
    return None


def relations_in(text: str) -> dict[str, str]:
    """Who the writer names by relation: "my sister Layla" -> {"layla": "sister"}, "my former boss Tom" ->
    {"tom": "ex-boss"} (keys are canonical names)."""
    return {canonical_name(m.group(2)): _FORMER.sub("ex-", m.group(1)) for m in _RELATION.finditer(text)}


def match_rule(name: str, target: Entity) -> str:
    """Which rule made ``name`` mean ``target`` (for the user to see): a learned "alias", the same name under
    another "title", or a "first name" / "surname" alone."""
    wanted = canonical_name(name)
    if wanted in {canonical_name(a) for a in target.aliases}:
        return "alias"
    key = person_key(name)
    others = [person_key(n) for n in _names(target)]
    if key in others:
        return "title"
    if len(key) == 1 and any(len(o) > 1 and o[0] == key[0] for o in others):
        return "first name"
    if len(key) == 1 and any(len(o) > 1 and o[-1] == key[0] for o in others):
        return "surname"
    return "name"


def merge_facts(kept: Sequence[EntityFact], new: Sequence[EntityFact]) -> list[EntityFact]:
    """An entity's facts after new ones are stated, oldest first: a fact that says what the latest one of its kind
    says already is not repeated; one that says something else closes it (``valid_until`` = the new one's start)
    and follows it. Nothing is removed: "my ex-boss Tom" after "my boss Tom" keeps "boss", closed."""
    merged: list[EntityFact] = []
    for fact in sorted([*kept, *new], key=lambda f: (f.valid_from, f.learned_at)):
        latest = next((i for i in range(len(merged) - 1, -1, -1) if merged[i].kind == fact.kind), None)
        if latest is not None and merged[latest].value == fact.value:
            continue
        if latest is not None and merged[latest].valid_until is None:
            merged[latest] = merged[latest].model_copy(update={"valid_until": fact.valid_from})
        merged.append(fact)
    return merged


def current_relation(facts: Sequence[EntityFact]) -> str | None:
    """The latest relation among ``facts`` (how the writer names them now), or ``None``."""
    relations = [f for f in facts if f.kind == "relation"]
    return relations[-1].value if relations else None


def name_match_blocker(entity: Entity, match: dict[str, Any]) -> str | None:
    """Why the name match ``match`` on ``entity`` cannot be undone now (``None`` when it can): only an entity's latest
    match can, and not after a merge into the entity (the match's record is of the entity before that merge). A
    record missing the fields this needs (a hand-edited export) is never undoable, and never raises."""
    if not entity.matches or entity.matches[-1].get("id") != match.get("id"):
        return f"a later name match was made on {entity.name!r}: undo that one first (only the latest can be undone)"
    before = match.get("before")
    if not isinstance(before, dict) or not isinstance(before.get("merges"), int):
        return f"the name match of {entity.name!r} has an incomplete record (an edited export?): it cannot be undone"
    if len(entity.merges) != before["merges"]:
        return f"{entity.name!r} was merged with another entity since: split that merge first, then undo the match"
    return None


def relation_fact(value: str, when: datetime, entry_id: str | None) -> EntityFact:
    """A relation stated by an entry: true from the entry's date, current."""
    return EntityFact(kind="relation", value=value, valid_from=when, entry_id=entry_id)


_CAPITALISED = re.compile(r"\b[A-Z][\w'-]*\b")
_NOT_NAMES = frozenset(
    {"i", "the", "a", "an", "my", "we", "he", "she", "they", "it", "this", "that", "today", "yesterday", "tomorrow",
     "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january", "february", "march",
     "april", "may", "june", "july", "august", "september", "october", "november", "december", "mum", "dad"}
)  # fmt: skip


def known_mentions(text: str, known: Sequence[Entity], found: set[str]) -> list[tuple[str, Entity]]:
    """Names of known people that the extractor could not tell from a capitalised first word ("Priya is such a good
    neighbour"): a capitalised word (not in ``found``, canonical names already extracted) that means exactly one
    known person. Unknown words are left alone: only a person the user already has is recognised this way."""
    people = [e for e in known if e.kind is EntityKind.PERSON]
    if not people:
        return []
    mentions: list[tuple[str, Entity]] = []
    seen = set(found)
    for match in _CAPITALISED.finditer(text):
        word = match.group(0)
        key = canonical_name(word)
        if key in seen or key in _NOT_NAMES or key in TITLES:
            continue
        seen.add(key)
        entity = resolve(word, EntityKind.PERSON, people)
        if entity is not None:
            mentions.append((word, entity))
    return mentions


_NICKNAME_CUE = re.compile(
    r"(?:\b(?:calls?|called) (?:him|her|them)|\bgoes by|\bgo by|\bgoing by|\bknown as|\bnicknamed|\baka)\s+"
    r"(?P<nick>[A-Z][\w'-]+)"
)
# A full name is at most four words: unbounded, "X, or Y as" tried from every capitalised word of a long run without
# a full stop scanned to its end each time (quadratic: 8,000 capitalised words took 4.8 s).
_OR_AS = re.compile(r"(?P<full>\b[A-Z][\w'-]+(?: [A-Z][\w'-]+){0,3}), or (?P<nick>[A-Z][\w'-]+) as\b")
_SHORT_FOR = re.compile(r"(?P<nick>\b[A-Z][\w'-]+) \((?:short for|for) (?P<full>[A-Z][\w'-]+(?: [A-Z][\w'-]+){0,3})\)")


def stated_nicknames(text: str, names: Sequence[str]) -> dict[str, str]:
    """Nicknames the text states for a named person: "Alexander Petrov; everyone calls him Sasha", "Elizabeth goes
    by Lizzie", "Robert, or Bobby as the team calls him", "Bobby (short for Robert)". ``names``: the people named in
    the text; the one a cue speaks of is the nearest named before it in the same sentence (the bracket and the
    "X, or Y as" forms name both themselves). Returns nickname -> full name."""
    found: dict[str, str] = {}
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        for match in [*_SHORT_FOR.finditer(sentence), *_OR_AS.finditer(sentence)]:
            if not {canonical_name(match.group("full")), canonical_name(match.group("nick"))} & _NOT_NAMES:
                found[match.group("nick")] = match.group("full")
        for match in _NICKNAME_CUE.finditer(sentence):
            before = sentence[: match.start()]
            named = [(before.rfind(n), n) for n in names if n in before]
            nick = match.group("nick")
            if named and canonical_name(nick) not in TITLES:
                full = max(named)[1]
                if canonical_name(full) != canonical_name(nick):
                    found[nick] = full
    return found
