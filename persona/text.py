"""Words: the one home of Persona's tokenising, stopwords and stemming (the embedder, the offline extractor, the
stores' full-text queries and the evaluation all read text through these)."""

from __future__ import annotations

import re

WORD = re.compile(r"\w+", re.UNICODE)
"""A word: a run of Unicode letters, digits or underscores."""
_STOPWORD_TEXT = """
a an the of in on at to for and or is was were be been being it its this that these those with by from as i you
he she they we my your his her their our me him them us do did does not no so but if then than there here
what which who whom when where why how all any each few more most other some such only own same too very can
will just should now am are has have had having would could also into about over after before up down out off
again further once
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_SUFFIXES = ("ingly", "edly", "ing", "ed", "ies", "es", "s", "ly")


def words(text: str) -> list[str]:
    """The lowercased words of ``text``, in order."""
    return [m.lower() for m in WORD.findall(text)]


def content_words(text: str, *, stopwords: frozenset[str] = STOPWORDS) -> list[str]:
    """Lowercased words of ``text`` without stopwords (``stopwords`` picks another list, e.g. a protocol's)."""
    return [w for w in words(text) if w not in stopwords]


def stem(word: str) -> str:
    """A light, predictable suffix stripper (hiking -> hik, hikes -> hik, hiked -> hik)."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word
