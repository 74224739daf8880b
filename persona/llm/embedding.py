"""A local embedder that needs nothing but numpy: signed feature hashing of words, word pairs and character
trigrams. Deterministic across processes and machines (it uses blake2b, never Python's salted ``hash``).

It is not a neural model: it knows that "hiking" and "hike" share trigrams, not that "hike" and "walk" are close.
It makes vector search useful offline and keeps the store's vector path honest in tests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from persona.llm.base import Embedder
from persona.models import EmbedderInfo
from persona.text import STOPWORDS, content_words, stem

__all__ = ["STOPWORDS", "HashEmbedder", "content_words", "stem"]  # the text helpers live in persona.text


class HashEmbedder(Embedder):
    """Feature-hashing embedder: ``dimension`` floats, unit length, the same text always the same vector."""

    def __init__(self, dimension: int = 384) -> None:
        self.dimension = dimension
        self.info = EmbedderInfo(name=f"persona-hash-v1-{dimension}", dimension=dimension)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit vector per text (all zeros for a text with no words)."""
        matrix = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            self._add_features(matrix[row], text)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        np.divide(matrix, norms, out=matrix, where=norms > 0)
        return matrix.tolist()

    def _add_features(self, vector: np.ndarray, text: str) -> None:
        words = [stem(w) for w in content_words(text)]
        for word in words:
            indices, signs = self._word_features(word)
            np.add.at(vector, indices, signs)
        for first, second in zip(words, words[1:], strict=False):
            index, sign = self._feature(f"{first} {second}")
            vector[index] += 0.5 * sign
        # Sublinear term frequency: a word said ten times is not ten times as telling.
        np.copyto(vector, np.sign(vector) * np.log1p(np.abs(vector)))

    @lru_cache(maxsize=200_000)  # noqa: B019 - the embedder lives as long as the process; the cache is the point
    def _word_features(self, word: str) -> tuple[np.ndarray, np.ndarray]:
        padded = f"<{word}>"
        grams = [padded[i : i + 3] for i in range(len(padded) - 2)]
        features = [self._feature(f"w:{word}")] + [self._feature(f"c:{g}") for g in grams]
        weights = [1.0] + [0.35] * len(grams)
        indices = np.array([f[0] for f in features], dtype=np.int64)
        signs = np.array([f[1] * w for f, w in zip(features, weights, strict=True)], dtype=np.float32)
        return indices, signs

    def _feature(self, token: str) -> tuple[int, float]:
        digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        return value % self.dimension, (1.0 if (value >> 63) & 1 else -1.0)
