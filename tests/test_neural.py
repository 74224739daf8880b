"""The offline default embedder (all-MiniLM-L6-v2 on onnxruntime): it understands paraphrase on both stores, checks
its files, batches by length without changing a vector, is the default, and never touches the network.

The session's shared Neo4j records the hashing embedder (every other test uses it), so the Neo4j cases here run on a
second server of their own, started once for this module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from persona.config import Settings
from persona.ingest import ingest_entry
from persona.llm.embedding import HashEmbedder
from persona.llm.neural import (
    DIMENSION,
    MODEL_NAME,
    ModelFiles,
    ModelFilesError,
    NeuralEmbedder,
    default_model_files,
)
from persona.llm.offline import OfflineProvider
from persona.models import node_text
from persona.retrieval import retrieve
from persona.runtime import make_provider
from persona.store.base import Store
from persona.store.sqlite import SqliteStore
from tests.factories import day
from tests.neo4j_server import Neo4jServer

ROOT = Path(__file__).resolve().parent.parent
NEURAL = NeuralEmbedder()
JOURNAL = [
    (0, "Ada and I walked along the river to the old lighthouse and back."),
    (2, "Baked sourdough bread for the first time. The crust burnt a little."),
    (4, "Quarterly budget review at the office. The numbers looked grim."),
    (6, "I was so stressed before the presentation that I could not sleep."),
    (8, "Tried a new ramen place near the station. The broth was amazing."),
    (10, "Paid the electricity bill and sorted the tax papers."),
]


@pytest.fixture(scope="module")
def neural_provider() -> OfflineProvider:
    return OfflineProvider(embedder=NEURAL)


@pytest.fixture(scope="module")
def neural_neo4j() -> Iterator[Neo4jServer]:
    """A Neo4j server of this module's own (never the shared one named by PERSONA_TEST_NEO4J_URI)."""
    shared = os.environ.pop("PERSONA_TEST_NEO4J_URI", None)
    try:
        server = Neo4jServer()
    finally:
        if shared is not None:
            os.environ["PERSONA_TEST_NEO4J_URI"] = shared
    try:
        if server.uri is None:
            if os.environ.get("PERSONA_REQUIRE_NEO4J", "") not in ("", "0", "false"):
                pytest.fail(f"Neo4j is not available: {server.error}")
            pytest.skip(f"Neo4j is not available: {server.error}")
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "neo4j"])
def neural_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store of each kind bound to the sentence model."""
    if request.param == "sqlite":
        opened: Store = SqliteStore(tmp_path / "neural.sqlite3", embedder=NEURAL.info)
    else:
        from persona.store.neo4j import Neo4jStore

        opened = Neo4jStore(request.getfixturevalue("neural_neo4j").uri, auth=None, embedder=NEURAL.info)
    yield opened
    opened.close()


@pytest.fixture
def journal(neural_store: Store, neural_provider: OfflineProvider) -> Iterator[tuple[str, dict[int, str]]]:
    user = f"u-{os.urandom(5).hex()}"
    entries = {}
    for offset, text in JOURNAL:
        entries[offset] = ingest_entry(neural_store, neural_provider, user, text, occurred_at=day(offset)).entry.id
    yield user, entries
    neural_store.delete_user(user)


def _cosine(a: str, b: str, embedder=NEURAL) -> float:
    first, second = np.asarray(embedder.embed([a, b]))
    return float(first @ second)


def _vector_entries(store: Store, user: str, question: str, k: int = 3) -> list[str | None]:
    hits = store.vector_search(user, NEURAL.embed([question])[0], k=k)
    return [getattr(n, "entry_id", None) for n in store.get_nodes(user, [h.id for h in hits])]


# -- the model -----------------------------------------------------------------------------------------------------
def test_paraphrases_are_closer_than_unrelated_text():
    assert _cosine("a long hike in the mountains", "walked up the trail to the summit") > 0.45
    assert _cosine("a long hike in the mountains", "the tax return is due") < 0.15
    assert _cosine("I feel anxious", "I was so stressed I could not sleep") > _cosine("I feel anxious", "ramen")
    # the hashing embedder sees no shared word, so no similarity at all: the reason this model is the default
    assert _cosine("hike", "walk", HashEmbedder()) == 0.0


def test_vectors_are_unit_length_and_do_not_depend_on_the_batch():
    short, long = "Went for a walk.", " ".join(["The longest entry of the batch keeps going"] * 40)
    alone = np.asarray(NEURAL.embed([short]))[0]
    batched = np.asarray(NEURAL.embed([long, short, "tea"]))
    assert batched.shape == (3, DIMENSION)
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    # padding to the long text's length must not move the short text's vector (mask-aware mean pooling)
    assert np.allclose(batched[1], alone, atol=1e-5)
    assert NEURAL.embed([]) == []


def test_a_changed_model_file_is_refused_with_a_clear_error(tmp_path: Path):
    files = default_model_files()
    tampered = tmp_path / "tokenizer.json"
    shutil.copy(files.tokenizer, tampered)
    with tampered.open("a", encoding="utf-8") as handle:
        handle.write(" ")
    with pytest.raises(ModelFilesError, match="not the expected one"):
        NeuralEmbedder(ModelFiles(model=files.model, tokenizer=tampered)).embed(["hello"])
    with pytest.raises(ModelFilesError, match="missing"):
        NeuralEmbedder(ModelFiles(model=tmp_path / "model.onnx", tokenizer=files.tokenizer)).embed(["hello"])


def test_the_sentence_model_is_the_offline_default(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("PERSONA_EMBEDDER", raising=False)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PERSONA_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    provider = make_provider(Settings(_env_file=None))
    assert provider.offline and provider.embedder.info.name == MODEL_NAME
    hashed = make_provider(Settings(_env_file=None, persona_embedder="hash"))
    assert isinstance(hashed.embedder, HashEmbedder)


# -- meaning through the stores ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("question", "offset"),
    [("Who did I go hiking with?", 0), ("When was I anxious?", 6), ("money worries at work", 4)],
)
def test_meaning_finds_the_entry_on_both_stores(neural_store, neural_provider, journal, question, offset):
    user, entries = journal
    assert entries[offset] in _vector_entries(neural_store, user, question)
    results = retrieve(neural_store, neural_provider.embedder, user, question)
    assert entries[offset] in [getattr(r.node, "entry_id", None) for r in results[:3]]


def test_the_hashing_embedder_misses_what_the_model_finds(tmp_path: Path):
    """The same journal with the hashing embedder: "hiking" finds nothing about the walk (why it is not the default)."""
    hashing = OfflineProvider(embedder=HashEmbedder())
    store = SqliteStore(tmp_path / "hash.sqlite3", embedder=hashing.embedder.info)
    walk = ingest_entry(store, hashing, "h", JOURNAL[0][1], occurred_at=day(0)).entry.id
    for offset, text in JOURNAL[1:]:
        ingest_entry(store, hashing, "h", text, occurred_at=day(offset))
    hits = store.vector_search("h", hashing.embedder.embed(["Who did I go hiking with?"])[0], k=3)
    assert walk not in [getattr(n, "entry_id", None) for n in store.get_nodes("h", [h.id for h in hits])]
    store.close()


# -- no network ------------------------------------------------------------------------------------------------------
NO_NETWORK_SCRIPT = textwrap.dedent(
    """
    import socket, sys
    attempts = []
    def _refuse(address):
        host = address[0] if isinstance(address, tuple) else str(address)
        if host not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(host)
            raise OSError(f"network blocked in this test: {host}")
    original_connect = socket.socket.connect
    def connect(self, address):
        _refuse(address)
        return original_connect(self, address)
    original_getaddrinfo = socket.getaddrinfo
    def getaddrinfo(host, *args, **kwargs):
        _refuse((host,))
        return original_getaddrinfo(host, *args, **kwargs)
    socket.socket.connect = connect
    socket.socket.connect_ex = lambda self, address: (_refuse(address), 0)[1]
    socket.getaddrinfo = getaddrinfo
    socket.create_connection = lambda address, *a, **k: (_refuse(address), None)[1]

    from persona.ingest import ingest_entry
    from persona.llm.offline import OfflineProvider
    from persona.retrieval import retrieve
    from persona.store.sqlite import SqliteStore
    from datetime import datetime, timezone

    provider = OfflineProvider()
    store = SqliteStore(None, embedder=provider.embedder.info)
    when = datetime(2026, 6, 1, tzinfo=timezone.utc)
    walk = ingest_entry(store, provider, "n", "Ada and I walked along the river.", occurred_at=when).entry.id
    ingest_entry(store, provider, "n", "Paid the electricity bill.", occurred_at=when)
    top = retrieve(store, provider.embedder, "n", "Who did I go hiking with?")[0]
    print(provider.embedder.info.name, top.node.entry_id == walk, top.shares["vector"] > 0, len(attempts))
    """
)


def test_retrieval_runs_with_the_network_blocked(tmp_path: Path):
    """A fresh process (nothing loaded yet) whose sockets refuse every non-loopback address, and no proxy that could
    help: the model loads, ingests and answers by meaning, and nothing even tried to connect."""
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY") and not k.startswith("HF_")}
    env |= {"PERSONA_EMBEDDER": "neural", "PERSONA_HOME": str(tmp_path), "PERSONA_PROVIDER": "offline"}
    env |= {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run(
        [sys.executable, "-c", NO_NETWORK_SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [MODEL_NAME, "True", "True", "0"]
    assert not (tmp_path / "hf").exists()  # no hub cache was even created


def test_similar_entries_are_earlier_and_close_in_meaning(neural_store, neural_provider, journal):
    from persona.similar import similar_entries

    user, entries = journal
    later = ingest_entry(
        neural_store, neural_provider, user, "A long hike in the hills with my sister.", occurred_at=day(12)
    ).entry
    found = similar_entries(neural_store, neural_provider.embedder, user, later)
    assert found and found[0].entry_id == entries[0] and found[0].occurred_at == day(0)
    assert all(f.entry_id != later.id and f.occurred_at < later.occurred_at for f in found)
    assert entries[10] not in [f.entry_id for f in found], "the tax papers are not 'similar' to a hike"
    earliest = neural_store.get_nodes(user, [entries[0]])[0]
    assert similar_entries(neural_store, neural_provider.embedder, user, earliest) == [], "nothing before the first"


# -- moving a hash-filled store to the sentence model ----------------------------------------------------------------
SMALL_HASH = HashEmbedder(dimension=64)  # another dimension too, so Neo4j's vector index must be rebuilt


def _open(kind: str, where: str, embedder_info) -> Store:
    if kind == "sqlite":
        return SqliteStore(where, embedder=embedder_info, accept_other_embedder=True)
    from persona.store.neo4j import Neo4jStore

    return Neo4jStore(where, auth=None, embedder=embedder_info, accept_other_embedder=True)


def _without_vectors(export: dict) -> dict:
    """An export minus when it was made and which embedder the store records (export records carry no vectors)."""
    return {k: v for k, v in export.items() if k not in ("exported_at", "embedder")}


@pytest.mark.parametrize("kind", ["sqlite", "neo4j"])
def test_a_hash_filled_store_is_reembedded_in_place(kind: str, request: pytest.FixtureRequest, tmp_path: Path):
    from persona.reembed import reembed, vector_search_notice

    where = str(tmp_path / "moved.sqlite3") if kind == "sqlite" else request.getfixturevalue("neural_neo4j").uri
    if kind == "neo4j":  # this server is shared by the module: put it on the small hashing embedder first
        with _open(kind, where, NEURAL.info) as store:
            pass
        with _open(kind, where, SMALL_HASH.info) as store:
            reembed(store, SMALL_HASH)
    user = f"u-{os.urandom(5).hex()}"
    hashing = OfflineProvider(embedder=SMALL_HASH)
    with _open(kind, where, SMALL_HASH.info) as store:
        assert store.stale_embedder is None
        ids = {o: ingest_entry(store, hashing, user, t, occurred_at=day(o)).entry.id for o, t in JOURNAL}

    with _open(kind, where, NEURAL.info) as store:
        # opened all the same, with a reason instead of an error, and no meaningless vector results
        assert store.stale_embedder == SMALL_HASH.info
        assert "persona reembed" in vector_search_notice(store)
        assert store.vector_search(user, NEURAL.embed(["a walk"])[0], k=5) == []
        # writing goes on meanwhile (Neo4j's old index has another dimension): the re-embed covers it too
        late = OfflineProvider(embedder=NEURAL)
        assert ingest_entry(store, late, user, "Swam in the cold sea at dawn.", occurred_at=day(20)).ok
        before = _without_vectors(store.export_user(user))
        steps: list[tuple[int, int]] = []
        result = reembed(store, NEURAL, on_progress=lambda done, total: steps.append((done, total)))
        assert result.adopted and user in result.users and store.stale_embedder is None
        assert steps and steps[-1][0] == steps[-1][1] and result.replaced >= len(JOURNAL)
        assert _without_vectors(store.export_user(user)) == before, "nodes, links and texts are unchanged"
        question = "Who did I go hiking with?"
        hits = store.vector_search(user, NEURAL.embed([question])[0], k=3)
        nodes = store.get_nodes(user, [h.id for h in hits])
        assert ids[0] in [getattr(n, "entry_id", None) for n in nodes]
        # the stored vectors are the sentence model's: the score is the model's cosine for the node's text
        expected = _cosine(question, node_text(nodes[0]))
        assert hits[0].score == pytest.approx(expected, abs=1e-4)
        store.delete_user(user)

    with _open(kind, where, NEURAL.info) as store:  # the store now records the model: no longer stale
        assert store.stale_embedder is None and vector_search_notice(store) is None


def test_the_cli_says_why_search_is_off_and_reembeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from click.testing import CliRunner

    from persona.cli import cli
    from persona.config import get_settings

    hashing = OfflineProvider(embedder=SMALL_HASH)
    with SqliteStore(tmp_path / "persona.sqlite3", embedder=SMALL_HASH.info) as old:
        for offset, text in JOURNAL:
            ingest_entry(old, hashing, "maya", text, occurred_at=day(offset))
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path))
    monkeypatch.setenv("PERSONA_EMBEDDER", "neural")
    monkeypatch.setenv("PERSONA_PROVIDER", "offline")
    get_settings.cache_clear()
    try:
        stats = CliRunner().invoke(cli, ["stats", "--user", "maya"])
        assert stats.exit_code == 0, stats.output
        assert "Search by meaning is off" in stats.output and "persona reembed" in stats.output
        moved = CliRunner().invoke(cli, ["reembed"])
        assert moved.exit_code == 0, moved.output
        assert "re-embedded" in moved.output and MODEL_NAME in moved.output
        again = CliRunner().invoke(cli, ["stats", "--user", "maya"])
        assert "Search by meaning is off" not in again.output
    finally:
        get_settings.cache_clear()


def test_the_hashing_embedder_keeps_its_own_default_weights(tmp_path: Path):
    from persona.retrieval import PRESETS

    hashing = OfflineProvider(embedder=HashEmbedder())
    with SqliteStore(tmp_path / "h.sqlite3", embedder=hashing.embedder.info) as store:
        for offset, text in JOURNAL:
            ingest_entry(store, hashing, "h", text, occurred_at=day(offset))

        def scores(preset):
            return [
                (r.id, round(r.score, 9))
                for r in retrieve(store, hashing.embedder, "h", "walk by the river", preset=preset)
            ]

        assert scores("default") == scores("hashing")
        assert scores("default") != scores(PRESETS["default"])  # the sentence model's weights rank differently
