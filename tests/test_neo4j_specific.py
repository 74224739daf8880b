"""Neo4j-only behaviour: schema, labels, the vector-index fallback, exact scores, the user lock, connection errors."""

from __future__ import annotations

import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from persona.errors import StoreUnavailableError
from persona.llm.embedding import HashEmbedder
from persona.models import Entity, EntityKind, LinkType, MemoryBatch, NodeType
from persona.store.neo4j import Neo4jStore, lucene_query
from tests.factories import EMBEDDER, day, write_entry


@pytest.fixture
def neo4j(neo4j_store_factory):
    return neo4j_store_factory()


@pytest.fixture
def users(neo4j):
    made = [f"u-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    yield made
    for user in made:
        neo4j.delete_user(user)


def _labels(store: Neo4jStore, node_id: str) -> set[str]:
    with store._driver.session(database=store.database) as session:
        return set(session.run("MATCH (n:Node {id: $id}) RETURN labels(n) AS l", id=node_id).single()["l"])


def test_lucene_query_quotes_every_word():
    assert lucene_query(["budget", "and"]) == '"budget" OR "and"'
    assert lucene_query(['a"b', "c\\d", "x*"]) == '"a\\"b" OR "c\\\\d" OR "x\\*"'


def test_unreachable_server_fails_fast_with_a_clear_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once the socket closes
    began = time.monotonic()
    with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{port}"):
        Neo4jStore(f"bolt://127.0.0.1:{port}", auth=None, embedder=EMBEDDER.info)
    assert time.monotonic() - began < 30


def test_bad_uri_is_a_store_error():
    with pytest.raises(StoreUnavailableError):
        Neo4jStore("http://not-bolt", auth=None, embedder=EMBEDDER.info)


def test_opening_twice_is_idempotent(neo4j_store_factory, users):
    first, second = neo4j_store_factory(), neo4j_store_factory()
    first.ensure_user(users[0], display_name="Ada")
    assert second.ensure_user(users[0]).display_name == "Ada"  # an existing user keeps its name
    assert first.description.startswith("Neo4j · bolt://")
    with second._driver.session(database=second.database) as session:
        names = [r["name"] for r in session.run("SHOW VECTOR INDEXES YIELD name RETURN name")]
    assert names == ["persona_embedding"]


def test_labels_follow_the_scheme(neo4j, users):
    entry, batch = write_entry(neo4j, users[0], "Labelled day with Ann", day(0), people=("Ann",))
    assert _labels(neo4j, entry.id) == {"Node", "Entry"}
    assert _labels(neo4j, batch.episodes[0].id) == {"Node", "Episode", "Memory", "Searchable", "Embedded"}
    assert _labels(neo4j, batch.passages[0].id) == {"Node", "Passage", "Searchable", "Embedded"}
    assert _labels(neo4j, batch.entities[0].id) == {"Node", "Entity", "Searchable", "Embedded"}
    neo4j.update_node(users[0], batch.episodes[0].id, {"embedding": None})
    assert "Embedded" not in _labels(neo4j, batch.episodes[0].id)


def test_vector_scores_are_raw_cosine(neo4j, users):
    _, batch = write_entry(neo4j, users[0], "baking sourdough bread at dawn", day(0))
    query = np.asarray(EMBEDDER.embed(["sourdough bread"])[0])
    hits = neo4j.vector_search(users[0], query.tolist(), k=4)
    vectors = {n.id: np.asarray(n.embedding) for n in batch.nodes()}
    for hit in hits:
        expected = float(vectors[hit.id] @ query / np.linalg.norm(vectors[hit.id]) / np.linalg.norm(query))
        assert hit.score == pytest.approx(expected, abs=1e-5)


def test_vector_search_falls_back_when_other_users_crowd_the_index(neo4j, users):
    mine, crowd = users
    for n in range(25):  # 25 entries x 4 embedded nodes: the index's top 100 are all the crowd's
        write_entry(neo4j, crowd, f"sourdough bread baking {n}", day(n))
    _, batch = write_entry(neo4j, mine, "a walk by the river", day(0))
    query = EMBEDDER.embed(["sourdough bread baking"])[0]
    hits = neo4j.vector_search(mine, query, k=3)
    assert len(hits) == 3
    assert {h.id for h in hits} <= {n.id for n in batch.nodes()}


def test_evolution_candidates_by_the_vector_index_match_the_exact_scan(neo4j, users, monkeypatch):
    """A user with many goals and psyche memories asks the vector index (crowded by another user's) instead of
    scanning; both ways give the same candidates here, and the other user's never appear."""
    from persona.store import neo4j as neo4j_module
    from persona.store.base import EvolutionProbe

    mine, crowd = users
    for n in range(25):
        write_entry(neo4j, crowd, f"sourdough bread baking {n}", day(n))
    topics = ("cello", "run")
    written = [write_entry(neo4j, mine, f"{topic} practice {n}", day(n)) for n in range(6) for topic in topics]
    # No words: the candidates come from the vectors alone (every memory here shares "practice", so words would
    # bring all of them whatever the vector part returned). Near the user's own memories, so the index's answer is
    # used (not the scan it falls back to when crowded out).
    probe = EvolutionProbe("entry-x", day(40), "", EMBEDDER.embed(["cello practice", "run practice 3"]))
    scanned = neo4j.evolution_candidates(mine, [probe], k_vector=3)[0]
    monkeypatch.setattr(neo4j_module, "EVOLVING_SCAN_LIMIT", 0)
    indexed = neo4j.evolution_candidates(mine, [probe], k_vector=3)[0]
    own = {n.id for _, batch in written for n in [*batch.goals, *batch.psyche]}
    assert {n.id for n in scanned} <= own and 3 <= len(scanned) < len(own)
    assert {n.id for n in indexed} == {n.id for n in scanned}


def test_evolution_candidates_see_a_vector_changed_after_they_were_kept(neo4j, users):
    """The store keeps the goal and psyche vectors it scored; a vector changed through the store is not kept stale."""
    from persona.store.base import EvolutionProbe

    mine, _ = users
    written = [write_entry(neo4j, mine, f"garden chores {n}", day(n)) for n in range(8)]
    target = written[0][1].goals[0]
    far_away = EMBEDDER.embed(["quantum chromodynamics lecture notes"])[0]
    probe = EvolutionProbe("entry-x", day(40), "", [far_away])
    first = [n.id for n in neo4j.evolution_candidates(mine, [probe], k_vector=1)[0]]
    neo4j.set_embeddings(mine, {target.id: far_away})  # now the nearest to the probe, exactly
    second = [n.id for n in neo4j.evolution_candidates(mine, [probe], k_vector=1)[0]]
    assert first != [target.id] and second == [target.id]


def test_the_driver_does_not_log_unknown_label_and_property_warnings(neo4j, caplog):
    """A fresh store's queries name properties no node has yet: the server's notice about each is not logged."""
    with caplog.at_level("WARNING"):
        neo4j._read("MATCH (n:NoSuchLabelYet {no_such_key: 1}) RETURN n.no_such_property AS value")
    assert not [r for r in caplog.records if r.name.startswith("neo4j")]


def test_a_stale_vector_share_still_finds_the_nearest(neo4j, users):
    """The user's share of the vectors sizes the index ask and is counted at most every 30 s: counted while the
    user had no vectors, it must still give the exact nearest once they have some (never an empty or partial list)."""
    mine, crowd = users
    for n in range(10):
        write_entry(neo4j, crowd, f"sourdough bread baking {n}", day(n))
    neo4j.ensure_user(mine)
    query = EMBEDDER.embed(["bread baking on sunday"])[0]
    assert neo4j.vector_search(mine, query, k=5) == []
    nodes = [node for n in range(12) for node in write_entry(neo4j, mine, f"bread day {n} sunday", day(n))[1].nodes()]
    vectors = [(node.id, np.asarray(node.embedding)) for node in nodes if node.embedding is not None]
    unit = np.asarray(query) / np.linalg.norm(query)
    expected = sorted((float(v @ unit / np.linalg.norm(v)) for _, v in vectors), reverse=True)[:5]
    hits = neo4j.vector_search(mine, query, k=5)
    assert [round(h.score, 6) for h in hits] == [round(score, 6) for score in expected]
    assert {h.id for h in hits} <= {node_id for node_id, _ in vectors}


def test_entities_with_one_canonical_name_in_one_batch_share_a_node(neo4j, users):
    user = users[0]
    write_entry(neo4j, user, "first", day(0))
    sarah, again = (Entity(user_id=user, name=name, kind=EntityKind.PERSON) for name in ("Sarah", "SARAH"))
    mapping = neo4j.write_batch(user, MemoryBatch(entities=[sarah, again]))
    assert mapping == {sarah.id: sarah.id, again.id: sarah.id}
    (stored,) = neo4j.list_nodes(user, NodeType.ENTITY)
    assert stored.aliases == ["SARAH"]
    assert [h.id for h in neo4j.text_search(user, "SARAH", types=[NodeType.ENTITY])] == [sarah.id]


def test_concurrent_writers_keep_one_chain(neo4j_store_factory, users):
    user = users[0]
    stores = [neo4j_store_factory() for _ in range(4)]
    stores[0].ensure_user(user)
    days = [7, 3, 11, 0, 5, 9, 1, 13, 2, 8, 4, 12]

    def write(n: int) -> None:
        write_entry(stores[n % len(stores)], user, f"parallel entry {n}", day(days[n]))

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(write, range(len(days))))
    chain = stores[0].chain(user)
    episodes = stores[0].list_nodes(user, NodeType.EPISODE, limit=100, newest_first=False)
    assert chain == [e.id for e in episodes]
    assert len(stores[0].neighbours(user, chain, link_types=[LinkType.NEXT])) == len(chain) - 1


def test_store_with_another_dimension_is_refused_before_touching_the_index(neo4j_store_factory):
    from persona.errors import EmbedderMismatchError

    with pytest.raises(EmbedderMismatchError):
        neo4j_store_factory(embedder_override=HashEmbedder(dimension=8))
    store = neo4j_store_factory()
    with store._driver.session(database=store.database) as session:
        row = session.run("SHOW VECTOR INDEXES YIELD options RETURN options").single()
    assert row["options"]["indexConfig"]["vector.dimensions"] == EMBEDDER.info.dimension


# -- outgrowing one machine: another database, another process ------------------------------------------------------
def test_neo4j_database_setting_reaches_the_store_and_a_missing_database_is_a_clear_error(neo4j_server, monkeypatch):
    """NEO4J_DATABASE goes from the environment through the settings to the driver's sessions. Community holds one
    user database (``neo4j``), so the setting is checked with it and with a name the server does not have."""
    from persona.config import Settings
    from persona.llm.offline import OfflineProvider
    from persona.runtime import open_store

    monkeypatch.setenv("PERSONA_STORE", "neo4j")
    monkeypatch.setenv("NEO4J_URI", neo4j_server.uri)
    monkeypatch.delenv("NEO4J_PASSWORD", raising=False)
    monkeypatch.setenv("NEO4J_DATABASE", "journal")
    with pytest.raises(StoreUnavailableError, match="has no database 'journal'"):
        open_store(OfflineProvider(), Settings(_env_file=None))
    monkeypatch.setenv("NEO4J_DATABASE", "neo4j")
    store = open_store(OfflineProvider(), Settings(_env_file=None))
    try:
        assert store.database == "neo4j"
        user = f"u-{uuid.uuid4().hex[:10]}"
        store.ensure_user(user)
        with store._driver.session(database="neo4j") as session:
            assert session.run("MATCH (u:User {id: $id}) RETURN count(u) AS n", id=user).single()["n"] == 1
        store.delete_user(user)
    finally:
        store.close()


def test_a_tls_uri_to_a_server_without_tls_is_a_clear_error(neo4j_server):
    """``neo4j+s://`` is accepted (routing and TLS, as Aura and clusters need); a server that does not speak TLS
    is refused with a message, quickly, not a hang."""
    port = neo4j_server.uri.rsplit(":", 1)[1]
    began = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="cannot reach Neo4j at neo4j\\+s://"):
        Neo4jStore(f"neo4j+s://127.0.0.1:{port}", auth=None, embedder=EMBEDDER.info)
    assert time.monotonic() - began < 30


_WRITER = """
import sys, time
from pathlib import Path
from persona.models import MemoryBatch
from persona.store.neo4j import Neo4jStore
from tests.factories import EMBEDDER, day, entry_with_memories

uri, user, start, name, days = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4], sys.argv[5]
store = Neo4jStore(uri, auth=None, embedder=EMBEDDER.info)
store.ensure_user(user)
while not start.exists():
    time.sleep(0.01)
offsets = [int(d) for d in days.split(",")]
for group in (offsets[i : i + 3] for i in range(0, len(offsets), 3)):
    parts = [entry_with_memories(user, f"{name} wrote day {d}", day(d)) for d in group]
    for entry, _ in parts:
        store.save_entry(entry)
    store.write_batch(user, MemoryBatch.combine([b for _, b in parts]), done_entry_ids=[e.id for e, _ in parts])
store.close()
"""


def test_two_processes_writing_one_user_keep_one_ordered_chain(neo4j_server, neo4j, tmp_path):
    """The app and the API beside it are two processes on one Neo4j: their batches (several episodes each) for one
    user interleave in time and in date, and the user still has one chain in date order."""
    import subprocess
    import sys

    from tests.neo4j_server import ROOT

    user = f"u-{uuid.uuid4().hex[:10]}"
    start = tmp_path / "start"
    days = {"app": [20, 2, 14, 8, 26, 0, 11, 17, 5], "api": [3, 23, 9, 15, 1, 27, 12, 6, 19]}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, neo4j_server.uri, user, str(start), name, ",".join(map(str, offsets))],
            cwd=ROOT,
        )
        for name, offsets in days.items()
    ]
    try:
        time.sleep(3)  # both have imported and connected; then they start together
        start.touch()
        assert [w.wait(timeout=300) for w in writers] == [0, 0]
        chain = neo4j.chain(user)
        episodes = neo4j.list_nodes(user, NodeType.EPISODE, limit=100, newest_first=False)
        assert len(episodes) == 18
        assert chain == [e.id for e in episodes]
        assert len(neo4j.neighbours(user, chain, link_types=[LinkType.NEXT])) == len(chain) - 1
    finally:
        for writer in writers:
            writer.kill()
        neo4j.delete_user(user)
