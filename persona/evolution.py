"""Memory that changes its mind: the offline rules that notice, in a new entry, that an earlier goal is finished,
dropped or postponed, or that an earlier belief or preference no longer holds.

The functions here are pure: they read the entry's sentences and the user's current memories and return the
changes they find (``GoalChange``, ``BeliefChange``). ``persona.revisions`` applies them to a store (nothing is
deleted: the old memory's validity is closed and the new one is linked to it) and undoes them exactly.

A change needs three things, decided clause by clause (so one sentence can finish two goals):
- a cue from a verb class in its inflections and phrasal forms: done ("handed in", "the boiler is in", the goal's
  own verb in the past), dropped ("decided against", "calling it quits", "fallen by the wayside"), postponed
  ("pushed to next spring", "will have to wait until February"); for beliefs, a revision ("I was wrong about"),
  the other stance, or another favourite of the same kind;
- no veto: a question, a dream or a wish, another person ("Laura finished"), a weakened cue ("almost gave up",
  "not giving up on"), progress only ("half of the album", "a few pages of"), the goal going on ("but I kept
  going"), an old view that still holds ("I still enjoy cooking");
- a match with one existing memory: the head of the goal's object or its name ("the leaking tap", not "the
  kitchen"; "a book" is not "a children's book"), shared words, and, when an embedder is given, the similarity
  of meaning as a tie-breaker.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from persona.llm.dates import parse_due
from persona.models import Goal, GoalStatus, Psyche
from persona.text import STOPWORDS, content_words, stem, words

Similarity = Callable[[str, str], float]
"""Cosine similarity of two texts (the embedder's); optional: the rules work without it."""

POSTPONED = "postponed"
"""A goal whose due date moved: it stays active (``GoalStatus.ACTIVE``) with a new due date."""

# -- cues ------------------------------------------------------------------------------------------------------------
# Verb classes, each in its inflections and common phrasal forms. A cue counts only when nothing in the few words
# before it negates or weakens it ("not giving up on", "almost gave up", "haven't finished").
_DROP = re.compile(
    r"\b(gave|give|giving|given|gives) up\b|\bquit(s|ting)?\b|\bcall(ed|ing|s)? it quits\b|\babandon(ed|ing|s)?\b"
    r"|\bstopped\b|\bdropp(ed|ing)\b|\bcancel(l?ed|l?ing|s)?\b|\bcall(ed|ing)? off\b|\bscrap(ped|ping|s)?\b"
    r"|\bshelv(ed|ing|e)\b|\bditch(ed|ing)?\b|\bbinned\b|\bdecided (not to|against)\b|\bno longer\b"
    r"|(\bnot|n't)\b.*\b(any ?more|any longer)\b|(\bnot|n't) happening\b|\b(won'?t|will not|not)\b.*\bafter all\b"
    r"|\bletting go of\b|\blet (it|that|this) go\b|\bwithdr(ew|awn|aw|awing)\b|\b(pulled|backed|bowed|opted) out\b"
    r"|\b(fallen|fell|falls|falling) by the wayside\b|^\s*forget (about )?(the|it|that|my)\b"
    r"|\bend of (that|the|my) (plan|idea|dream|project)\b|\b(is|are|it's|that's) (now )?off\b(?!\s+to\b)"
    r"|\b(is|it's|that's) (now )?dead\b|\bdead in the water\b|\blost interest\b|\bmoved on from\b|\bgiving it up\b"
    r"|\b(not|won't|never) (going to |gonna )?bother(ing)?\b"
)
_TIME = (
    r"(next|the new|the end of|later|early|mid|late|january|february|march|april|may|june|july|august|september"
    r"|october|november|december|spring|summer|autumn|fall|winter|monday|tuesday|wednesday|thursday|friday"
    r"|saturday|sunday|\d{4}|the (spring|summer|autumn|fall|winter))\b"
)
_POSTPONE = re.compile(
    r"\bpostpon(e|ed|es|ing)\b|\bput(s|ting)? off\b|\bput(s|ting)?\b(\s+[\w']+){1,5}\s+off\s+(until|till|to|for)\b"
    r"|\bpush(ed|es|ing)? back\b|\bput back\b|\bdelay(ed|ing)?\b|\bon hold\b|\bback burner\b|\breschedul(e|ed|ing)\b"
    r"|\bdefer(red|ring|s)?\b|\bwait (until|till)\b|\b(can|will|could|must|to|'ll) wait\b|\bon (ice|pause)\b"
    r"|\bpaus(ed|ing)\b|\b(put|set|putting|setting|laid|lay)\b(\s+[\w']+){0,4}\s+aside\b|\b(push(ed|es|ing)?|mov(ed|es|ing)|bump(ed|ing)?|shift(ed|ing)?)\b"
    rf".{{0,60}}?\b(to|until|till|back to|into)\s+{_TIME}"
)
_DONE = re.compile(
    r"\bfinished\b|\bcompleted?\b|\bdone\b|\bfinally\b|\baccomplished\b|\bachieved\b|\b(ticked|crossed|checked) off\b"
    r"|\bpassed\b|\bgot accepted\b|\bsucceeded\b|\bmanaged (to|a|an|the)\b|\bpulled (it|this|that) off\b"
    r"|\bnailed (it|this|that)\b|\bhanded in\b|\bsubmitted\b|\b(sent|turned) (it |them )?(off|in)\b|\bdelivered\b"
    r"|\bwrapped up\b|\bcame through\b|\bwent (live|well|brilliantly|great|smoothly|fine|perfectly)\b"
    r"|\b(is|are) (finally )?(in|out|up|live)\s*($|[!.])|\blaunched\b|\bpublished\b|\binstalled\b|\bfitted\b"
    r"|\bofficially\b|\bcertified\b|\bqualified\b|\bgraduated\b|\breached\b|\bbehind me\b|\bout of the way\b"
    r"|\bin the post\b|\bover the line\b|\b(is|are|it's) (finally |all )?over\b|\bfinish line\b"
    r"|\ball sorted\b|\bsorted out\b|\bgot (it|that|this) sorted\b"
    r"|\bback from\b"
)
# "I'm done with the banjo": for a skill being learned, an ending without the skill.
_DONE_WITH = re.compile(r"\b(done|finished) with\b")
# A sentence that only wonders, plans, dreams or falls short changes nothing.
_HYPOTHETICAL = re.compile(
    r"\?|\bthinking (about|of)\b|\bconsidering\b|\bnot yet\b|\bshould i\b|\bmight\b|\bmaybe i should\b"
    r"|\bwondering\b|\bwonder\b|\bif i\b|\bwhat if\b|\bdream(t|ed|ing|s)?\b|\bimagin(e|ed|ing)\b"
    r"|\bi'?d (like|love)\b|\bi would (like|love)\b"
)
# Words that, just before a cue, say it did not (fully) happen: "not giving up on", "almost gave up".
_WEAKENED = re.compile(
    r"\b(not|never|no|almost|nearly|won'?t|can'?t|didn'?t|haven'?t|hasn'?t|refuse to|refused to)\b|n't\b"
    r"|\b(want|wanted|hope|hoping|plan|planning|going|thinking|might|may|would|could|should|i'd|we'd)\b"
)
_UNFINISHED = re.compile(
    r"\b(haven'?t|have not|hasn'?t|didn'?t|did not|not|never|won'?t|will|going to|almost|nearly|need to|yet)\b|'ll\b"
    r"|\b(want|wants|hope|hoping|plan|planning|intend|would like|'d like|wish)\b"
    r"|\btomorrow\b"
)
_PARTLY = re.compile(
    r"\b(a|one|another|the first) (chapter|part|page|section|bit|draft) of\b|\bhalfway\b|\bsome of\b"
    r"|\b(half|part|most|parts) (of|the)\b|\bthe rest\b|\bhalf (done|finished|way)\b"
    r"|\b(pages|words|chapters|paragraphs|rows|lengths|bits|squares|pieces) of\b"
    r"|\b(another|more|a few|a couple of) (\w+ )?"
    r"(pages|words|chapters|miles|km|kilos|pounds|euros|dollars|rows|hours)\b"
)
# "I'm still learning chess", "I'm sticking with it", "kept going": the goal goes on.
_PERSISTS = re.compile(
    r"\bstill\b|\bstick(ing)? (with|at)\b|\bkept (going|at it|on)\b|\bkeep going\b|\bcarr(y|ied) on\b"
)
# Past verbs that start, prepare or continue work rather than finish it ("Started the report" is no done report).
_NOT_FINISHING = frozenset(
    {"started", "began", "begun", "continued", "worked", "tried", "planned", "thought", "discussed", "talked",
     "wanted", "needed", "looked", "researched", "drafted", "outlined", "prepared", "practised", "practiced",
     "postponed", "delayed", "moved", "forgot", "missed", "considered", "decided", "asked", "checked", "booked",
     "ordered", "reserved", "scheduled", "signed", "enrolled", "registered", "bought",
     "sold", "lost", "broke", "gave", "threw", "failed", "flunked", "returned", "visited", "did", "had", "made",
     "got", "went"}
)  # fmt: skip
_RELATIONS = (
    r"sister|brother|mum|mom|dad|mother|father|wife|husband|partner|boyfriend|girlfriend|friends?|boss|manager"
    r"|colleagues?|son|daughter|kids|children|neighbours?|neighbors?|cousin|aunt|uncle|gran|grandma|grandad|grandpa"
    r"|grandmother|grandfather|flatmate|roommate|teacher|coach|doctor|therapist|family|parents|fianc\w*|team|boys|girls"
)
_OTHER_PERSON = re.compile(
    rf"\b(he|she|they|his|her|their|hers|theirs)\b|^\s*(my|our) ({_RELATIONS})\b"
    r"|^\s*(dad|mum|mom|someone|everyone|everybody|nobody)\b"
)
_FIRST_PERSON = re.compile(r"\b(i|i'm|i've|i'd|me|my|myself)\b")
# "Laura finished the marathon": a name, then a past verb, is someone else's news.
_NAMED_SUBJECT = re.compile(
    r"^\s*([A-Z][a-z]+)(?:\s+[A-Z][a-z]+)?\s+(\w+ed|ran|won|got|went|did|made|quit|left|gave|sent|sold|built)\b"
)

_IRREGULAR_PAST = {
    "bought": "buy", "sent": "send", "paid": "pay", "lost": "lose", "got": "get", "wrote": "write", "ran": "run",
    "made": "make", "took": "take", "built": "build", "sold": "sell", "gave": "give", "went": "go", "read": "read",
    "won": "win", "met": "meet", "left": "leave", "spent": "spend", "taught": "teach", "brought": "bring",
    "kept": "keep", "told": "tell", "found": "find", "began": "begin", "drove": "drive", "flew": "fly",
    "swam": "swim", "ate": "eat", "did": "do", "saw": "see", "learnt": "learn", "knit": "knit", "put": "put",
    "hit": "hit", "sat": "sit", "done": "do", "written": "write", "taken": "take", "given": "give",
    "swum": "swim", "flown": "fly", "driven": "drive", "quit": "quit", "shut": "shut", "set": "set",
}  # fmt: skip
_GENERIC = frozenset(
    {"today", "finally", "week", "weekend", "morning", "year", "month", "time", "really", "just", "properly",
     "fully", "new", "s", "thing", "idea", "plan", "goal", "whole", "last", "first"}
)  # fmt: skip
# Words that end a goal's object ("the leaking tap | in the kitchen", "my thesis | by summer").
_OBJECT_END = frozenset(
    {"in", "for", "at", "on", "to", "with", "by", "from", "before", "after", "while", "during", "about", "into",
     "this", "next", "until", "when", "so", "because", "and", "or", "every", "each", "than"}
)  # fmt: skip
_PARTICLES = frozenset({"out", "in", "up", "off", "for", "on", "down", "back", "through", "into", "to", "rid", "of"})
# Goals of quitting: saying one quit is reaching them ("quit smoking", "stop biting my nails", "give up sugar").
_QUITTING = frozenset({"quit", "stop", "give", "kick", "ditch"})
_CHAIN_VERBS = frozenset({"learn", "try", "start", "begin", "aim", "remember", "manage", "master", "continue"})
_DETERMINERS = frozenset({"a", "an", "the", "my", "our", "all", "of", "some", "that", "this", "these", "those"})


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


@lru_cache(maxsize=65_536)
def _key(word: str) -> str:
    """A word reduced for matching: irregular past forms to their verb, suffixes off, a doubled final consonant
    single ("submitted" -> "submit", "planned" -> "plan")."""
    word = word.lower().replace("'", "")
    word = _IRREGULAR_PAST.get(word, word)
    if word.endswith("ied") and len(word) > 4:
        word = word[:-3] + "y"  # "applied" -> "apply", "emptied" -> "empty"
    key = stem(word)
    if len(key) > 3 and key[-1] == key[-2] and key[-1] not in "aeiouls":
        key = key[:-1]
    return key


def _same(a: str, b: str) -> bool:
    """Whether two keys name the same word: equal (two letters or more), or one a prefix (of at least 3 letters) of
    the other up to a suffix ("fil" from "filed", "file"; not "well" and "wellcome")."""
    short, long = sorted((a, b), key=len)
    if len(short) < 2:
        return False
    return a == b or (len(short) >= 3 and long.startswith(short) and long[len(short) :] in _SUFFIX_REST)


# What a prefix may lack of a longer form of the same word ("fil" + "e", "renovat" + "ion"): suffixes only, so "car"
# is not "card" and "man" is not "manager".
_SUFFIX_REST = frozenset({"e", "y", "i", "s", "es", "er", "ers", "ion", "ions", "al", "ation", "ment", "ments"})


def _overlap(keys: Sequence[str], sentence_keys: Sequence[str]) -> int:
    return sum(1 for k in keys if any(_same(k, s) for s in sentence_keys))


_CLAUSE_BREAK = re.compile(r"[,;]|:(?!\d)|\bbut\b|\band\b(?!\s+[A-Z])|\bso\b|\bthough\b|\bbecause\b|\bwhile\b")


def _clauses(sentence: str) -> list[str]:
    return [c for c in _CLAUSE_BREAK.split(sentence) if c.strip()]


def sentences_of(text: str) -> list[str]:
    """The sentences of an entry (line breaks and sentence ends), as written."""
    parts = re.split(r"(?<=[.!?])\s+|\n+", text)
    return [p.strip(" -*\t") for p in parts if p.strip(" -*\t")]


def _lower(text: str) -> str:
    return text.lower().replace("\u2019", "'")


def _words(text: str) -> list[str]:
    return re.findall(r"[\w']+", _lower(text))


# -- goals -----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GoalChange:
    """A goal that an entry says is done, dropped or postponed (``due`` is the new date when one is given)."""

    goal_id: str
    status: str  # "done", "dropped" or "postponed"
    sentence: str
    due: date | None = None
    score: float = 0.0


@dataclass(frozen=True)
class _GoalShape:
    """What a goal's title is about: its main verb ("learn to swim" -> swim), the head of its object ("the leaking
    tap in the kitchen" -> leaking, tap: the words a sentence must name to mean this goal), its names, and all its
    other words."""

    verb: str
    first: str  # the title's first word ("stop" in "stop drinking coffee")
    core: tuple[str, ...]
    names: tuple[str, ...]
    objects: tuple[str, ...]
    learning: bool  # "learn to swim": "I can swim now" reaches it
    participles: bool  # its object has a past form ("get my bike serviced")


@lru_cache(maxsize=4096)
def _shape(title: str) -> _GoalShape:
    raw = re.findall(r"[\w'-]+", title)
    lowered = [w.lower() for w in raw]
    if not lowered:
        return _GoalShape("", "", (), (), (), False, False)
    verb, at = lowered[0], 1
    learning = verb in {"learn", "master"}
    # Verb chains: "learn to make sourdough", "finish knitting the blanket", "sort out the claim".
    while at < len(lowered):
        word = lowered[at]
        if word == "to" and verb in _CHAIN_VERBS and at + 1 < len(lowered):
            verb, at = lowered[at + 1], at + 2
        elif word.endswith("ing") and at == 1:
            verb, at = word, at + 1
        elif word in _PARTICLES and at == 1:
            at += 1
        else:
            break
    core: list[str] = []
    for word in lowered[at:]:
        if word in _OBJECT_END and core:
            break
        if word not in _DETERMINERS and word not in STOPWORDS and word not in _GENERIC:
            core.append(_key(word.removesuffix("'s")))
    names = tuple(_key(w) for w in _identifying(raw[at:]) if w[0].isupper())
    objects = tuple(_key(w) for w in content_words(title)[1:] if w not in _GENERIC) or (_key(verb),)
    participles = any(_is_past(w) for w in lowered[at:])
    core_or_verb = tuple(core) or (_key(verb),)
    return _GoalShape(_key(verb), _key(lowered[0]), core_or_verb, names, objects, learning, participles)


def _identifying(words: Sequence[str]) -> list[str]:
    """The words of a goal's object that say WHICH thing it is: the object and where it is ("my grandmother in
    Cork"), not what it is for or when ("Portuguese before the Lisbon trip", "a cake for Anna's party")."""
    kept: list[str] = []
    for word in words:
        if word.lower() in _PURPOSE_OR_TIME:
            break
        kept.append(word)
    return kept


_PURPOSE_OR_TIME = frozenset({"before", "after", "for", "by", "during", "while", "until", "so", "because", "when"})


def _cue_at(pattern: re.Pattern[str], lowered: str) -> re.Match[str] | None:
    """The first match of ``pattern`` that nothing just before it negates or weakens."""
    for found in pattern.finditer(lowered):
        before = " ".join(lowered[: found.start()].split()[-3:])
        if not _WEAKENED.search(before):
            return found
    return None


@dataclass(frozen=True)
class _ClauseCues:
    """What a clause says whatever the goal (read once per clause, then weighed against each goal)."""

    lowered: str
    dropped_by: str | None  # the key of the verb that says a goal was dropped ("quit", "give"), if any
    postponed: bool
    done_with: bool
    unfinished: bool
    done: bool
    past_keys: tuple[str, ...]
    diary: bool  # opens with a past verb that can finish something ("Sent off the report.")


_OPENING_ADVERBS = frozenset({"also", "then", "just", "today", "yesterday", "tonight", "and", "so", "oh", "well"})


@lru_cache(maxsize=4096)
def _cues(clause: str) -> _ClauseCues:
    lowered = _lower(clause).strip()
    words = _words(clause)
    drop = _cue_at(_DROP, lowered)
    # "Also painted the kitchen", "Finally sent off the report": a diary verb after an opening adverb.
    opening = words[1:] if words and (words[0] in _OPENING_ADVERBS or words[0].endswith("ly")) else words
    return _ClauseCues(
        lowered=lowered,
        dropped_by=_key(re.findall(r"[\w']+", drop.group(0))[0]) if drop else None,
        postponed=_cue_at(_POSTPONE, lowered) is not None,
        done_with=_cue_at(_DONE_WITH, lowered) is not None,
        unfinished=bool(_UNFINISHED.search(lowered) or _PARTLY.search(lowered)),
        done=bool(_DONE.search(lowered)),
        past_keys=tuple(_key(w) for w in words if _is_past(w)),
        diary=bool(opening) and _is_past(opening[0]) and opening[0] not in _NOT_FINISHING,
    )


def _goal_cue(clause: str, shape: _GoalShape) -> str | None:
    """Which change a clause announces for a goal of this shape (``_DIARY_DONE``: maybe done, if the clause names
    the goal clearly)."""
    cues = _cues(clause)
    if cues.dropped_by:
        # "Quit smoking" is the goal itself when the goal is to quit.
        said = cues.dropped_by
        quitting = shape.first in _QUITTING or _same(said, shape.first) or _same(said, shape.verb)
        return GoalStatus.DONE.value if quitting and said in _QUITTING else GoalStatus.DROPPED.value
    if cues.postponed:
        return POSTPONED
    if shape.learning and cues.done_with:
        return GoalStatus.DROPPED.value
    if cues.unfinished:
        return None
    if cues.done:
        return GoalStatus.DONE.value
    # "Renewed my passport", "the bathroom is repainted", "adopted a cat" (goal: get a cat): the goal's own verb,
    # or one of its class, in the past tense.
    if any(_same_verb(k, shape.verb) for k in cues.past_keys):
        return GoalStatus.DONE.value
    # "I can swim properly now": a skill learned.
    if shape.learning and re.search(rf"\bcan (\w+ )?{re.escape(shape.verb[:4])}\w*", cues.lowered):
        return GoalStatus.DONE.value
    # Diary style, no subject: "Sent off the quarterly report." (the caller asks for two shared words then).
    return _DIARY_DONE if cues.diary else None


_DIARY_DONE = "done?"


# Verbs that reach the same kind of goal ("get a cat" is reached by "adopted a cat").
_VERB_CLASSES = (
    frozenset({"get", "buy", "adopt", "purchas", "acquir", "pick"}),
    frozenset({"fix", "repair", "mend", "sort"}),
    frozenset({"visit", "go", "travel", "fly", "hike", "walk"}),
    frozenset({"run", "race", "complet", "finish"}),
    frozenset({"write", "finish", "complet", "draft"}),
    frozenset({"move", "relocat"}),
    frozenset({"apply", "submit", "send"}),
    frozenset({"clear", "declutter", "tidy", "empty", "clean"}),
)


def _same_verb(said: str, goal_verb: str) -> bool:
    """Whether a past verb reaches a goal's verb: the same verb, its plain form ("painted" for "repaint"), or one of
    its class."""
    plain = goal_verb[2:] if goal_verb.startswith("re") and len(goal_verb) > 5 else goal_verb
    return _same(said, goal_verb) or _same(said, plain) or any(said in c and goal_verb in c for c in _VERB_CLASSES)


def _is_past(word: str) -> bool:
    return word in _IRREGULAR_PAST or (word.endswith("ed") and len(word) > 4)


def _about_the_writer(clause: str) -> bool:
    if _OTHER_PERSON.search(_lower(clause)):
        return False
    named = _NAMED_SUBJECT.match(clause)
    if named is None:
        return True
    first = named.group(1).lower()
    return _is_past(first) or first in STOPWORDS or first.endswith("ly")


def detect_goal_changes(
    text: str, goals: Sequence[Goal], *, today: date, similarity: Similarity | None = None
) -> list[GoalChange]:
    """The goals among ``goals`` (the user's active ones) that ``text`` says are done, dropped or postponed, each at
    most once. Each clause is read on its own, so one sentence can change several goals ("the licence came through
    and the bathroom is repainted"); a clause with a cue but no goal of its own ("I've dropped it") is matched with
    its whole sentence."""
    changes: dict[str, GoalChange] = {}
    previous = ""
    for sentence in sentences_of(text):
        before, previous = previous, sentence
        if _HYPOTHETICAL.search(_lower(sentence)):
            continue
        clauses = _clauses(sentence) or [sentence]
        for clause in clauses:
            if not _about_the_writer(clause):
                continue
            found = _best_goal_change(clause, clause, goals, today, similarity)
            # "I've dropped it", "it went brilliantly", "Tax return: done": the goal is named elsewhere in it.
            pointing = _POINTS_BACK.search(_lower(clause)) or not _own_words(clause)
            if found is None and pointing and len(clauses) > 1:
                found = _best_goal_change(clause, sentence, goals, today, similarity, diary=False)
            if found is None and before and pointing and _ANAPHOR.search(_lower(clause)):
                # "Sold the guitar. ... that's the end of that plan": the plan is named one sentence earlier.
                found = _best_goal_change(clause, f"{before} {sentence}", goals, today, similarity, diary=False)
            if found and _goes_on(found, clauses, clause, goals):
                continue
            if found and (found.goal_id not in changes or found.score > changes[found.goal_id].score):
                changes[found.goal_id] = GoalChange(found.goal_id, found.status, sentence, found.due, found.score)
    return list(changes.values())


def _goes_on(change: GoalChange, clauses: Sequence[str], cue_clause: str, goals: Sequence[Goal]) -> bool:
    """Whether another clause of the sentence says the dropped goal goes on ("almost quit, but I kept going", "quit
    the chess club's committee but I'm still learning chess")."""
    if change.status != GoalStatus.DROPPED.value:
        return False
    shape = _shape(next(g.title for g in goals if g.id == change.goal_id))
    for clause in clauses:
        if clause is cue_clause or not _PERSISTS.search(_lower(clause)):
            continue
        keys = [_key(w) for w in content_words(clause)]
        own = [k for k in keys if not _PERSISTS.search(k)]
        if _overlap(shape.core + shape.names, keys) or not own or _overlap((shape.verb,), keys):
            return True
    return False


def _best_goal_change(
    clause: str,
    context: str,
    goals: Sequence[Goal],
    today: date,
    similarity: Similarity | None,
    *,
    diary: bool = True,
) -> GoalChange | None:
    """The goal that ``clause``'s cue changes, named in ``context`` (the clause itself, or its whole sentence)."""
    # "Painted the fence instead of the shed": what comes after names what was not done.
    context = re.split(r"\binstead of\b|\brather than\b", context, flags=re.I)[0]
    words = [w for w in content_words(context) if w not in _GENERIC]
    # "booked" is no "books": a past form in the sentence names a goal's thing only if the goal says it that way.
    all_keys = [_key(w) for w in words]
    noun_keys = [_key(w) for w in words if not _is_past(w)]
    by_words: list[tuple[Goal, str, float]] = []  # goals the words name: (goal, change, share of its words)
    by_meaning: list[tuple[Goal, str, float]] = []  # goals only meaning could name
    for goal in goals:
        shape = _shape(goal.title)
        context_keys = all_keys if shape.participles else noun_keys
        # The cue is words only: checked first, so meaning (an embedding) is computed only where a change is said.
        cue = _goal_cue(clause, shape)
        if cue is None:
            continue
        shared = _overlap(shape.objects, context_keys)
        named = _overlap(shape.core + shape.names, context_keys) > 0
        if cue == _DIARY_DONE:
            cue = GoalStatus.DONE.value if diary and named and shared >= 2 else None
        if cue is None or not _same_thing(context, shape, cue):
            continue
        share = shared / len(shape.objects)
        (by_words if named or shared >= 2 else by_meaning).append((goal, cue, share))
    # Meaning (an embedding per goal) is asked only to break a tie between goals the words name, or when they name
    # none: one goal named by its words needs no model.
    if len(by_words) == 1:
        scored = [(by_words[0], by_words[0][2])]
    elif by_words:
        scored = [(c, c[2] + (similarity(context, c[0].title) if similarity else 0.0)) for c in by_words]
    elif similarity:
        scored = [(c, c[2] + m) for c in by_meaning if (m := similarity(context, c[0].title)) >= 0.75]
    else:
        scored = []
    if not scored:
        return None
    (goal, cue, _share), score = max(scored, key=lambda item: item[1])
    due = new_due(context, today) if cue == POSTPONED else None
    return GoalChange(goal.id, cue, context, due, score)


def _own_words(clause: str) -> list[str]:
    """The words of a clause that could name a goal: not its cue, numbers or generic words ("I finished in 2:03!"
    names nothing)."""
    return [
        w
        for w in content_words(clause)
        if w.isalpha() and w not in _GENERIC and not (_DONE.search(w) or _DROP.search(w) or _POSTPONE.search(w))
    ]


_POINTS_BACK = re.compile(r"\b(it|that|this|them|those)\b")
_ANAPHOR = re.compile(r"\b(it|that|this) (plan|idea|project|goal|dream)\b|\b(dropped|abandoned|quit|scrapped) it\b")
# Nouns that stand for a goal's activity rather than another thing ("the Japan trip", "the sourdough thing").
_ACTIVITY_NOUNS = _wordset(
    "trip visit thing idea plan project lesson lessons course class classes stuff business journey "
    "holiday goal dream marathon challenge attempt training venture mission job work list party election "
    "campaign test exam race season plans"
)
_PART_NOUNS = _wordset("introduction intro chapter section draft outline proposal abstract conclusion summary")
_TIME_WORDS = _wordset(
    "today tonight yesterday tomorrow now yet already again too at last week weekend month year morning "
    "evening afternoon night instead either"
)
_ACTIVITY_SUFFIXES = ("tion", "sion", "ment", "ing", "al", "ance", "ence")


def _names_another_thing(words: Sequence[str], keys: Sequence[str], shape: _GoalShape) -> bool:
    """Whether each of the goal's words in the clause only qualifies another noun: "the kitchen tap" (goal: repaint
    the kitchen), "the bike commute" (goal: fix the bike brakes), "the chess club's committee"."""
    found = [at for at, key in enumerate(keys) if any(_same(key, w) for w in shape.core)]
    if not found or _overlap(shape.names, keys) or shape.core == (shape.verb,):
        return False
    for at in found:
        following = words[at + 1].removesuffix("'s") if at + 1 < len(words) else ""
        if following in _PART_NOUNS:
            continue  # "the thesis introduction": a part of it
        if (
            not following
            or following in STOPWORDS
            or following in _ACTIVITY_NOUNS
            or following.endswith(_ACTIVITY_SUFFIXES)
            or following.endswith("s")  # a verb ("the kitchen looks great") as likely as a plural
            or _is_past(following)
            or following in _TIME_WORDS
            or following.endswith("ly")
            or _same_verb(_key(following), shape.verb)
            or any(_same(_key(following), k) for k in shape.objects)
            or not following.isalpha()
        ):
            return False
    return True


_GERUND_AFTER = re.compile(r"\b(?:finished|completed|started|stopped|quit|gave up)\s+(\w+ing)\b")


def _same_thing(clause: str, shape: _GoalShape, cue: str) -> bool:
    """False when the clause names a different thing that only shares words with the goal: "fixed the bike light"
    (goal: the bathroom light), "finished a book" (goal: a children's book), "finished reading a novel" (goal:
    write a novel)."""
    words = _words(clause)
    keys = [_key(w) for w in words]
    gerund = _GERUND_AFTER.search(_lower(clause))
    if (
        cue == GoalStatus.DONE.value
        and gerund
        and gerund.group(1) not in {"working", "doing", "trying", "getting"}
        and not _same(_key(gerund.group(1)), shape.verb)
        and _key(gerund.group(1)) not in shape.objects
    ):
        return False
    if _names_another_thing(words, keys, shape):
        return False
    head = shape.core[-1]
    modifiers = shape.core[:-1]
    if modifiers and not _overlap((head,), keys) and _qualified_otherwise(words, keys, shape):
        return False
    if not modifiers or _overlap(modifiers, keys) or _overlap(shape.names, keys):
        return True
    for at, key in enumerate(keys):
        if at and _same(key, head):
            before = words[at - 1]
            if any(c.isdigit() for c in before):
                continue
            if before in {"a", "an", "another"} or (before not in STOPWORDS and before not in _DETERMINERS):
                return False
    return True


def _qualified_otherwise(words: Sequence[str], keys: Sequence[str], shape: _GoalShape) -> bool:
    """Whether the clause names none of the goal's head or names, and each goal word it has is qualified by a word
    the goal lacks: "web course" is another thing than "the course deposit at Barro"."""
    if _overlap(shape.names, keys):
        return False
    found = [at for at, key in enumerate(keys) if any(_same(key, m) for m in shape.core[:-1])]
    return bool(found) and all(
        at > 0
        and words[at - 1].isalpha()
        and words[at - 1] not in STOPWORDS
        and words[at - 1] not in _DETERMINERS
        and words[at - 1] not in _TIME_WORDS
        and not words[at - 1].endswith("ly")  # "officially scuba certified": an adverb qualifies no noun
        and not _is_past(words[at - 1])
        and not any(_same(keys[at - 1], k) for k in (*shape.objects, shape.verb))
        for at in found
    )


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


# Stance words, as keys (``_key``: "loved", "loves" -> love). Both lists hold only words that take a side.
def _keys(words: str) -> frozenset[str]:
    return frozenset(_key(w) for w in words.split())


_POSITIVE = _keys(
    "love like enjoy prefer adore trust believe value fan good harmless fond great brilliant wonderful amazing"
    " best better fun helpful helps worth hooked person appreciate decent competent confident capable obsessed keen"
    " passionate"
)
_NEGATIVE = _keys(
    "hate dislike bad afraid scared fear quit stopped tired fed harmful off bore bores bored boring detest"
    " loathe awful terrible tedious pointless useless overrated gimmick waste worst sick annoying miserable anxious"
    " lazy dread killing draining exhausting stressful dull unbearable nightmare"
)
# "can't bear", "cannot handle": any "can't" before a verb of taking is against.
_NEGATION = re.compile(r"\b(not|no longer|don'?t|doesn'?t|never|can'?t|cannot|won'?t|isn'?t|aren'?t)\b|n't\b")
_CHANGE = re.compile(
    r"\bno longer\b|\bany ?more\b|\bchanged my mind\b|\bturns out\b|\bcome (to|around|round)\b|\bthese days\b"
    r"|\bnow\b|\bnowadays\b|\bactually\b|\bquit\b|\bstopped\b|\bafter all\b|\bnot anymore\b|\bused to\b"
    r"|\bgrown (to|on)\b|\bbecome\b"
)
# Words that say the old view itself was revised: they need no stance word of their own ("I was wrong about jazz",
# "I used to think money didn't matter", "I've come round to cooking", "changed my view on meditation").
_REVISED = re.compile(
    r"\bused to (think|believe|feel|say|assume|be|hate|love|like|dislike|enjoy|prefer|value)\b"
    r"|\b(was|were|been) (\w+ )?wrong about\b|\bchanged my (mind|view|opinion|tune|thinking)\b"
    r"|\bnot so sure about\b|\bsecond thoughts about\b|\bmind changed\b|\bno longer (think|believe|feel)\b"
)
# A view turned for or against something: a stance of their own, so they replace only the other side's view.
_TURNED_FOR = re.compile(
    r"\bcome (round|around) to\b|\b(grown|growing|grew|grows) on me\b|\bwarmed (up )?to\b|\bgrown to\b"
)
_TURNED_AGAINST = re.compile(
    r"\b(fallen|fell|falling) out of love\b|\b(gone|went|going) off\b"
    r"|\blost (my |the |all )?(taste|appetite|interest|patience)\b"
)
_SENTIMENT = (
    _POSITIVE
    | _NEGATIVE
    | _keys(
        "think am really actually now stand up with maybe used wrong changed mind view round around come grown nowadays"
        " days honestly find turn"
    )
)
_FAVOURITE = (
    re.compile(r"\bfavou?rite (\w+) (?:is|are) (?:now |still |definitely |probably )?(\w+)"),
    re.compile(r"\b(\w+) (?:is|are) (?:now )?my (?:new )?favou?rite (\w+)"),
)


@lru_cache(maxsize=16_384)
def polarity(text: str) -> int:
    """+1 when a statement is for something, -1 against, 0 when it says neither (a negation flips the sign)."""
    lowered = _lower(text)
    keys = {_key(w) for w in re.findall(r"[\w']+", lowered)}
    sign = 1 if keys & _POSITIVE else -1 if keys & _NEGATIVE else 0
    if keys & _POSITIVE and keys & _NEGATIVE:
        sign = -1
    if _NEGATION.search(lowered):
        sign = -sign if sign else -1
    return sign


@lru_cache(maxsize=16_384)
def _favourite(text: str) -> tuple[str, str] | None:
    """(kind, thing) of a statement of a favourite: "my favourite season is summer" -> (season, summer)."""
    lowered = _lower(text)
    found = _FAVOURITE[0].search(lowered)
    if found:
        return _key(found.group(1)), _key(found.group(2))
    found = _FAVOURITE[1].search(lowered)
    return (_key(found.group(2)), _key(found.group(1))) if found else None


@lru_cache(maxsize=16_384)
def _topic(text: str) -> tuple[str, ...]:
    """The words a belief is about: no stance, change or negation words, no pieces of contractions ("don", "t")."""
    words = [w for w in content_words(text) if len(w) > 2 and w not in _NOT_TOPIC]
    return tuple(k for k in (_key(w) for w in words) if k not in _SENTIMENT)


_NOT_TOPIC = _wordset(
    "don doesn didn isn aren wasn weren can won couldn wouldn shouldn haven hasn anymore longer ever "
    "never still always today really just finally going gone get got getting make made thing things lot way bit "
    "kind sort part much many even also something anything everything one"
)


def _new_favourite(sentence: str, old: str) -> bool:
    """Whether ``sentence`` names another favourite of the same kind ("Autumn is my favourite season now" after
    "my favourite season is summer")."""
    new, before = _favourite(sentence), _favourite(old)
    return bool(new and before and new[0] == before[0] and not _same(new[1], before[1]))


def _holds_still(sentence: str, old: str, topic: Sequence[str]) -> bool:
    """Whether a clause of the sentence says the old view still holds ("..., but I still enjoy cooking")."""
    return any(
        re.search(r"\bstill\b", _lower(clause))
        and polarity(clause) == polarity(old)
        and _overlap(topic, _topic(clause))
        for clause in _clauses(sentence)
    )


def detect_belief_changes(
    text: str, psyche: Sequence[Psyche], *, similarity: Similarity | None = None
) -> list[BeliefChange]:
    """The current psyche memories that a first-person sentence of ``text`` replaces: one of its clauses speaks of
    the same thing and either says the view was revised ("I was wrong about", "I used to think"), says it changed
    ("no longer", "now", "grown on me") to the other side, takes the opposite side, or names another favourite of
    the same kind. A clause without words of its own ("I've grown to love them") speaks of its sentence's topic."""
    changes: dict[str, BeliefChange] = {}
    for sentence in sentences_of(text):
        lowered = _lower(sentence)
        if _HYPOTHETICAL.search(lowered) or not _FIRST_PERSON.search(lowered) or _OTHER_PERSON.search(lowered):
            continue
        for clause in _clauses(sentence) or [sentence]:
            for old in psyche:
                score = _replaces(clause, sentence, old.text, similarity)
                if score is not None and (old.id not in changes or score > changes[old.id].score):
                    changes[old.id] = BeliefChange(old.id, sentence, score)
    return list(changes.values())


def _stance(clause: str) -> int:
    lowered = _lower(clause)
    if _TURNED_FOR.search(lowered):
        return 1
    if _TURNED_AGAINST.search(lowered):
        return -1
    return polarity(clause)


def _replaces(clause: str, sentence: str, old: str, similarity: Similarity | None) -> float | None:
    """How well ``clause`` (of ``sentence``) replaces the view ``old``; ``None`` when it does not."""
    lowered = _lower(clause)
    keys = _topic(clause) or _topic(sentence)
    topic = _topic(old)
    stance, before = _stance(clause), polarity(old)
    # Cues and polarity first: meaning (an embedding) is computed only for a clause that could replace this view.
    flipped = stance * before < 0 or _preference_flipped(clause, old)
    cue = bool(_CHANGE.search(lowered))
    replaced = _new_favourite(sentence, old) or (cue and _preference_replaced(clause, old))
    changed = bool(_REVISED.search(lowered)) or (cue and stance not in (0, before))
    if not (flipped or changed or replaced):
        return None
    if _holds_still(sentence, old, topic) or _different_kind(old, clause):
        return None
    revised = bool(_REVISED.search(lowered)) or replaced or _preference_flipped(clause, old)
    if not revised and not _same_topic(clause, sentence, topic):
        # A stance that does not name the old view's things must be about the same thing, not share a word with it.
        return None
    shared = _overlap(topic, keys) if topic else 0
    if replaced and not shared:
        # "I prefer my Kindle these days, paper books hurt my wrists": the old favourite is named elsewhere.
        shared = _overlap(topic, _topic(sentence))
    if shared:
        return shared / max(1, len(topic))
    # Meaning (an embedding) only where no word is shared.
    meaning = similarity(sentence, old) if similarity else 0.0
    return meaning if meaning >= 0.8 else None


def _same_topic(clause: str, sentence: str, topic: Sequence[str]) -> bool:
    """Whether a clause taking a stance speaks of the old view's topic: the words they share cover the old view's
    topic or the clause's own ("I'm sick of the city" for "I love living in the city"), not one word in passing ("my
    hands shaking" for "making things with my hands", "evening runs" for "running in the heat"). A clause with no
    words of its own borrows its sentence's topic only when it is the writer's view said to have changed ("I've
    grown to love them") or its sentence says the old view was revised ("I changed my mind about X, it is harmful"):
    "I enjoyed it" after an event, or "which is never good", is about that event, not a view."""
    own = _topic(clause)
    if not own:
        lowered = _lower(sentence)
        writer_changed = bool(_FIRST_PERSON.search(_lower(clause)) and _CHANGE.search(lowered))
        return (writer_changed or bool(_REVISED.search(lowered))) and bool(_overlap(topic, _topic(sentence)))
    shared = _overlap(topic, own)
    return bool(shared) and shared in (len(topic), len(own))


_PREFER = re.compile(r"\bprefer(?:s|red)?\b(?P<liked>.*?)(?:\b(?:to|over|rather than)\b(?P<disliked>.*))?$")
_BETTER = re.compile(r"(?P<liked>.*)\b(?:better than|over)\b(?P<disliked>.*)")


@lru_cache(maxsize=16_384)
def _preference(text: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """What a view puts first and what it puts after: "I prefer tea to coffee" -> ([tea], [coffee]), "cats are
    better than dogs" -> ([cat], [dog]); a plain liking puts its topic first ("I'm a dog person" -> ([dog], []))."""
    lowered = _lower(text)
    found = _PREFER.search(lowered) or _BETTER.search(lowered)
    if found is None:
        return (_topic(text), ()) if polarity(text) > 0 else None
    return _topic(found.group("liked")), _topic(found.group("disliked") or "")


def _preference_replaced(clause: str, old: str) -> bool:
    """Whether a preference now names another first choice ("I now prefer working at the office" after "I prefer
    working from home"): each has a word the other lacks."""
    if not (_PREFER.search(_lower(clause)) or _favourite(clause)) or polarity(old) <= 0:
        return False
    new, before = _preference(clause), _preference(old)
    if not new or not before or not new[0] or not before[0]:
        return False
    return any(not _overlap([k], before[0]) for k in new[0]) and any(not _overlap([k], new[0]) for k in before[0])


def _preference_flipped(clause: str, old: str) -> bool:
    """Whether the clause prefers what the old view put after, or puts after what it preferred ("I prefer it to
    working alone now" after "I prefer working alone")."""
    new, before = _preference(clause), _preference(old)
    if new is None or before is None:
        return False
    return bool(_overlap(before[0], new[1]) or _overlap(before[1], new[0]))


def _different_kind(old: str, clause: str) -> bool:
    """Whether the one word the two share names different kinds of thing: "video games" and "board games",
    "electric cars" and "my old car"."""
    old_words, new_words = words(old), words(clause)
    old_keys, new_keys = [_key(w) for w in old_words], [_key(w) for w in new_words]
    shared = {
        k
        for k, w in zip(old_keys, old_words, strict=True)
        if w not in STOPWORDS and k not in _SENTIMENT and any(_same(k, n) for n in new_keys)
    }
    if len(shared) != 1:
        return False
    word = shared.pop()
    at_old = old_keys.index(word)
    at_new = next(i for i, n in enumerate(new_keys) if _same(word, n))
    modifiers = [old_words[at_old - 1] if at_old else "", new_words[at_new - 1] if at_new else ""]
    usable = [
        _key(m)
        for m in modifiers
        if len(m) > 2 and m not in STOPWORDS and m not in _NOT_TOPIC and _key(m) not in _SENTIMENT
    ]
    return len(usable) == 2 and not _same(*usable)
