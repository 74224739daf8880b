"""The offline extractor: deterministic English rules that turn a journal entry into an ``Extraction``.

It is the default provider when no API key is set. It is honest rather than clever: it only reports what a
first-person sentence states in a recognisable way ("I love ...", "I need to ... by Friday", "- [ ] ..."), keeps the
writer's own words, and never invents. What it cannot see (irony, implied goals, a sentence such as "spontaneous
trips stress me out") it leaves out; an LLM provider does better there.

Pipeline, one pass each, linear in the length of the entry:

1. ``split_sentences``: lines, bullets and checkboxes, then sentences (abbreviations such as "Dr." and "e.g." do not
   end one). Quoted speech is masked for the rules, so ``she said "I want to be a pilot"`` gives no goal.
2. Entities: capitalised name sequences, typed by cue words around them (``with Sarah`` -> person, ``in Lisbon`` ->
   place, ``Acme Corp`` -> org), plus hashtags and recurring lowercase nouns as topics.
3. Psyche and goals: first-person patterns, skipping questions, negations, reported speech and conditionals.
4. Episode: a headline, a summary made of the writer's own informative sentences, and an importance from cues.

Limits, so a 20,000-word entry stays fast and its extraction stays readable: at most ``MAX_PSYCHE`` psyche items,
``MAX_GOALS`` goals, ``MAX_ENTITIES`` entities (the most mentioned) and ``MAX_TOPICS`` recurring-word topics.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from persona.config import Settings, get_settings
from persona.errors import ProviderError
from persona.llm.base import Embedder, ExtractedEntity, ExtractedGoal, ExtractedPsyche, Extraction, Provider
from persona.llm.dates import WEEKDAYS, find_due
from persona.llm.embedding import HashEmbedder
from persona.models import EntityKind, GoalKind, GoalStatus, PsycheKind, canonical_name
from persona.text import STOPWORDS, stem

MAX_PSYCHE = 50
MAX_GOALS = 50
MAX_ENTITIES = 100
MAX_TOPICS = 5
TITLE_WORDS = 10
GOAL_TITLE_WORDS = 8
CLAUSE_WORDS = 25


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_triggers = _words
_stem = lru_cache(maxsize=65_536)(stem)


# ---------------------------------------------------------------------------------------------------------------------
# Word lists. Small on purpose: cues beat dictionaries, and every word here is one a reader can check.

_MONTHS = _words(
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec"
)
_NOT_NAMES = (
    _words(
        "i i'm i've i'd i'll im me my mine myself we we're we've our us you your he he's his him she she's her "
        "they they're their them it it's its this that these those the a an and but or so if when then also just "
        "yes no not oh ok okay hey hi hello dear thanks thank wow ugh lol omg today tonight tomorrow yesterday "
        "morning evening afternoon night todo to-do note reminder remind goal goals project plan plans idea "
        "maybe still really finally anyway honestly sometimes everyone everything nothing someone something "
        "what why how where who which there here please let let's can't don't didn't won't"
    )
    | frozenset(WEEKDAYS)
    | _MONTHS
    | STOPWORDS
)
_ACRONYM_SKIP = _words("ok todo fyi asap lol omg btw tv pm am diy eta tbh imo rip ps nb tl dr aka")
# Words that often open a sentence capitalised and are not names ("Went to ...", "Dinner at ...").
_COMMON_STARTERS = _words(
    "went got had met saw took made ate spent started finished read watched called texted walked ran drove flew "
    "visited bought booked tried felt thought woke slept worked cooked cleaned left came did said told asked "
    "dinner lunch breakfast brunch coffee tea work meeting call class today's big long quiet good great bad "
    "best worst first last next new old busy lazy rainy sunny cold hot weekly daily monthly things thing note "
    "another every some any most more less after before during since until while because although though "
    "still even never always often usually sometimes back home off out up down over again once twice "
    "happy sad tired excited grateful proud stressed anxious nervous feeling feel lovely nice amazing awful "
    "weird funny strange random small huge little quick slow early late morning afternoon evening night "
    "finally honestly apparently luckily unfortunately hopefully actually basically seriously obviously "
    "ugh wow yay hmm well so anyway besides plus also meanwhile later then now yesterday tomorrow today "
    "budget check review update plans thoughts notes goals ideas list shopping groceries chores errands "
    "run walk hike swim gym yoga training practice session lesson exam test trip holiday vacation weekend "
    "should do does would could might must will can shall need want love like hate enjoy remember don't"
)
_TITLES = _words("dr dr. mr mr. mrs mrs. ms ms. prof prof. sir dame rev rev.")
_KIN_TITLES = _words("aunt auntie uncle grandma grandpa granny grandad grandpa nana nan gran cousin coach")
_FAMILY = _words("mum mom dad mummy mommy daddy mama papa grandma grandpa granny grandad nana nan gran")
_ORG_WORDS = _words(
    "inc inc. ltd ltd. llc corp corp. corporation co co. company university college school academy institute "
    "bank group labs lab foundation agency ministry council club society team studios studio partners "
    "airlines airways fc united associates industries technologies systems solutions consulting press media"
)
_PLACE_WORDS = _words(
    "street st st. road rd rd. avenue ave lane park cafe café coffeehouse beach city town village lake river "
    "mountain mount mt mt. hill hills bay island station airport square market museum bridge hotel restaurant "
    "bar pub gardens garden valley forest woods trail coast harbour harbor tower hall centre center mall "
    "hospital church cathedral library gym bakery theatre theater cinema stadium arena zoo castle palace "
    "falls canyon desert peninsula county province state kingdom republic point heights"
)
_ANY_TITLE = _TITLES | _KIN_TITLES | frozenset(t.rstrip(".") for t in _TITLES)
_NAME_SUFFIXES = _ORG_WORDS | _PLACE_WORDS
_PERSON_VERBS = _words(
    "said says told tells asked asks called calls texted texts messaged emailed replied answered wrote writes "
    "laughed smiled cried proposed suggested mentioned thinks thought wants wanted came comes visited invited "
    "helped gave brought cooked hugged agreed admitted insisted promised explained reckons feels felt knows "
    "loves hates likes"
)
_PERSON_BEFORE = _words(
    "with friend friends sister brother mum mom dad wife husband partner boyfriend girlfriend son daughter boss "
    "colleague colleagues coworker neighbour neighbor cousin aunt uncle niece nephew told called met texted "
    "asked emailed messaged thanked hugged invited therapist doctor teacher coach mentor baby kid fiancé fiancée "
    "manager roommate flatmate housemate grandson granddaughter by"
)
_SPEECH_BEFORE_TO = _words(
    "talked spoke speak talk wrote write said say listened replied explained apologised apologized introduced "
    "sent gave lent handed waved married engaged message text reply letter email call chat"
)
_FROM_PERSON = _words("text message email call letter gift card note present visit news")
_PLACE_BEFORE = _words(
    "in at to from near around visit visited visiting into toward towards across through via outside inside "
    "reached arrived leaving left moved flew drove walked hiked trip"
)
_WORK_WORDS = _words(
    "work works working worked job jobs interview internship contract role position offer hired employed "
    "joined client clients office"
)
_WORK_THINGS = _words(
    "draft drafts roadmap roadmaps meeting meetings review reviews presentation presentations report reports deck "
    "demo demos launch standup offsite sprint project projects proposal pitch budget deadline release shift "
    "workshop onboarding all-hands hackathon"
)
"""Work artefacts: "the roadmap draft at Acme" is at an organisation, where "lunch at Acme" could be anywhere."""
_PERIOD_CODE = re.compile(r"(?:Q[1-4]|H[12]|FY\s?\d{2}(?:\d{2})?|W\d{1,2})(?:['’]\d{2})?", re.IGNORECASE)
"""Quarters, halves, fiscal years and week numbers ("Q4", "H2", "FY24"): dates, not names."""
_STUDY_BEFORE = _words(
    "learn learning learnt learned study studying studied speak speaking practise practising practice practicing "
    "teach teaching taught read reading about"
)
_POSSESSED_BY_PEOPLE = _words(
    "birthday wedding funeral party mum mom dad sister brother wife husband partner kids children son daughter "
    "face house flat place dog cat car room new baby voice idea advice boyfriend girlfriend family friend"
)
# Lowercase words too general to be a topic, however often they come up.
_GENERIC = STOPWORDS | _words(
    "really just like time day days week weeks thing things going went think thought know knew want wanted "
    "need needed feel felt good great much many still even back well today tomorrow yesterday morning night "
    "evening afternoon made make makes said told people little maybe something anything everything nothing "
    "always never again because while since though although would could should might must shall will lot "
    "lots bit kind sort way first last next long new old right left take took come came keep kept look "
    "looked seem seemed tried trying start started get got getting gets around another every other else "
    "actually pretty quite enough almost already also less more most best better worse worst year years "
    "month months hour hours minute minutes done doing does said says saying tell tells went goes going "
    "thinking feeling felt feels wish hope hoped love loved like liked lovely nice amazing awesome okay fine "
    "sure yeah cannot can't don't didn't won't isn't wasn't i'm i've i'll i'd it's that's there's let's "
    "myself yourself himself herself ourselves themselves someone everyone anyone somebody nobody"
)
_EMOTION_WORDS = _words(
    "love loved hate hated cried crying tears angry furious anxious anxiety scared afraid terrified thrilled "
    "excited ecstatic overjoyed devastated heartbroken proud grateful ashamed guilty lonely happiest saddest "
    "panic panicked depressed elated relieved overwhelmed miserable jealous betrayed amazing awful terrible "
    "wonderful incredible"
)
# Cues of a weighty day: single words are looked up in a sentence's word set, phrases searched in lowercase text.
_LIFE_EVENT_WORDS = _words(
    "died funeral wedding married engaged proposed pregnant born promotion promoted fired diagnosed hospital "
    "accident breakup divorce graduated surgery retired redundant"
)
_LIFE_EVENT_PHRASES = ("passed away", "laid off", "broke up", "new job", "got the job", "moved house", "bought a house")
_HIGHLIGHT_WORDS = _words("finally milestone life-changing")
_HIGHLIGHT_PHRASES = (
    "big news", "first time", "never forget", "best day", "worst day", "life changing", "dream come true",
    "can't believe", "cannot believe",
)  # fmt: skip


def _cue_count(words: frozenset[str] | set[str], lowered: str, single: frozenset[str], phrases: tuple[str, ...]) -> int:
    """How many distinct cues of one family a text holds."""
    return len(single.intersection(words)) + sum(1 for phrase in phrases if phrase in lowered)


# ---------------------------------------------------------------------------------------------------------------------
# Sentences


@dataclass(slots=True)
class Sentence:
    """One sentence (or bullet item) of an entry.

    ``text`` is as written (whitespace folded); ``norm`` has the same length, straight apostrophes, and quoted speech
    masked with underscores, so rules match on ``norm`` and quote from ``text`` at the same offsets.
    """

    text: str
    norm: str
    index: int
    bullet: bool = False
    checkbox: str | None = None  # "open" or "done" for "- [ ]" / "- [x]" items
    section: str | None = None  # the to-do style heading a bullet sits under ("Plans for the weekend:")
    heading: bool = False
    tokens: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, word) in ``text``
    words: frozenset[str] = frozenset()  # its words, lowercased, straight apostrophes: rules run only if triggered

    def tokenize(self) -> None:
        """Fill ``tokens`` and ``words`` (once per sentence; every later step reads them)."""
        self.tokens = [(m.start(), m.end(), m.group(0)) for m in _TOKEN.finditer(self.text)]
        self.words = frozenset(_TOKEN.findall(self.norm.lower()))  # quoted speech is masked out of ``norm``


_TOKEN = re.compile(r"[#@]?[^\W_](?:[\w&]|['’.-](?=[^\W_]))*")
_QUOTED = re.compile(r"\"[^\"\n]{1,400}\"|“[^”\n]{1,400}”")
_BULLET = re.compile(
    r"^[ \t]*(?:(?P<mark>[-*•‣◦–+]|\d{1,3}[.)])[ \t]+)?(?:\[(?P<box>[ xX✓✔]?)\][ \t]*)?",
)
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)")
_LAST_TOKEN = re.compile(r"(\S+)$")
_ABBREVIATIONS = _words("dr mr mrs ms prof st sr jr mt rev gen capt lt sgt fr vs")
_SOFT_ABBREVIATIONS = _words("e.g i.e etc approx a.m p.m no cf incl esp")
_GOAL_HEADING = re.compile(
    r"^\s*(?:my\s+)?(?:to-?\s?dos?|todo\s+list|to-do\s+list|tasks?|plans?|goals?|things\s+to\s+do|checklist|"
    r"this\s+week|next\s+week|this\s+weekend|(?:shopping|grocery|groceries|packing)(?:\s+list)?|errands|"
    r"resolutions?)\b",
    re.IGNORECASE,
)


def _mask_quotes(text: str) -> str:
    """Replace the inside of double-quoted spans with underscores (same length), keeping whitespace."""
    return _QUOTED.sub(lambda m: m.group(0)[0] + re.sub(r"\S", "_", m.group(0)[1:-1]) + m.group(0)[-1], text)


def _fold(text: str) -> str:
    return " ".join(text.split())


def _split_span(work: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Sentence spans inside ``work[start:end]``: split after . ! ? unless the word before is an abbreviation."""
    begin = start
    for match in _SENTENCE_END.finditer(work, start, end):
        punct = match.group(0)
        if punct == ".":
            before = _LAST_TOKEN.search(work, max(begin, match.start() - 12), match.start())
            word = before.group(1).lstrip("([\"'").lower() if before else ""
            following = work[match.end() : match.end() + 2].strip()[:1]
            if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha() and word != "i"):
                continue
            if word in _SOFT_ABBREVIATIONS and (not following or following.islower() or following.isdigit()):
                continue
        yield begin, match.end()
        begin = match.end()
    if work[begin:end].strip():
        yield begin, end


def split_sentences(text: str) -> list[Sentence]:
    """The sentences of ``text``: bullets and checkbox items are their own sentences, headings too.

    A line ending in ":" is a heading; so is a short line without closing punctuation that bullets follow ("Weekly
    review"). A line break ends a sentence unless the line before has no closing punctuation and the next line starts
    in lowercase (hard-wrapped prose).
    """
    work = _mask_quotes(text.replace("’", "'"))
    sentences: list[Sentence] = []
    section: str | None = None
    prose: list[int] = []  # [start, end] of the prose being gathered
    short_line: str | None = None  # the last line, if it could be the heading of a list that follows

    def flush() -> None:
        if prose:
            for x, y in _split_span(work, prose[0], prose[1]):
                _add(sentences, text[x:y], work[x:y])
            prose.clear()

    for line in re.finditer(r"[^\n]+", work):
        content = line.group(0)
        stripped = content.strip()
        if not stripped:
            continue
        marker = _BULLET.match(content)
        if marker is not None and (marker.group("mark") or marker.group("box") is not None):
            flush()
            if short_line is not None and sentences and sentences[-1].norm == _fold(short_line):
                sentences[-1].heading = True
                section = short_line if _GOAL_HEADING.match(short_line) else None
            short_line = None
            box = marker.group("box")
            first = len(sentences)
            for x, y in _split_span(work, line.start() + marker.end(), line.end()):
                _add(sentences, text[x:y], work[x:y])
            if len(sentences) > first:
                item = sentences[first]
                item.bullet, item.section = True, section
                item.checkbox = None if box is None else ("open" if not box.strip() else "done")
            continue
        ends_open = stripped[-1] not in ".!?:;…"
        if prose and stripped[:1].islower() and work[prose[0] : prose[1]].rstrip()[-1:] not in ".!?:;…":
            prose[1] = line.end()  # hard-wrapped prose continues
            short_line = None
            continue
        flush()
        section = None
        if stripped.endswith(":"):
            _add(sentences, text[line.start() : line.end()], content, heading=True)
            section = stripped if _GOAL_HEADING.match(stripped) else None
            short_line = None
            continue
        short_line = stripped if ends_open and len(stripped.split()) <= 6 else None
        prose[:] = [line.start(), line.end()]
    flush()
    return sentences


def _add(sentences: list[Sentence], raw: str, norm: str, *, heading: bool = False) -> None:
    folded = _fold(raw)
    if folded:
        sentence = Sentence(folded, _fold(norm), len(sentences), heading=heading)
        sentence.tokenize()
        sentences.append(sentence)


# ---------------------------------------------------------------------------------------------------------------------
# Entities


_CONNECTORS = _words("of de da di del van von der den la le du dos das y")
_FOLLOW_WORD = re.compile(r"\s*([\w']+)(?:\s+([\w']+))?")


@dataclass(slots=True)
class _Candidate:
    """Everything seen of one canonical name in an entry."""

    surfaces: Counter[str] = field(default_factory=Counter)
    votes: Counter[EntityKind] = field(default_factory=Counter)
    sentences: list[int] = field(default_factory=list)
    aliases: set[str] = field(default_factory=set)
    order: int = 0


def _is_capitalised(token: str) -> bool:
    if not token[:1].isupper():
        return False
    lower = token.lower()
    if lower in _NOT_NAMES or lower in _ACRONYM_SKIP or (lower[-1:] == "s" and lower[:-1] in WEEKDAYS):
        return False
    return not (len(token) > 1 and token.isupper() and len(token) > 6)  # SHOUTING, not an acronym


# Irregular past forms that open journal sentences ("Gave Ruth the blanket"): no suffix gives them away.
_IRREGULAR_PAST = _words(
    "gave brought bought caught taught sent lent built fed paid sold wrote rode broke chose spoke hid drank swam "
    "began knew grew threw wore tore forgot forgave heard held kept lost meant put shut stood struck swept "
    "understood found fought laid sought shot showed hugged kissed helped thanked invited joined phoned emailed "
    "messaged hosted picked dropped drove took"
)  # not "Drew", "Sang", "Won", "Hung", "Led": first names and surnames too


def _looks_like_verb(token: str) -> bool:
    lower = token.lower()
    return lower in _COMMON_STARTERS or lower in _IRREGULAR_PAST or (len(lower) > 5 and lower.endswith(("ed", "ing")))


_OPENERS = frozenset('"“:(')  # after these, a capital letter opens a sentence-like unit


def _run_end(text: str, tokens: list[tuple[int, int, str]], i: int) -> int:
    """The index of the last token of the name run starting at token ``i``.

    A run continues over single spaces (and ". " after a title such as "Dr.") while words are capitalised; "of", "de",
    "van" ... join two capitalised words ("Bank of America"), and a number may close a place ("Noodle Bar 88").
    """
    j = i
    while j + 1 < len(tokens):
        gap, word, nxt = text[tokens[j][1] : tokens[j + 1][0]], tokens[j][2], tokens[j + 1][2]
        title_gap = gap == ". " and word.lower() in _TITLES
        if gap not in (" ", " & ") and not title_gap:
            break
        if _is_capitalised(nxt) or (nxt.isdigit() and len(nxt) <= 4 and word.lower() in _NAME_SUFFIXES):
            j += 1
        elif (
            nxt in _CONNECTORS
            and j + 2 < len(tokens)
            and text[tokens[j + 1][1] : tokens[j + 2][0]] == " "
            and _is_capitalised(tokens[j + 2][2])
        ):
            j += 2
        else:
            break
    return j


def _runs(sentence: Sentence) -> Iterator[tuple[int, int, bool, bool]]:
    """Capitalised name runs of a sentence: (start, end, sentence_initial, titled).

    A run is sentence-initial when it opens the sentence or follows a double quote, a colon or a bracket: there a
    capital letter says nothing about a name.
    """
    text, tokens = sentence.text, sentence.tokens
    i = 0
    while i < len(tokens):
        start, _end, token = tokens[i]
        if not token[0].isupper():
            i += 1
            continue
        titled = token.lower().rstrip(".") in _ANY_TITLE
        if not (titled or _is_capitalised(token)):
            i += 1
            continue
        gap_before = text[tokens[i - 1][1] : start] if i else ""
        initial = i == 0 or sentence.heading or not _OPENERS.isdisjoint(gap_before)
        j = _run_end(text, tokens, i)
        yield start, tokens[j][1], initial, titled and j > i
        i = j + 1


def _cue_votes(sentence: Sentence, start: int, end: int, name: str, possessive: bool) -> Counter[EntityKind]:
    """Kinds the words in and around one mention suggest, with weights."""
    votes: Counter[EntityKind] = Counter()
    parts = [p.lower().rstrip(".") for p in name.split()]
    # Words inside the name ("Acme Corp", "Baker Street") outweigh the words around it.
    if any(p in _ORG_WORDS for p in parts[1:]):
        votes[EntityKind.ORG] += 4
    if any(p in _PLACE_WORDS for p in parts[1:]) or parts[0] in ("st", "mount", "mt", "lake", "port", "cape"):
        votes[EntityKind.PLACE] += 4
    if parts[0] in _TITLES or parts[0] in _KIN_TITLES or (len(parts) == 1 and parts[0] in _FAMILY):
        votes[EntityKind.PERSON] += 3
    text = sentence.text
    raw_before = text[max(0, start - 40) : start].lower().replace("’", "'").split()
    after_the = bool(raw_before) and raw_before[-1] == "the"  # "the Northern Lights" is not a person
    before = [w.strip(",;:()\"'") for w in raw_before if w not in ("the", "a", "an", "my", "our", "his", "her")]
    prev1 = before[-1] if before else ""
    prev2 = before[-2] if len(before) > 1 else ""
    after = _FOLLOW_WORD.match(text, end)
    next1 = after.group(1).lower() if after else ""
    next2 = (after.group(2) or "").lower() if after else ""
    if possessive and next1 in _POSSESSED_BY_PEOPLE:
        votes[EntityKind.PERSON] += 1
    if next1 in _PERSON_VERBS or (next1 == "and" and next2 in ("i", "me")) or next1 in ("from",):
        votes[EntityKind.PERSON] += 2
    if prev1 in ("at", "for", "with", "joined") and prev2 in _WORK_WORDS or prev1 in ("joined", "company"):
        votes[EntityKind.ORG] += 3
    elif prev1 in ("at", "for") and prev2 in _WORK_THINGS:
        votes[EntityKind.ORG] += 2
    elif prev1 == "to" and prev2 in _SPEECH_BEFORE_TO or prev1 == "from" and prev2 in _FROM_PERSON:
        votes[EntityKind.PERSON] += 2
    elif prev1 in _PERSON_BEFORE:
        votes[EntityKind.PERSON] += 2 if prev1 != "with" else 1
    elif prev1 in _PLACE_BEFORE:
        votes[EntityKind.PLACE] += 1
    elif prev1 in _STUDY_BEFORE:
        votes[EntityKind.TOPIC] += 1  # "learning Portuguese", "studying Physics": a subject
    if len(parts) == 1 and name.isupper() and len(name) > 1:
        votes[EntityKind.ORG] += 1
    if 2 <= len(parts) <= 3 and all(p.isalpha() for p in parts) and not votes and not after_the:
        votes[EntityKind.PERSON] += 1  # "Sarah Jones": two plain capitalised words and nothing else to go on
    return votes


def _strip_possessive(name: str) -> str:
    return re.sub(r"['’]s$", "", name)


class _EntityIndex:
    """Collects entity mentions across an entry, then resolves kinds, aliases and the final list."""

    def __init__(self) -> None:
        self.candidates: dict[str, _Candidate] = {}
        self.tentative: list[tuple[str, str, int, Counter[EntityKind]]] = []
        self.words: Counter[str] = Counter()  # lowercase content words, for recurring topics
        self.word_total = 0

    def scan(self, sentence: Sentence) -> None:
        """Record the names, hashtags and lowercase words of one sentence."""
        for start, end, initial, titled in _runs(sentence):
            self._mention(sentence, start, end, initial, titled)
        self.word_total += len(sentence.tokens)
        if "#" in sentence.text or "@" in sentence.text:
            for _start, _end, token in sentence.tokens:
                if token[0] == "#" and len(token) > 2:
                    self._add(token[1:].lower(), token[1:].lower(), sentence.index, Counter({EntityKind.TOPIC: 10}))
                elif token[0] == "@" and len(token) > 2:
                    self._add(token[1:], token[1:], sentence.index, Counter({EntityKind.PERSON: 10}))
        self.words.update(w for w in sentence.words - _GENERIC if len(w) >= 4 and w.isalpha() and w.islower())

    def _mention(self, sentence: Sentence, start: int, end: int, initial: bool, titled: bool) -> None:
        text = sentence.text
        tokens = text[start:end].split()
        if initial and len(tokens) > 1 and _looks_like_verb(tokens[0]) and not titled:
            start = start + len(tokens[0]) + 1
            tokens = tokens[1:]
            initial = False
        surface = text[start:end]
        name = _strip_possessive(surface).rstrip(".")
        key = canonical_name(name)
        if not key or not any(ch.isalpha() for ch in key) or _PERIOD_CODE.fullmatch(name):
            return
        possessive = name != surface.rstrip(".")
        votes = _cue_votes(sentence, start, end, name, possessive)
        if initial and len(tokens) == 1 and not titled:
            if _looks_like_verb(name) or name.lower() in _NOT_NAMES:
                return
            if not (votes[EntityKind.PERSON] or possessive):
                self.tentative.append((key, name, sentence.index, votes))  # kept only if named elsewhere too
                return
        candidate = self._add(key, name, sentence.index, votes)
        if titled and len(tokens) > 1:
            candidate.aliases.add(" ".join(tokens[1:]).rstrip("."))

    def _add(self, key: str, name: str, index: int, votes: Counter[EntityKind]) -> _Candidate:
        candidate = self.candidates.get(key)
        if candidate is None:
            candidate = self.candidates[key] = _Candidate(order=len(self.candidates))
        candidate.surfaces[name] += 1
        candidate.votes.update(votes)
        candidate.sentences.append(index)
        return candidate

    def resolve(self, sentences: list[Sentence]) -> tuple[list[ExtractedEntity], dict[int, list[str]]]:
        """The entities, and for each sentence index the names it mentions."""
        firsts = self._first_names()
        for key, name, index, votes in self.tentative:
            if key in self.candidates:
                self._add(key, name, index, votes)
            elif key in firsts:
                self._add(firsts[key], name, index, votes).aliases.add(name)
        self._merge_first_names(firsts)
        self._add_topics(sentences)
        chosen = sorted(self.candidates.values(), key=lambda c: (-len(c.sentences), c.order))[:MAX_ENTITIES]
        chosen.sort(key=lambda c: c.order)
        entities: list[ExtractedEntity] = []
        mentions: dict[int, list[str]] = {}
        for candidate in chosen:
            name = max(candidate.surfaces.items(), key=lambda kv: (kv[1], len(kv[0]), kv[0]))[0]
            kind = self._kind(candidate)
            aliases = sorted({a for a in (set(candidate.surfaces) | candidate.aliases) if a != name})
            entities.append(ExtractedEntity(name=name, kind=kind, aliases=aliases))
            for index in dict.fromkeys(candidate.sentences):
                mentions.setdefault(index, []).append(name)
        return entities, mentions

    def _first_names(self) -> dict[str, str]:
        """First word -> the one multi-word person-like name it starts ("sarah" -> "sarah jones")."""
        seen: dict[str, list[str]] = {}
        for key, candidate in self.candidates.items():
            parts = key.split()
            if len(parts) > 1 and self._kind(candidate) is EntityKind.PERSON:
                first = parts[1] if parts[0].rstrip(".") in _ANY_TITLE else parts[0]
                seen.setdefault(first, []).append(key)
        return {first: keys[0] for first, keys in seen.items() if len(keys) == 1}

    def _merge_first_names(self, firsts: dict[str, str]) -> None:
        for first, full in firsts.items():
            single = self.candidates.get(first)
            if single is None or single.votes[EntityKind.PLACE] or single.votes[EntityKind.ORG]:
                continue
            target = self.candidates[full]
            target.aliases.update(single.surfaces)
            target.aliases.update(single.aliases)
            target.sentences.extend(single.sentences)
            target.votes.update(single.votes)
            target.order = min(target.order, single.order)
            del self.candidates[first]

    def _add_topics(self, sentences: list[Sentence]) -> None:
        """Lowercase words (grouped by stem) in at least ``max(3, words/200)`` sentences become topics, at most
        ``MAX_TOPICS``, most frequent first."""
        threshold = max(3, self.word_total // 200)
        by_stem: dict[str, list[tuple[int, str]]] = {}
        for word, count in self.words.items():
            by_stem.setdefault(_stem(word), []).append((count, word))
        frequent = [(sum(c for c, _ in forms), max(forms)[1], forms) for forms in by_stem.values()]
        frequent = [f for f in frequent if f[0] >= threshold]
        frequent.sort(key=lambda f: (-f[0], f[1]))
        for _count, name, forms in frequent[:MAX_TOPICS]:
            canonical = canonical_name(name)
            if canonical in self.candidates:
                continue
            spelled = {word for _, word in forms}
            indices = [s.index for s in sentences if not spelled.isdisjoint(s.words)]
            candidate = self._add(canonical, name, indices[0], Counter({EntityKind.TOPIC: 10}))
            candidate.sentences.extend(indices[1:])

    @staticmethod
    def _kind(candidate: _Candidate) -> EntityKind:
        if not candidate.votes:
            return EntityKind.THING
        order = (EntityKind.TOPIC, EntityKind.ORG, EntityKind.PLACE, EntityKind.PERSON, EntityKind.THING)
        return max(order, key=lambda k: (candidate.votes[k], -order.index(k)))


# ---------------------------------------------------------------------------------------------------------------------
# Clauses (shared by psyche and goals)

_CLAUSE_END = re.compile(
    r"[,;:.!?()\[\]]|\s[-–—]\s|\s(?:but|because|cause|though|although|whereas|unless|so that|so I|and I|and then|"
    r"and it|and she|and he|and they|and we|and that|even though|even if|if|when|which means)\b",
    re.IGNORECASE,
)
_HEDGES = re.compile(r"\b(?:maybe|perhaps|i guess|kind of|sort of|probably|i suppose|a bit|somewhat)\b", re.I)
_INTENSIFIERS = re.compile(
    r"\b(?:really|absolutely|truly|deeply|so much|more than anything|firmly|always have|totally|genuinely)\b", re.I
)
_QUESTION_HEAD = re.compile(r"\b(?:do|does|did|should|shall|can|could|would|will|am|must|why|what|how)\s+I\s*$", re.I)
_CONDITIONAL_HEAD = re.compile(r"\b(?:if|when|whenever|unless|whether|what|why|how|where|even if|in case)\s*$", re.I)
_REPORTED = re.compile(
    r"\b(?:said|says|say|told|tells|thinks|think|thought|asked|asks|reckons|insists|insisted|suggested|suggests|"
    r"wants|wanted|believes|claims|claimed|keeps saying)\b(?:\s+me)?(?:\s+that)?\s*$",
    re.IGNORECASE,
)


_SELF_REPORT = re.compile(
    r"\bI\s+(?:\w+\s+)?(?:say|said|think|thought|told\s+\w+|tell\s+\w+|believe|reckon|guess|suppose|feel|felt|know|"
    r"knew|decided|realised|realized)(?:\s+that)?\s*$",
    re.IGNORECASE,
)


def _clause_end(norm: str, start: int) -> int:
    """Where the clause that begins at ``start`` ends (at most ``CLAUSE_WORDS`` words)."""
    match = _CLAUSE_END.search(norm, start + 1, start + 400)
    end = match.start() if match else min(len(norm), start + 400)
    words = norm[start:end].split(" ")
    if len(words) > CLAUSE_WORDS:
        end = start + len(" ".join(words[:CLAUSE_WORDS]))
    return end


def _clause_start(norm: str, pos: int) -> int:
    """Where the clause containing ``pos`` starts."""
    for i in range(pos - 1, max(-1, pos - 300), -1):
        if norm[i] in ",;:.!?(":
            return i + 1
    return max(0, pos - 300)


def _head_ok(norm: str, start: int) -> bool:
    """False when the words before a first-person cue make it a question, a condition or someone else's words."""
    head = norm[_clause_start(norm, start) : start]
    tail = norm[max(0, start - 60) : start + 2]
    reported = _REPORTED.search(head) and not _SELF_REPORT.search(head)
    return not (_CONDITIONAL_HEAD.search(head) or reported or _QUESTION_HEAD.search(tail))


def _confidence(base: float, sentence: str) -> float:
    value = base + (0.1 if _INTENSIFIERS.search(sentence) else 0) - (0.15 if _HEDGES.search(sentence) else 0)
    return round(min(0.95, max(0.3, value)), 2)


def _tidy(text: str) -> str:
    text = text.strip(" ,;:-–—\"'“”")
    return text[:1].upper() + text[1:] if text else text


# ---------------------------------------------------------------------------------------------------------------------
# Psyche

_ADVERBS = (
    r"(?:\s+(?:really|truly|absolutely|genuinely|just|still|honestly|kind\s+of|sort\s+of|do|totally|actually|"
    r"secretly|simply|deeply|firmly|strongly|definitely|also|generally|personally|particularly|much|quite))*"
)
_I = r"\bI"
_IM = r"\bI(?:'m|\s+am)"


class _PsycheRule(NamedTuple):
    """One psyche pattern. It runs only on sentences holding one of its trigger words (a cheap set test).

    ``obj`` in the pattern marks where the object starts. Patterns that begin mid-clause ("honesty matters to me")
    quote the whole clause around the match (``from_clause``).
    """

    kind: PsycheKind
    base: float
    triggers: frozenset[str]
    pattern: re.Pattern[str]

    @property
    def from_clause(self) -> bool:
        return self.pattern.pattern.startswith(r"\S")


_PSYCHE_RULES: list[_PsycheRule] = [
    _PsycheRule(
        PsycheKind.PREFERENCE,
        0.7,
        _triggers("love like enjoy adore prefer hate dislike detest loathe despise stand bear"),
        re.compile(
            _I + _ADVERBS + r"(?:\s+(?:don't|do\s+not|never))?" + _ADVERBS + r"\s+(?P<verb>love|like|enjoy|adore|"
            r"prefer|hate|dislike|detest|loathe|despise|can't\s+stand|cannot\s+stand|can't\s+bear)\b\s+"
            # A preposition or conjunction right after the verb: its object came before it ("the people I love in
            # their language", "the ones I like and trust"), so the clause says nothing of the writer's taste.
            r"(?P<obj>(?!(?:in|on|at|about|with|from|by|of|during|after|before|through|because|and|but|or)\b(?!-))\S)",
            re.I,
        ),
    ),
    _PsycheRule(
        PsycheKind.PREFERENCE,
        0.7,
        _triggers("fan into"),
        re.compile(
            _IM + r"(?:\s+(?:not|such|really|a|big|huge|massive|great|total))*\s+(?:fan\s+of|into)\s+(?P<obj>\S)", re.I
        ),
    ),
    _PsycheRule(
        PsycheKind.PREFERENCE,
        0.65,
        _triggers("favourite favorite"),
        re.compile(r"\bmy\s+(?:all-time\s+)?favou?rite\s+(?P<obj>\S+(?:\s+\S+)?\s+(?:is|are)\s)", re.I),
    ),
    # "I've never liked olives", "I can't get enough of sushi".
    _PsycheRule(
        PsycheKind.PREFERENCE,
        0.65,
        _triggers("liked loved hated enjoyed disliked enough"),
        re.compile(
            r"\bI(?:'ve|\s+have)\s+(?:never|always)\s+(?:really\s+)?(?:liked|loved|hated|enjoyed|disliked)\s+(?P<obj>\S)"
            r"|\bI\s+(?:can't|cannot)\s+get\s+enough\s+of\s+(?P<obj2>\S)",
            re.I,
        ),
    ),
    # "Opera bores me", "Yoga relaxes me": a thing named first, then how it takes the writer.
    _PsycheRule(
        PsycheKind.PREFERENCE,
        0.6,
        _triggers("bores relaxes calms stresses exhausts drains excites fascinates irritates annoys"),
        re.compile(
            r"\S+(?<!\bhe)(?<!\bshe)(?<!\bit)(?<!\bthey)(?<!\bthis)(?<!\bthat)(?<!\byou)(?:\s+[\w-]+){0,3}?\s+"
            r"(?:bores|relaxes|calms|stresses|exhausts|drains|excites|fascinates|irritates|annoys)\s+me\b",
            re.I,
        ),
    ),
    # "Tea is my favourite drink": the favourite named first.
    _PsycheRule(
        PsycheKind.PREFERENCE,
        0.65,
        _triggers("favourite favorite"),
        re.compile(r"\S+\s+(?:is|are)\s+(?:now\s+|still\s+)?my\s+(?:all-time\s+|new\s+)?favou?rite\s+\w+", re.I),
    ),
    # "I find yoga boring": a judgement of a thing, kept with the preferences ("I find it hard to ..." is not one).
    _PsycheRule(
        PsycheKind.PREFERENCE,
        0.6,
        _triggers("find"),
        re.compile(
            _I + _ADVERBS + r"\s+find\s+(?P<obj>(?!it\b|that\b|this\b|them\b|myself\b|out\b)[\w-]+(?:\s+[\w-]+){0,3}?"
            r"\s+(?:boring|tedious|dull|relaxing|fun|calming|exhausting|stressful|pointless|annoying|satisfying|"
            r"rewarding|frustrating|overrated|fascinating|interesting|scary|depressing|soothing|draining)\b)",
            re.I,
        ),
    ),
    _PsycheRule(
        PsycheKind.VALUE,
        0.75,
        _triggers("value cherish treasure"),
        re.compile(_I + _ADVERBS + r"\s+(?:value|cherish|treasure)\b\s+(?P<obj>\S)", re.I),
    ),
    _PsycheRule(
        PsycheKind.VALUE,
        0.75,
        _triggers("care"),
        re.compile(
            _I + _ADVERBS + r"(?:\s+(?:don't|do\s+not))?\s+care\s+(?:(?:a\s+lot|so\s+much|deeply|a\s+great\s+deal)\s+)?"
            r"about\s+(?P<obj>\S)",
            re.I,
        ),
    ),
    _PsycheRule(
        PsycheKind.VALUE,
        0.75,
        _triggers("matter matters"),
        re.compile(r"\S\s+(?:really\s+|truly\s+|deeply\s+)?matters?\s+(?:\w+\s+){0,3}?to\s+me\b", re.I),
    ),
    _PsycheRule(
        PsycheKind.VALUE,
        0.75,
        _triggers("important"),
        re.compile(
            r"\S\s+(?:is|are)\s+(?:really\s+|very\s+|so\s+|incredibly\s+|extremely\s+)?important\s+to\s+me\b", re.I
        ),
    ),
    _PsycheRule(
        PsycheKind.VALUE,
        0.7,
        _triggers("matters"),
        re.compile(r"\bwhat\s+matters\s+(?:most\s+)?(?:to\s+me\s+)?(?:most\s+)?is\s+(?P<obj>\S)", re.I),
    ),
    _PsycheRule(
        PsycheKind.BELIEF,
        0.75,
        _triggers("believe"),
        re.compile(_I + _ADVERBS + r"(?:\s+(?:don't|do\s+not))?\s+believe\s+(?:that\s+|in\s+)?(?P<obj>\S)", re.I),
    ),
    _PsycheRule(
        PsycheKind.BELIEF,
        0.75,
        _triggers("convinced"),
        re.compile(_IM + r"(?:\s+(?:fully|totally|absolutely|now))?\s+convinced\s+(?:that\s+)?(?P<obj>\S)", re.I),
    ),
    _PsycheRule(
        PsycheKind.BELIEF, 0.55, _triggers("think"), re.compile(_I + _ADVERBS + r"\s+think\s+that\s+(?P<obj>\S)", re.I)
    ),
    # "I think social media is harmless": an opinion without "that" (the copula keeps "I think I'll go" out).
    _PsycheRule(
        PsycheKind.BELIEF,
        0.5,
        _triggers("think"),
        re.compile(
            _I + _ADVERBS + r"\s+think\s+(?P<obj>(?!I\b|I'|we\b|you\b|it\b)[\w-]+(?:\s+[\w-]+){0,3}\s+(?:is|are)\s+\w)",
            re.I,
        ),
    ),
    # Trust is an attitude towards someone (short objects like "my manager" are fine), kept with the preferences.
    _PsycheRule(
        PsycheKind.PREFERENCE,
        0.6,
        _triggers("trust distrust mistrust"),
        re.compile(_I + _ADVERBS + r"(?:\s+(?:don't|do\s+not))?\s+(?:trust|distrust|mistrust)\s+(?P<obj>\S)", re.I),
    ),
    _PsycheRule(
        PsycheKind.BELIEF,
        0.6,
        _triggers("opinion view"),
        re.compile(r"\bin\s+my\s+(?:honest\s+)?(?:opinion|view)\b,?\s*(?P<obj>\S)", re.I),
    ),
    _PsycheRule(
        PsycheKind.TRAIT,
        0.75,
        _triggers(
            "person type introvert extrovert extravert ambivert optimist pessimist perfectionist procrastinator "
            "worrier overthinker planner owl riser bird homebody pleaser people-pleaser creature realist dreamer "
            "loner introverted extroverted"
        ),
        re.compile(
            _IM + r"(?:\s+(?:not|really|very|definitely|such|totally|more\s+of|always\s+been))*\s+(?:a|an)\s+"
            r"(?:[\w-]+\s+){0,3}?(?:person|type|introvert|extrovert|extravert|ambivert|optimist|pessimist|"
            r"perfectionist|procrastinator|worrier|overthinker|planner|night\s+owl|early\s+(?:riser|bird)|homebody|"
            r"people[- ]pleaser|creature\s+of\s+habit|realist|dreamer|loner|introverted|extroverted)\b",
            re.I,
        ),
    ),
    _PsycheRule(
        PsycheKind.TRAIT,
        0.75,
        _triggers("person"),
        re.compile(_IM + r"\s+(?:the|that)\s+(?:kind|type|sort)\s+of\s+person\s+(?:who|that)\s+(?P<obj>\S)", re.I),
    ),
    # "I am bad at languages", "I'm afraid of flying": what the writer can and fears, the kind that later changes.
    _PsycheRule(
        PsycheKind.TRAIT,
        0.65,
        _triggers("good bad great terrible hopeless useless afraid scared terrified frightened"),
        re.compile(
            _IM + _ADVERBS + r"(?:\s+not)?\s+(?:(?:good|bad|great|terrible|hopeless|useless)\s+at|"
            r"(?:afraid|scared|terrified|frightened)\s+of)\s+(?P<obj>\S)",
            re.I,
        ),
    ),
    _PsycheRule(PsycheKind.TRAIT, 0.7, _triggers("someone"), re.compile(_IM + r"\s+someone\s+who\s+(?P<obj>\S)", re.I)),
    _PsycheRule(
        PsycheKind.TRAIT,
        0.7,
        _triggers(
            "always never usually often generally naturally constantly rarely typically chronically forever "
            "nature notoriously"
        ),
        re.compile(
            _IM + r"\s+(?:always|never|usually|often|generally|naturally|constantly|rarely|typically|chronically|"
            r"forever|by\s+nature|notoriously)\s+(?P<obj>\S)",
            re.I,
        ),
    ),
    _PsycheRule(
        PsycheKind.TRAIT,
        0.65,
        _triggers("tend"),
        re.compile(_I + r"(?:\s+(?:really|always|often|generally))?\s+tend\s+to\s+(?P<obj>\S)", re.I),
    ),
    _PsycheRule(
        PsycheKind.TRAIT,
        0.65,
        _triggers("always"),
        re.compile(r"\bI(?:'ve|\s+have)\s+always\s+been\s+(?P<obj>\S)", re.I),
    ),
    _PsycheRule(
        PsycheKind.TRAIT,
        0.6,
        _triggers("always never usually often rarely generally constantly typically seldom"),
        re.compile(
            _I + r"\s+(?:always|never|usually|often|rarely|generally|constantly|typically|seldom)\s+"
            r"(?P<verb>[a-z]+)\b\s*(?P<obj>\S)?",
            re.I,
        ),
    ),
]
_NOT_HABIT_VERBS = _words(
    "was were had did thought knew wanted want went said told got felt liked loved saw made found realised realized "
    "expected imagined believed understood meant forgot will would could should can might must do does have am "
    "get tell say mind"
)
_EMPTY_OBJECTS = _words("you him her them it this that these those so")


def _psyche_in(sentence: Sentence, named: list[str]) -> Iterator[ExtractedPsyche]:
    """The psyche statements of one sentence (none in questions)."""
    norm = sentence.norm
    if norm.rstrip().endswith("?") or sentence.heading:
        return
    taken: list[tuple[int, int]] = []
    for rule in _PSYCHE_RULES:
        if rule.triggers.isdisjoint(sentence.words):
            continue
        for match in rule.pattern.finditer(norm):
            start = _clause_start(norm, match.start()) if rule.from_clause else match.start()
            if any(a <= match.start() < b for a, b in taken) or not _head_ok(norm, match.start()):
                continue
            if not _psyche_object_ok(rule.kind, match):
                continue
            end = _clause_end(norm, match.end() - 1)
            text = _tidy(sentence.text[start:end])
            if len(text.split()) < 2:
                continue
            taken.append((start, end))
            yield ExtractedPsyche(
                kind=rule.kind,
                text=text,
                confidence=_confidence(rule.base, norm),
                sentence=sentence.text,
                entities=named,
            )


def _psyche_object_ok(kind: PsycheKind, match: re.Match[str]) -> bool:
    groups = match.groupdict()
    verb = (groups.get("verb") or "").lower()
    if "obj" not in groups or match.start("obj") < 0:
        return verb not in _NOT_HABIT_VERBS if verb else True
    rest = match.string[match.start("obj") : match.start("obj") + 60].lower()
    first = rest.split(" ", 1)[0].strip(".,;!?")
    if kind is PsycheKind.PREFERENCE:
        return first not in _EMPTY_OBJECTS and not rest.startswith(("to think", "to believe"))
    if kind is PsycheKind.BELIEF and (first in ("i", "i'm", "i've", "me", "you", "so") or len(rest.split()) < 3):
        return False
    if kind is PsycheKind.TRAIT and verb:
        return verb not in _NOT_HABIT_VERBS and not (verb.endswith("ed") and len(verb) > 4)
    return True


# ---------------------------------------------------------------------------------------------------------------------
# Goals

_GOAL_ADVERBS = (
    r"(?:\s+(?:really|still|also|definitely|seriously|badly|finally|just|actually|absolutely|desperately|"
    r"probably|honestly|totally|urgently|so|truly|now|then|first))*"
)
_GOAL_CUES = (
    r"(?:(?:am|are)\s+)?(?:going\s+to|gonna|planning\s+to|planning\s+on|hoping\s+to|aiming\s+to|determined\s+to|"
    r"trying\s+to|committed\s+to|about\s+to)|(?:would\s+)?(?:like|love)\s+to|(?:have\s+)?got\s+to|gotta|"
    r"(?:have\s+)?decided\s+to|want\s+to|wanna|need\s+to|plan\s+to|intend\s+to|aim\s+to|hope\s+to|have\s+to|"
    r"ought\s+to|promised?\s+(?:myself\s+)?to|mean\s+to|must|should|will|shall"
)
_GOAL_FIRST_PERSON = re.compile(
    r"\b(?P<subj>I|we)(?P<contr>'(?:m|re|ll|d|ve))?" + _GOAL_ADVERBS + r"\s*(?P<cue>" + _GOAL_CUES + r")?"
    r"(?<=\w)\s+(?P<obj>\S)",
    re.IGNORECASE,
)
_GOAL_SUBJECTLESS = re.compile(
    r"^(?:(?:also|still|really|and|so|but|ok|okay|oh|seriously|urgently)[,:]?\s+)*"
    r"(?P<cue>need\s+to|needs\s+to|must|have\s+to|gotta|got\s+to|want\s+to|wanna|plan\s+to|should|hope\s+to|"
    r"hoping\s+to|planning\s+to|aiming\s+to)\s+(?P<obj>\S)",
    re.IGNORECASE,
)
_REMINDER = re.compile(
    r"(?:\bremind\s+me\s+to|\breminder(?:\s+to\s+self)?\s*:|\bnote\s+to\s+self\s*:|^(?:(?:also|and|please|oh)[,:]?\s+)*"
    r"(?:don't|do\s+not)\s+forget\s+to|^(?:(?:also|and|please|oh)[,:]?\s+)*remember\s+to)\s*(?P<obj>\S)",
    re.IGNORECASE,
)
_TODO_LABEL = re.compile(r"^(?:todo|to-do|to\s+do)\s*:\s*(?P<obj>\S)", re.IGNORECASE)
_GOAL_LABEL = re.compile(
    r"(?:^(?P<label>project(?:\s+idea)?|goal|plan|resolution|next\s+step)\s*:|"
    r"\b(?:my|our|the)\s+(?:\w+\s+){0,2}?(?P<noun>goal|plan|aim|resolution|dream|mission|project)"
    r"(?:\s+(?:for\s+)?(?:this|next|the)\s+\w+)?\s+is\s+to|"
    r"\bI(?:'ve|\s+have)?\s+set\s+myself\s+(?:the|a)\s+(?:\w+\s+)?(?:goal|target|challenge)\s+of|"
    r"\bI(?:'ve|\s+have)?\s+signed\s+up\s+to)\s*(?P<obj>\S)",
    re.IGNORECASE,
)
# "Goals for March: repaint the bathroom, learn Italian, and renew my licence", "New year's resolutions: quit
# smoking, ...", "Big goal for this semester: hand in my dissertation": a label, then one goal or a list of them.
_GOAL_LIST_LABEL = re.compile(
    r"^(?:(?:my|our|the|this|next|big|main|new|top|key|personal|weekly|monthly|daily|yearly|year|week|month|"
    r"summer|winter|spring|autumn|[\w-]+'s|[\w-]+’s)\s+){0,3}"
    r"(?:goals?|plans?|resolutions?|aims?|targets?|intentions?)"
    r"(?:\s+for\s+(?:[\w'’-]+\s*){1,3}?)?\s*:\s*(?P<obj>\S)",
    re.IGNORECASE,
)
_LIST_SEPARATOR = re.compile(r",\s+(?:and\s+|or\s+)?(?=\S)|;\s+(?=\S)")
_PROJECT = re.compile(
    r"\b(?:project|build|learn|learning|write\s+(?:a|my)\s+(?:\w+\s+)?(?:book|novel|memoir|thesis|album|play)|"
    r"train\s+for|start\s+(?:a|my(?:\s+own)?)\s+(?:\w+\s+)?(?:business|company|blog|podcast|band|club|newsletter|"
    r"channel|garden|shop)|launch|renovate|marathon|triathlon|master|become\s+(?:a|an|fluent)|fluent|get\s+fit|"
    r"save\s+(?:up\s+)?for|redesign|create\s+(?:a|an|my)|finish\s+(?:my|the)\s+(?:thesis|degree|book|novel|"
    r"dissertation|course)|study\s+for)\b",
    re.IGNORECASE,
)
_NEGATED_OBJECT = re.compile(r"^(?:never|not|no\s+longer|ever|n't)\b(?!\s+forget\s+to\b)", re.IGNORECASE)
_DISCOURSE = re.compile(
    r"^(?:say\b(?!\s+(?:yes|no|goodbye|sorry|thanks|thank))|admit|confess|be\s+honest|tell\s+you|agree|guess|wait\s+and\s+see|see\s*(?:$|[.!,]|what|how|if|whether|about)|survive|live|"
    r"manage|have\s+(?:been|had|gone|left|done|got|made|said|told|known|seen|thought|forgotten|\w+ed)\b|"
    r"be\s+(?:\d|fine|ok|okay|there|late|back|home|away|busy|out|right|honest|glad|happy|sad|alone|the)\b|"
    r"always\b|forever\b|remember\s+(?:that|this|it|when|how)\b|forget\b|miss\b|never\b)",
    re.IGNORECASE,
)
_DUE_CUT = re.compile(
    r"\s+(?:today|tonight|soon|later|asap|again|first|sometime|someday|some\s+day|one\s+day|eventually)$", re.I
)
_TRAILING_STOP = re.compile(
    r"(?:\s+(?:and|or|to|the|a|an|for|of|with|on|in|at|by|before|after|about|from|my|so))+$", re.I
)


# Each goal pattern runs only when the sentence holds one of its words (a set test is far cheaper than a regex).
_CUE_WORDS = _words(
    "want wanna need needs plan planning going gonna hoping aiming determined trying committed about like love got "
    "gotta decided intend aim hope have has ought promise promised mean must should will shall i'll we'll"
)
_FIRST_PERSON = _words("i we i'll we'll i'm we're i'd we'd i've we've")
_REMINDER_WORDS = _words("remind reminder note forget remember")
_LABEL_WORDS = _words(
    "goal goals plan plans aim aims resolution resolutions dream mission project step target targets intention"
    " intentions signed challenge"
)
_GOAL_TRIGGERS = _CUE_WORDS | _REMINDER_WORDS | _LABEL_WORDS | _words("todo to-do do")


_REMEMBER_TO = re.compile(r"(?:remember|(?:not|never)\s+forget)\s+to\s+(?=\S)", re.IGNORECASE)


@dataclass(slots=True)
class _GoalHit:
    kind: GoalKind
    text_start: int  # where the goal's text starts (subject or cue)
    obj_start: int  # where its object starts (what the title is made from)
    status: GoalStatus = GoalStatus.ACTIVE


def _goal_hits(sentence: Sentence) -> list[_GoalHit]:
    """Where goals start in one sentence, in order. Questions give none; a bullet gives at most one."""
    norm = sentence.norm
    if sentence.checkbox is not None:
        status = GoalStatus.DONE if sentence.checkbox == "done" else GoalStatus.ACTIVE
        return [_GoalHit(GoalKind.TODO, 0, 0, status)]
    if sentence.bullet and sentence.section:
        return [_GoalHit(GoalKind.TODO, 0, 0)]
    if norm.rstrip().endswith("?") or sentence.heading or _GOAL_TRIGGERS.isdisjoint(sentence.words):
        return []
    words = sentence.words
    hits: list[_GoalHit] = []
    if not _REMINDER_WORDS.isdisjoint(words):
        for match in _REMINDER.finditer(norm):
            hits.append(_GoalHit(GoalKind.REMINDER, match.start(), match.start("obj")))
    for match in _TODO_LABEL.finditer(norm):
        hits.append(_GoalHit(GoalKind.TODO, match.start("obj"), match.start("obj")))
    if not _LABEL_WORDS.isdisjoint(words):
        for match in _GOAL_LABEL.finditer(norm):
            label = (match.group("label") or match.group("noun") or "").lower()
            kind = GoalKind.PROJECT if label.startswith("project") else GoalKind.TASK
            hits.append(_GoalHit(kind, match.start(), match.start("obj")))
        listed = _GOAL_LIST_LABEL.match(norm) if not hits else None
        if listed:
            hits.extend(_list_hits(norm, listed.start("obj")))
    if not _CUE_WORDS.isdisjoint(words):  # "i'll" / "we'll" are cue words too
        subjectless = _GOAL_SUBJECTLESS.match(norm)
        if subjectless and not hits:
            hits.append(_GoalHit(GoalKind.TASK, subjectless.start("cue"), subjectless.start("obj")))
        if not _FIRST_PERSON.isdisjoint(words):
            hits.extend(list(_first_person_hits(norm, list(hits))))
    hits.sort(key=lambda h: h.text_start)
    return [h for h in hits if h.kind is not GoalKind.TASK or not _NEGATED_OBJECT.match(norm[h.obj_start :])]


def _list_hits(norm: str, start: int) -> list[_GoalHit]:
    """One goal per item of a labelled list ("repaint the bathroom, learn Italian, and renew my licence")."""
    starts = [start] + [m.end() for m in _LIST_SEPARATOR.finditer(norm, start)]
    return [_GoalHit(GoalKind.TASK, at, at) for at in starts if not _NO_ITEM.match(norm, at)]


_NO_ITEM = re.compile(r"(?:nothing|none|no|not|n/a|tbd|same|who|what|dunno)\b", re.IGNORECASE)


def _first_person_hits(norm: str, earlier: list[_GoalHit]) -> Iterator[_GoalHit]:
    """Goals cued by "I want to", "I'll", "we need to" ... that no earlier cue already covers."""
    for match in _GOAL_FIRST_PERSON.finditer(norm):
        if _first_person_goal_ok(match) and not any(h.text_start <= match.start() < h.obj_start + 3 for h in earlier):
            yield _GoalHit(GoalKind.TASK, match.start(), match.start("obj"))


def _first_person_goal_ok(match: re.Match[str]) -> bool:
    """A first-person cue is a goal unless negated, past, a question, a condition, reported, or a turn of phrase."""
    contr, cue = (match.group("contr") or "").lower(), " ".join((match.group("cue") or "").lower().split())
    if not cue and contr != "'ll":
        return False
    if contr == "'ll" and cue:
        return False
    if contr == "'d" and not cue.startswith(("like", "love")):
        return False
    if contr in ("'m", "'re") and not cue.startswith(
        ("going", "gonna", "planning", "hoping", "aiming", "determined", "trying", "committed", "about")
    ):
        return False
    norm = match.string
    obj = norm[match.start("obj") : match.start("obj") + 80]
    if _NEGATED_OBJECT.match(obj) or _DISCOURSE.match(obj):
        return False
    if cue.endswith(("going to", "gonna")) and (
        obj[:1].isupper()
        or obj.split(" ", 1)[0].lower().strip(".,;:!?")
        in ("the", "a", "an", "my", "our", "his", "her", "bed", "sleep", "work", "school", "church", "town", "be")
    ):
        return False  # "going to Porto" / "going to the gym": movement, not intention
    if cue in ("will", "shall") and match.group("subj").lower() == "we" and len(obj.split()) < 3:
        return False
    return _head_ok(norm, match.start())


# "I've decided to give up on the course" ends a pursuit (a change to an earlier goal, found by persona.evolution):
# it is no new goal. "Give up smoking" (a habit to stop) is one.
_ABANDONING = re.compile(r"(?:give|giving)\s+up\s+on\b|abandon(?:ing)?\b", re.I)


def _goal_from(
    sentence: Sentence, hit: _GoalHit, end_limit: int, today: date, *, share_sentence: bool, named: list[str]
) -> ExtractedGoal | None:
    """The goal a cue starts: its title (the object without its due phrase), text, kind, due date."""
    norm, text = sentence.norm, sentence.text
    if hit.obj_start == 0 and hit.text_start == 0 and (sentence.bullet or sentence.checkbox):
        end = len(norm)
    else:
        end = min(_clause_end(norm, hit.obj_start), end_limit)
    obj = text[hit.obj_start : end]
    remember = _REMEMBER_TO.match(obj) if hit.kind is GoalKind.TASK else None
    if remember:  # "I need to remember to call Mum" is a reminder to call Mum
        hit.kind = GoalKind.REMINDER
        obj = obj[remember.end() :]
    found = find_due(obj, today=today)
    title = obj if found is None else obj[: found[1]] + obj[found[2] :]  # "buy shoes by Friday" -> "buy shoes"
    if found is None and share_sentence:
        found = find_due(text[:400], today=today)
    if found is None and sentence.section:
        found = find_due(sentence.section, today=today)
    title = _goal_title(title)
    if not title or not any(ch.isalpha() for ch in title) or _ABANDONING.match(title):
        return None
    if hit.kind is GoalKind.TASK and _PROJECT.search(obj):
        hit.kind = GoalKind.PROJECT
    return ExtractedGoal(
        kind=hit.kind,
        title=title,
        text=_tidy(text[hit.text_start : end]) or title,
        status=hit.status,
        due=found[0] if found else None,
        sentence=text,
        entities=named,
    )


def _goal_title(obj: str) -> str:
    """A short title from a goal's object: "buy new shoes by Friday" -> "Buy new shoes"."""
    words = _fold(obj).strip(" ,;:.!?-").split(" ")[:GOAL_TITLE_WORDS]
    title = " ".join(words)
    for _ in range(3):
        title = _TRAILING_STOP.sub("", _DUE_CUT.sub("", title)).strip(" ,;:.!?-")
    return _tidy(title)


def _goals_in(sentence: Sentence, today: date, named: list[str]) -> Iterator[ExtractedGoal]:
    hits = _goal_hits(sentence)
    for position, hit in enumerate(hits):
        end_limit = hits[position + 1].text_start if position + 1 < len(hits) else len(sentence.norm)
        if end_limit <= hit.obj_start:
            continue
        goal = _goal_from(sentence, hit, end_limit, today, share_sentence=len(hits) == 1, named=named)
        if goal is not None:
            yield goal


# ---------------------------------------------------------------------------------------------------------------------
# Episode

_HEADLINE_FILLER = re.compile(
    r"^(?:(?:dear\s+diary|so|well|ok|okay|ugh|wow|oh|anyway|alright)\b[,:!.]?\s+|"
    r"(?:today|tonight|yesterday|this\s+morning|this\s+evening),\s+)+",
    re.IGNORECASE,
)
_HEADLINE_CUT = re.compile(r"[,;:–—(]|\s-\s")
_HAS_NUMBER = re.compile(r"\d|\b(?:" + "|".join(WEEKDAYS) + r")\b", re.IGNORECASE)
_WORD = re.compile(r"\w+")


def _informative(sentence: Sentence) -> bool:
    return (sentence.bullet or len(sentence.text.split()) >= 3) and not sentence.heading


def _headline(sentences: list[Sentence]) -> str:
    """A compact headline: the first informative sentence, cut to at most ``TITLE_WORDS`` words."""
    chosen = next((s for s in sentences if _informative(s)), sentences[0])
    text = _HEADLINE_FILLER.sub("", chosen.text) or chosen.text
    if chosen.bullet and chosen.index > 0 and sentences[chosen.index - 1].heading:
        text = f"{sentences[chosen.index - 1].text.rstrip(':')}: {text}"
    words = text.split()
    if len(words) > TITLE_WORDS:
        head = " ".join(words[:TITLE_WORDS])
        cut = _HEADLINE_CUT.search(head)
        text = head[: cut.start()] if cut and len(head[: cut.start()].split()) >= 4 else _TRAILING_STOP.sub("", head)
    return _tidy(text.rstrip(" .!?…,;:")) or chosen.text[:80]


def _summary(sentences: list[Sentence], mentions: dict[int, list[str]], memory_sentences: set[int]) -> str:
    """The writer's own words: the first informative sentence and the two most telling of the next ones."""
    informative = [s for s in sentences if _informative(s)]
    if not informative:
        return _fold(" ".join(s.text for s in sentences))[:500]
    first, rest = informative[0], informative[1:60]

    def score(s: Sentence) -> float:
        return (
            1.5 * len(mentions.get(s.index, []))
            + (1 if _HAS_NUMBER.search(s.text) else 0)
            + (1 if not _EMOTION_WORDS.isdisjoint(s.words) or not _LIFE_EVENT_WORDS.isdisjoint(s.words) else 0)
            + (1 if s.index in memory_sentences else 0)
            - (1 if len(s.tokens) <= 4 else 0)
        )

    picked = sorted(rest, key=lambda s: (-score(s), s.index))[:2] if len(rest) > 2 else rest
    parts = []
    for s in sorted([first, *picked], key=lambda s: s.index):
        words = s.text.split()
        part = " ".join(words[:40]) + ("…" if len(words) > 40 else "")
        parts.append(part if part[-1:] in ".!?…\"”'" else part + ".")
    return " ".join(parts)


def _importance(sentences: list[Sentence], word_count: int) -> float:
    """0..1 from cues: emotion words, life events, "finally"/"big news", exclamation marks, length."""
    words: set[str] = set()
    for sentence in sentences:
        words |= sentence.words
    lowered = " ".join(s.norm for s in sentences[:400]).lower()
    score = 0.3
    score += min(0.3, 0.08 * len(_EMOTION_WORDS & words))
    score += min(0.3, 0.15 * _cue_count(words, lowered, _LIFE_EVENT_WORDS, _LIFE_EVENT_PHRASES))
    score += min(0.2, 0.1 * _cue_count(words, lowered, _HIGHLIGHT_WORDS, _HIGHLIGHT_PHRASES))
    score += min(0.1, 0.03 * lowered.count("!"))
    score += min(0.1, word_count / 3000)
    return round(min(1.0, max(0.05, score)), 2)


# ---------------------------------------------------------------------------------------------------------------------
# The extractor


def extract_offline(text: str, *, occurred_at: datetime) -> Extraction:
    """Typed memories of one entry, by rules alone: a pure, deterministic function.

    Due dates are relative to ``occurred_at`` (the day the entry was written), never to the wall clock. Text with no
    words (empty, whitespace, emoji only) gives a minimal extraction rather than an error. At most ``MAX_PSYCHE``
    psyche items, ``MAX_GOALS`` goals and ``MAX_ENTITIES`` entities are returned, in the order they appear.
    """
    today = occurred_at.date() if isinstance(occurred_at, datetime) else occurred_at
    text = _clean(text or "")
    words = _WORD.findall(text)
    sentences = split_sentences(text) if words else []
    if not sentences:
        shown = _fold(text)
        return Extraction(
            title=shown[:60] or "Empty entry",
            summary=shown[:500] or "The entry has no words.",
            importance=0.05 if shown else 0.0,
        )
    index = _EntityIndex()
    for sentence in sentences:
        index.scan(sentence)
    entities, mentions = index.resolve(sentences)
    psyche: list[ExtractedPsyche] = []
    goals: list[ExtractedGoal] = []
    seen: set[str] = set()
    memory_sentences: set[int] = set()
    for sentence in sentences:
        named = mentions.get(sentence.index, [])
        for item in _psyche_in(sentence, named) if len(psyche) < MAX_PSYCHE else ():
            if _remember(seen, "p", item.text):
                psyche.append(item)
                memory_sentences.add(sentence.index)
            if len(psyche) >= MAX_PSYCHE:
                break  # the generators are lazy: stopping here stops the work in a huge sentence too
        for goal in _goals_in(sentence, today, named) if len(goals) < MAX_GOALS else ():
            if _remember(seen, "g", goal.title):
                goals.append(goal)
                memory_sentences.add(sentence.index)
            if len(goals) >= MAX_GOALS:
                break
    return Extraction(
        title=_headline(sentences),
        summary=_summary(sentences, mentions, memory_sentences),
        importance=_importance(sentences, len(words)),
        entities=entities,
        psyche=psyche[:MAX_PSYCHE],
        goals=goals[:MAX_GOALS],
    )


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _clean(text: str) -> str:
    """``persona.models.clean_text`` as one regex (control characters are exactly U+0000-001F and U+007F-009F)."""
    return _CONTROL.sub("", unicodedata.normalize("NFC", text))


def _remember(seen: set[str], prefix: str, text: str) -> bool:
    """True the first time a (kind of) text is seen in an entry: the same goal written twice is one goal."""
    key = f"{prefix}:{' '.join(text.lower().split())}"
    if key in seen:
        return False
    seen.add(key)
    return True


def default_offline_embedder(settings: Settings | None = None) -> Embedder:
    """The embedder ``PERSONA_EMBEDDER`` names: the local sentence model (default), or the hashing one."""
    if (settings or get_settings()).persona_embedder == "hash":
        return HashEmbedder()
    from persona.llm.neural import NeuralEmbedder

    return NeuralEmbedder()


class OfflineProvider(Provider):
    """The provider with no language model: rule-based extraction and a local embedder (by default the sentence
    model of ``persona.llm.neural``; see ``default_offline_embedder``).

    Chat and free-form JSON need a model, so they raise ``ProviderError``; offline answers are built extractively
    from retrieved memories elsewhere (``persona.chat``).
    """

    name = "offline (rules)"
    offline = True

    def __init__(self, embedder: Embedder | None = None) -> None:
        self.embedder = embedder if embedder is not None else default_offline_embedder()

    def extract(self, text: str, *, occurred_at: datetime) -> Extraction:
        """Typed memories of one entry by rules (see ``extract_offline``)."""
        return extract_offline(text, occurred_at=occurred_at)

    def chat_stream(self, messages: list[dict[str, str]]) -> Iterator[str]:
        """Always raises: there is no model to generate an answer."""
        raise ProviderError(
            "the offline provider has no language model: it cannot generate chat answers. Offline answers are "
            "extractive (the best matching memories, cited); set OPENAI_API_KEY or OPENAI_BASE_URL for generated ones"
        )

    def complete_json(self, messages: list[dict[str, str]], schema: dict[str, Any], *, name: str) -> Any:
        """Always raises: there is no model to fill a JSON schema."""
        raise ProviderError(
            f"the offline provider has no language model: it cannot produce {name!r} JSON. Structured extraction "
            "offline is rule-based (extract); set OPENAI_API_KEY or OPENAI_BASE_URL to use a model"
        )
