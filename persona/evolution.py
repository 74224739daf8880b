"""Memory that changes its mind: the offline rules that notice, in a new entry, that an earlier goal is finished,
dropped or postponed, or that an earlier belief or preference no longer holds.

The functions here are pure: they read the entry's sentences and the user's current memories and return the
changes they find (``GoalChange``, ``BeliefChange``). ``persona.revisions`` applies them to a store (nothing is
deleted: the old memory's validity is closed and the new one is linked to it) and undoes them exactly.

A change needs three things: a cue ("gave up on", "finally submitted", "no longer"), a sentence about the writer
(not "my neighbour finished her kitchen", not a question, not "not yet"), and a match with one existing memory
(shared words, verb forms, and, when an embedder is given, the similarity of meaning).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from persona.llm.dates import parse_due
from persona.models import Goal, GoalStatus, Psyche
from persona.text import content_words, stem

Similarity = Callable[[str, str], float]
"""Cosine similarity of two texts (the embedder's); optional: the rules work without it."""

POSTPONED = "postponed"
"""A goal whose due date moved: it stays active (``GoalStatus.ACTIVE``) with a new due date."""

# -- cues ------------------------------------------------------------------------------------------------------------
_DROP = re.compile(
    r"\b(gave|given|give|giving) up\b|\bquit\b|\babandon(ed)?\b|\bstopped\b|\bdropped\b|\bcancell?ed\b"
    r"|\bdecided not to\b|\bno longer\b|\bnot going to\b.*\banymore\b|\b(won'?t|will not|not)\b.*\bafter all\b"
    r"|\bcalled off\b|\bletting go of\b"
)
_POSTPONE = re.compile(
    r"\bpostponed?\b|\bput off\b|\bpushed back\b|\bdelayed\b|\bon hold\b|\bmoved to\b|\brescheduled\b|\bdeferred\b"
)
_DONE = re.compile(
    r"\bfinished\b|\bcompleted?\b|\bdone\b|\bfinally\b|\baccomplished\b|\bachieved\b|\bticked off\b|\bpassed\b"
    r"|\bgot accepted\b|\bsucceeded\b"
)
# A sentence that only wonders, plans or falls short changes nothing.
_HYPOTHETICAL = re.compile(
    r"\?|\bthinking (about|of)\b|\bconsidering\b|\bnot yet\b|\bshould i\b|\bmight\b|\bmaybe i should\b"
    r"|\bwondering\b|\bif i\b"
)
_UNFINISHED = re.compile(
    r"\b(haven'?t|have not|hasn'?t|didn'?t|did not|not|never|won'?t|will|going to|almost|nearly)\b|'ll\b|\btomorrow\b"
)
_PARTLY = re.compile(r"\b(a|one|another|the first) (chapter|part|page|section|bit|draft) of\b|\bhalfway\b|\bsome of\b")
# Past verbs that start or continue work rather than finish it ("Started the report" is no done report).
_NOT_FINISHING = frozenset(
    {"started", "began", "begun", "continued", "worked", "tried", "planned", "thought", "discussed", "talked",
     "wanted", "needed", "looked", "researched", "drafted", "outlined", "prepared", "practised", "practiced",
     "postponed", "delayed", "moved", "forgot", "missed", "considered", "decided", "asked", "checked"}
)  # fmt: skip
_OTHER_PERSON = re.compile(
    r"\b(he|she|they|his|her|their|hers|theirs)\b|^\s*(my|our) (?!goal|plan)\w+|^\s*(dad|mum|mom|someone|everyone)\b"
)
_FIRST_PERSON = re.compile(r"\b(i|i'm|i've|i'd|me|my|myself)\b")

_IRREGULAR_PAST = {
    "bought": "buy", "sent": "send", "paid": "pay", "lost": "lose", "got": "get", "wrote": "write", "ran": "run",
    "made": "make", "took": "take", "built": "build", "sold": "sell", "gave": "give", "went": "go", "read": "read",
    "won": "win", "met": "meet", "left": "leave", "spent": "spend", "taught": "teach", "brought": "bring",
    "kept": "keep", "told": "tell", "found": "find", "began": "begin", "drove": "drive", "flew": "fly",
    "swam": "swim", "ate": "eat", "did": "do", "saw": "see", "learnt": "learn", "knit": "knit", "put": "put",
}  # fmt: skip
_GENERIC = frozenset({"today", "finally", "week", "weekend", "morning", "year", "month", "time", "really", "just"})


def _key(word: str) -> str:
    """A word reduced for matching: irregular past forms to their verb, suffixes off, a doubled final consonant
    single ("submitted" -> "submit", "planned" -> "plan")."""
    word = word.lower().replace("'", "")
    word = _IRREGULAR_PAST.get(word, word)
    key = stem(word)
    if len(key) > 3 and key[-1] == key[-2] and key[-1] not in "aeiouls":
        key = key[:-1]
    return key


def _same(a: str, b: str) -> bool:
    """Whether two keys name the same word: equal, or one a prefix (of at least 3 letters) of the other
    ("fil" from "filed", "file")."""
    short, long = sorted((a, b), key=len)
    return len(short) >= 3 and long.startswith(short)


def _overlap(keys: Sequence[str], sentence_keys: Sequence[str]) -> int:
    return sum(1 for k in keys if any(_same(k, s) for s in sentence_keys))


def _clauses(sentence: str) -> list[str]:
    return [c for c in re.split(r"[,;:]|\bbut\b|\band then\b", sentence) if c.strip()]


def sentences_of(text: str) -> list[str]:
    """The sentences of an entry (line breaks and sentence ends), as written."""
    parts = re.split(r"(?<=[.!?])\s+|\n+", text)
    return [p.strip(" -*\t") for p in parts if p.strip(" -*\t")]


# -- goals -----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GoalChange:
    """A goal that an entry says is done, dropped or postponed (``due`` is the new date when one is given)."""

    goal_id: str
    status: str  # "done", "dropped" or "postponed"
    sentence: str
    due: date | None = None
    score: float = 0.0


def _goal_cue(lowered: str, goal_verb: str, sentence_words: list[str]) -> str | None:
    """Which change a sentence (lowercased) announces for a goal whose title starts with ``goal_verb``."""
    if _HYPOTHETICAL.search(lowered):
        return None
    if _DROP.search(lowered):
        return GoalStatus.DROPPED.value
    if _POSTPONE.search(lowered) and not re.search(r"\bnot\b|n't\b", lowered):
        return POSTPONED
    if _UNFINISHED.search(lowered) or _PARTLY.search(lowered):
        return None
    if _DONE.search(lowered):
        return GoalStatus.DONE.value
    # "Renewed my passport", "Tax return filed": the goal's own verb in the past tense.
    verb = _key(goal_verb)
    for word in sentence_words:
        if _is_past(word) and _same(_key(word), verb) and word != goal_verb:
            return GoalStatus.DONE.value
    # Diary style, no subject: "Sent off the quarterly report." (the caller asks for two shared words then).
    if sentence_words and _is_past(sentence_words[0]) and sentence_words[0] not in _NOT_FINISHING:
        return _DIARY_DONE
    return None


_DIARY_DONE = "done?"


def _is_past(word: str) -> bool:
    return word in _IRREGULAR_PAST or (word.endswith("ed") and len(word) > 4)


def _about_the_writer(clause: str) -> bool:
    return not _OTHER_PERSON.search(clause.lower())


def detect_goal_changes(
    text: str, goals: Sequence[Goal], *, today: date, similarity: Similarity | None = None
) -> list[GoalChange]:
    """The goals among ``goals`` (the user's active ones) that ``text`` says are done, dropped or postponed, each at
    most once, best match per sentence."""
    changes: dict[str, GoalChange] = {}
    for sentence in sentences_of(text):
        for clause in _clauses(sentence) or [sentence]:
            found = _best_goal_change(clause, sentence, goals, today, similarity)
            if found and (found.goal_id not in changes or found.score > changes[found.goal_id].score):
                changes[found.goal_id] = found
    return list(changes.values())


def _best_goal_change(
    clause: str, sentence: str, goals: Sequence[Goal], today: date, similarity: Similarity | None
) -> GoalChange | None:
    if not _about_the_writer(clause):
        return None
    words = [w.lower().replace("\u2019", "'") for w in re.findall(r"[\w']+", clause)]
    clause_keys = [_key(w) for w in content_words(clause) if w not in _GENERIC]
    best: GoalChange | None = None
    for goal in goals:
        title_words = content_words(goal.title)
        if not title_words:
            continue
        verb, objects = (
            title_words[0],
            [_key(w) for w in title_words[1:] if w not in _GENERIC] or [_key(title_words[0])],
        )
        shared = _overlap(objects, clause_keys)
        # The cue is words only: checked first, so meaning (an embedding) is computed only where a change is said.
        cue = _goal_cue(" ".join(words) + (" ?" if sentence.rstrip().endswith("?") else ""), verb, words)
        if cue == _DIARY_DONE:
            cue = GoalStatus.DONE.value if shared >= min(2, len(objects)) else None
        if cue is None:
            continue
        meaning = similarity(clause, goal.title) if similarity else 0.0
        if shared == 0 and meaning < 0.75:
            continue
        score = shared / len(objects) + meaning
        if best is None or score > best.score:
            due = new_due(clause, today) if cue == POSTPONED else None
            best = GoalChange(goal.id, cue, sentence, due, score)
    return best


_SEASONS = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}


def new_due(clause: str, today: date) -> date | None:
    """The date a goal was moved to ("postponed to September", "on hold until summer"), the next such date after
    ``today``; ``None`` when the sentence names none."""
    season = re.search(r"\b(?:to|until|till|for|in)\s+(?:the\s+)?(spring|summer|autumn|fall|winter)\b", clause, re.I)
    if season:
        month = _SEASONS[season.group(1).lower()]
        year = today.year if month > today.month else today.year + 1
        return date(year, month, 1)
    return parse_due(re.sub(r"\b(?:to|until|till)\s+", "by ", clause), today=today)


# -- beliefs and preferences -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BeliefChange:
    """An earlier psyche memory that a sentence of the new entry contradicts or replaces."""

    old_id: str
    sentence: str
    score: float = 0.0


_POSITIVE = frozenset(
    {"love", "like", "enjoy", "prefer", "adore", "trust", "believe", "value", "fan", "good", "harmless", "fond"}
)
_NEGATIVE = frozenset(
    {"hate", "dislike", "bad", "afraid", "scared", "fear", "quit", "stopped", "tired", "fed", "harmful", "off",
     "bore", "bores", "bored", "detest", "loathe"}
)  # fmt: skip
_NEGATION = re.compile(r"\b(not|no longer|don'?t|doesn'?t|never|can'?t stand|cannot stand|won'?t)\b")
_CHANGE = re.compile(
    r"\bno longer\b|\bany ?more\b|\bchanged my mind\b|\bturns out\b|\bcome (to|around)\b|\bthese days\b|\bnow\b"
    r"|\bactually\b|\bquit\b|\bstopped\b|\bafter all\b|\bnot anymore\b|\bused to\b"
)
_SENTIMENT = _POSITIVE | _NEGATIVE | {"think", "am", "really", "actually", "now", "stand", "up", "with", "maybe"}


def polarity(text: str) -> int:
    """+1 when a statement is for something, -1 against, 0 when it says neither (a negation flips the sign)."""
    lowered = text.lower().replace("\u2019", "'")
    words = set(re.findall(r"[\w']+", lowered))
    sign = 1 if words & _POSITIVE else -1 if words & _NEGATIVE else 0
    if words & _POSITIVE and words & _NEGATIVE:
        sign = -1
    if _NEGATION.search(lowered):
        sign = -sign if sign else -1
    return sign


def _topic(text: str) -> list[str]:
    return [_key(w) for w in content_words(text) if w not in _SENTIMENT and w not in _GENERIC]


def detect_belief_changes(
    text: str, psyche: Sequence[Psyche], *, similarity: Similarity | None = None
) -> list[BeliefChange]:
    """The current psyche memories that a first-person sentence of ``text`` replaces: it speaks of the same thing
    and either says it changed ("no longer", "now", "changed my mind") or takes the opposite side."""
    changes: dict[str, BeliefChange] = {}
    for sentence in sentences_of(text):
        lowered = sentence.lower().replace("\u2019", "'")
        if _HYPOTHETICAL.search(lowered) or not _FIRST_PERSON.search(lowered) or _OTHER_PERSON.search(lowered):
            continue
        keys = _topic(sentence)
        for old in psyche:
            topic = _topic(old.text)
            shared = _overlap(topic, keys) if topic else 0
            # Polarity and change words first: meaning (an embedding) is computed only for a sentence that could
            # replace this belief.
            flipped = polarity(sentence) * polarity(old.text) < 0
            if not (flipped or (_CHANGE.search(lowered) and polarity(sentence) != 0)):
                continue
            meaning = similarity(sentence, old.text) if similarity else 0.0
            if shared == 0 and meaning < 0.8:
                continue
            score = shared / max(1, len(topic)) + meaning
            if old.id not in changes or score > changes[old.id].score:
                changes[old.id] = BeliefChange(old.id, sentence, score)
    return list(changes.values())
