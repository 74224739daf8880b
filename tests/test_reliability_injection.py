"""Injection: every hostile value of ``tests.hostile`` through every public entry point that takes text or ids, on
both stores.

What must hold for each value and each call:
- nothing but a ``PersonaError`` escapes (a hostile user id is always ``ValidationError``, a hostile node id
  ``NodeNotFoundError``, an unknown type or status ``ValidationError``);
- nothing is executed: the raw database (every node, property and link of every user, read below the store's API) is
  byte-for-byte the same after each read-only call, and the exports of the two seeded users are unchanged;
- a write stores the text exactly as given, after the documented cleaning (control characters and lone surrogates
  removed, NFC), or is refused with a ``ValidationError`` before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from persona.chat import answer
from persona.errors import DuplicateError, NodeNotFoundError, PersonaError, ValidationError
from persona.ingest import ingest_entry, ingest_many, retry_failed
from persona.llm.embedding import HashEmbedder
from persona.llm.offline import OfflineProvider
from persona.models import (
    USER_ID_PATTERN,
    Entity,
    EntityKind,
    EntryStatus,
    LinkType,
    MemoryBatch,
    NodeType,
    canonical_name,
)
from persona.retrieval import RetrievalQuery, retrieve
from persona.store.base import Store
from persona.store.neo4j import Neo4jStore
from persona.store.sqlite import SqliteStore
from persona.transfer import restore_export
from tests.factories import EMBEDDER, day
from tests.hostile import HOSTILE, SMALL, Hostile, expected_text, storable

NEO4J_SYNTAX = {"cypher", "lucene"}
"""What Neo4j could misread; SQL and FTS5 syntax is plain text there (one of each still runs, in SAMPLE)."""
SAMPLE_IDS = {"nul", "lone-surrogate", "zero-width-only", "whitespace-only", "long-1mb", "emoji", "controls"}
SAMPLE = [h for h in HOSTILE if h.id in SAMPLE_IDS or h is next(x for x in HOSTILE if x.kind == h.kind)]
"""One value of each kind, plus the ones that broke something once."""


def cases(neo4j: list[Hostile]) -> pytest.MarkDecorator:
    """Every value on SQLite; on Neo4j (~0.3 s a value) ``neo4j`` in the quick run, the others marked slow (run by
    make test-long)."""
    pairs = [pytest.param("sqlite", h, id=f"sqlite-{h.id}") for h in HOSTILE]
    pairs += [
        pytest.param("neo4j", h, id=f"neo4j-{h.id}", marks=() if h in neo4j else pytest.mark.slow) for h in HOSTILE
    ]
    return pytest.mark.parametrize(("world", "hostile"), pairs, indirect=["world"])


SEED_TEXT = "Lunch with Sarah in Lisbon. I love long lunches. I want to finish the garden plan by Friday."
SEED_TEXT_2 = "Walked with Tom along the river. Sarah called about the trip to Porto."


# -- the world every test starts from ------------------------------------------------------------------------------
@dataclass
class World:
    """One store with two seeded users: ``a`` is the one the hostile calls name, ``b`` is the bystander."""

    kind: str
    store: Store
    provider: OfflineProvider
    a: str
    b: str
    ids: dict[str, dict[str, str]] = field(default_factory=dict)  # user -> role -> node id
    owned: dict[str, set[str]] = field(default_factory=dict)  # user -> every node id

    def exports(self) -> dict[str, Any]:
        return {user: self.store.export_user(user) for user in (self.a, self.b)}


def _seed(store: Store, provider: OfflineProvider, user: str) -> dict[str, str]:
    first = ingest_entry(store, provider, user, SEED_TEXT, occurred_at=day(0))
    second = ingest_entry(store, provider, user, SEED_TEXT_2, occurred_at=day(1))
    assert first.ok and second.ok
    batch = first.batch
    entities = store.list_nodes(user, NodeType.ENTITY, limit=100)
    return {
        "entry": first.entry.id,
        "entry2": second.entry.id,
        "episode": batch.episodes[0].id,
        "passage": batch.passages[0].id,
        "psyche": batch.psyche[0].id if batch.psyche else batch.episodes[0].id,
        "goal": batch.goals[0].id if batch.goals else batch.episodes[0].id,
        "entity": entities[0].id,
        "entity2": entities[1].id,
    }


@pytest.fixture(scope="module", params=["sqlite", "neo4j"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    provider = OfflineProvider()
    if request.param == "sqlite":
        store: Store = SqliteStore(tmp_path_factory.mktemp("inject") / "persona.sqlite3", embedder=EMBEDDER.info)
    else:
        store = request.getfixturevalue("neo4j_store_factory")()
    a, b = (f"u-{uuid.uuid4().hex[:10]}" for _ in range(2))
    made = World(request.param, store, provider, a, b)
    try:
        for user in (a, b):
            made.ids[user] = _seed(store, provider, user)
            made.owned[user] = {n["id"] for n in store.export_user(user)["nodes"]}
        yield made
    finally:
        for user in (a, b):
            store.delete_user(user)
        if request.param == "sqlite":
            store.close()


def _extra_user(world: World) -> Iterator[tuple[str, dict[str, str]]]:
    user = f"u-{uuid.uuid4().hex[:10]}"
    try:
        yield user, _seed(world.store, world.provider, user)
    finally:
        world.store.delete_user(user)


# Users seeded like the others that the write tests change (the seeded pair stays as it is): one ingests hostile
# entries, one takes hostile edits. One of each per store for the whole module: every write is checked by reading it
# back, so they need no fresh user per value.
writer = pytest.fixture(scope="module", name="writer")(_extra_user)
editor = pytest.fixture(scope="module", name="editor")(_extra_user)


# -- "nothing changed": the raw database, below the store's own API ----------------------------------------------
def raw_fingerprint(store: Store, users: tuple[str, ...] = ()) -> str:
    """A digest of the database read directly: on SQLite every user, node, property and link; on Neo4j (shared by
    the whole session) every property of the given users' nodes and links, every :User and :PersonaMeta node, and
    the count of all nodes and relationships. A hostile value that got executed (a DETACH DELETE, a DROP TABLE, a
    SET on someone's node) changes it."""
    if isinstance(store, SqliteStore):
        with store._lock:
            rows = [
                store._conn.execute("SELECT id, body FROM users ORDER BY id").fetchall(),
                store._conn.execute(
                    "SELECT id, user_id, type, sort_time, status, canonical, content_hash, body, embedding "
                    "FROM nodes ORDER BY id"
                ).fetchall(),
                store._conn.execute("SELECT * FROM links ORDER BY source_id, type, target_id").fetchall(),
                store._conn.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall(),
            ]
        data = repr(rows).encode()
    else:
        assert isinstance(store, Neo4jStore)
        with store._driver.session(database=store.database) as session:
            # Vectors are summed on the server (384 floats per node would make this the slowest part of the test).
            nodes = session.run(
                "MATCH (n) WHERE n.user_id IN $users OR n:User OR n:PersonaMeta RETURN labels(n) AS labels, "
                "[k IN keys(n) WHERE NOT k IN ['lock_seq', 'embedding'] | [k, toString(n[k])]] AS props, "
                "reduce(total = 0.0, x IN coalesce(n.embedding, []) | total + x) AS vector",
                users=list(users),
            ).values()
            links = session.run(
                "MATCH (a:Node)-[r]->(b) WHERE a.user_id IN $users RETURN type(r) AS t, a.id AS a, b.id AS b",
                users=list(users),
            ).data()
            links.append(session.run("MATCH (n) RETURN count(n) AS nodes").single().data())
            links.append(session.run("MATCH ()-[r]->() RETURN count(r) AS links").single().data())
        as_text = sorted(json.dumps([sorted(labels), sorted(props), vector]) for labels, props, vector in nodes)
        data = json.dumps([as_text, sorted(json.dumps(lk) for lk in links)]).encode()
    return hashlib.sha256(data).hexdigest()


class Guard:
    """Checks after each call that nothing in the database changed, and that the two users' exports did not either;
    ``finish`` checks both once more. On Neo4j, where each check costs ~20 ms, only Cypher values are checked after
    every call; the others once after all calls (a change is still caught, only attributed to the value rather
    than to the call)."""

    def __init__(self, world: World, *, per_call: bool = True) -> None:
        self.world = world
        self.per_call = per_call
        self.users = (world.a, world.b)
        self.raw = raw_fingerprint(world.store, self.users)
        self.exports = world.exports()

    def check(self, label: str) -> None:
        if not self.per_call:
            return
        assert raw_fingerprint(self.world.store, self.users) == self.raw, f"{label} changed the database"
        if self.world.kind == "sqlite":
            assert self.world.exports() == self.exports, f"{label} changed an export"

    def finish(self) -> None:
        assert raw_fingerprint(self.world.store, self.users) == self.raw, "the calls changed the database"
        assert self.world.exports() == self.exports, "an export changed"


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """Run ``call``: ("ok", result) or ("error", the PersonaError). Anything else fails the test with its type."""
    try:
        return "ok", call()
    except PersonaError as exc:
        return "error", exc
    except Exception as exc:  # noqa: BLE001 - the point: say which entry point leaked what
        pytest.fail(f"unhandled {type(exc).__module__}.{type(exc).__name__}: {str(exc)[:300]}")


def result_ids(result: Any) -> set[str]:
    """Every node id a result names (hits, nodes, links, retrieved memories, subgraphs, answers' sources)."""
    found: set[str] = set()
    items = result if isinstance(result, list | tuple) else [result]
    for item in items:
        for attribute in ("id", "source_id", "target_id"):
            value = getattr(item, attribute, None)
            if isinstance(value, str):
                found.add(value)
        if hasattr(item, "nodes") and hasattr(item, "links"):
            found |= result_ids(item.nodes) | result_ids(item.links)
        if hasattr(item, "sources"):
            found |= result_ids(item.sources)
        if hasattr(item, "node"):
            found.add(item.node.id)
    return found


# -- 1. hostile user ids --------------------------------------------------------------------------------------------
def _user_id_calls(world: World, ids: dict[str, str]) -> dict[str, Callable[[str], Any]]:
    store, provider = world.store, world.provider
    vector = EMBEDDER.embed(["lunch"])[0]
    return {
        "ensure_user": lambda u: store.ensure_user(u),
        "delete_user": lambda u: store.delete_user(u),
        "set_entry_status": lambda u: store.set_entry_status(u, ids["entry"], EntryStatus.FAILED, error="x"),
        "write_batch": lambda u: store.write_batch(u, MemoryBatch()),
        "update_node": lambda u: store.update_node(u, ids["episode"], {"summary": "changed"}),
        "delete_node": lambda u: store.delete_node(u, ids["entry"]),
        "merge_entities": lambda u: store.merge_entities(u, ids["entity"], ids["entity2"]),
        "get_node": lambda u: store.get_node(u, ids["entry"]),
        "get_nodes": lambda u: store.get_nodes(u, [ids["entry"]]),
        "get_nodes(empty)": lambda u: store.get_nodes(u, []),
        "list_nodes": lambda u: store.list_nodes(u, NodeType.ENTRY),
        "count_nodes": lambda u: store.count_nodes(u, NodeType.ENTRY),
        "find_entry_by_hash": lambda u: store.find_entry_by_hash(u, "0" * 64),
        "neighbours": lambda u: store.neighbours(u, [ids["episode"]]),
        "neighbours(empty)": lambda u: store.neighbours(u, []),
        "vector_search": lambda u: store.vector_search(u, vector),
        "text_search": lambda u: store.text_search(u, "lunch"),
        "chain": lambda u: store.chain(u),
        "stats": lambda u: store.stats(u),
        "subgraph": lambda u: store.subgraph(u),
        "subgraph(centre)": lambda u: store.subgraph(u, center_ids=[ids["episode"]]),
        "export_user": lambda u: store.export_user(u),
        "ingest_entry": lambda u: ingest_entry(store, provider, u, "A quiet day."),
        "ingest_many": lambda u: ingest_many(store, provider, u, [("A quiet day.", day(3))]),
        "retry_failed": lambda u: retry_failed(store, provider, u),
        "retrieve": lambda u: retrieve(store, provider.embedder, u, "lunch"),
        "answer": lambda u: answer(store, provider, u, "what did I eat?").complete(),
        "restore_export(into)": lambda u: restore_export(
            store, provider.embedder, store.export_user(world.a), user_id=u
        ),
    }


@cases(neo4j=SAMPLE)
def test_a_hostile_user_id_is_refused_by_every_entry_point(world: World, hostile: Hostile) -> None:
    assert not USER_ID_PATTERN.fullmatch(hostile.value), "the table must hold only invalid user ids"
    guard = Guard(world)
    users_before = world.store.list_users()
    wrong = {}
    for name, call in _user_id_calls(world, world.ids[world.a]).items():
        status, result = outcome(lambda call=call: call(hostile.value))
        if not (status == "error" and isinstance(result, ValidationError)):
            wrong[name] = result
    assert not wrong, f"these did not raise ValidationError: {wrong}"
    guard.check("hostile user ids")
    assert world.store.list_users() == users_before
    guard.finish()


# -- 2. hostile text and ids in read-only calls -----------------------------------------------------------------
NOT_FOUND, INVALID, ANY = NodeNotFoundError, ValidationError, None
OK = "returns"
"""Search text is plain words: these calls must answer, not raise (not even a PersonaError: an FTS5 syntax error
re-raised as "store unavailable" is a bug, and a PersonaError used to count as a pass here)."""


def _read_calls(world: World, value: str) -> list[tuple[str, Callable[[], Any], type[PersonaError] | str | None]]:
    """(name, call, the error it must raise, OK when it must return, or None for "returns, or raises a
    PersonaError")."""
    store, provider, a, ids = world.store, world.provider, world.a, world.ids[world.a]
    return [
        ("text_search", lambda: store.text_search(a, value), OK),
        ("text_search(k=100)", lambda: store.text_search(a, value, k=100, types=[NodeType.PASSAGE]), OK),
        ("text_search(types)", lambda: store.text_search(a, "lunch", types=[value]), INVALID),
        ("vector_search(types)", lambda: store.vector_search(a, EMBEDDER.embed(["x"])[0], types=[value]), INVALID),
        ("retrieve", lambda: retrieve(store, provider.embedder, a, RetrievalQuery(text=value)), OK),
        (
            "retrieve(types)",
            lambda: retrieve(store, provider.embedder, a, RetrievalQuery("x", types=(value,))),
            INVALID,
        ),
        ("retrieve(preset)", lambda: retrieve(store, provider.embedder, a, "lunch", preset=value), INVALID),
        ("answer", lambda: answer(store, provider, a, value).complete(), ANY),
        ("list_nodes(status)", lambda: store.list_nodes(a, NodeType.ENTRY, status=value), INVALID),
        ("list_nodes(goal status)", lambda: store.list_nodes(a, NodeType.GOAL, status=value), INVALID),
        ("list_nodes(type)", lambda: store.list_nodes(a, value), INVALID),
        ("count_nodes(type)", lambda: store.count_nodes(a, value), INVALID),
        ("get_node(id)", lambda: store.get_node(a, value), NOT_FOUND),
        ("get_nodes(ids)", lambda: store.get_nodes(a, [value, ids["entry"]]), ANY),
        ("neighbours(ids)", lambda: store.neighbours(a, [value]), ANY),
        ("neighbours(types)", lambda: store.neighbours(a, [ids["episode"]], link_types=[value]), INVALID),
        ("find_entry_by_hash", lambda: store.find_entry_by_hash(a, value), ANY),
        ("subgraph(centre)", lambda: store.subgraph(a, center_ids=[value], depth=2), ANY),
        ("subgraph(types)", lambda: store.subgraph(a, types=[value]), INVALID),
        # writes that name no node of the user must change nothing
        ("delete_node(id)", lambda: store.delete_node(a, value), NOT_FOUND),
        ("update_node(id)", lambda: store.update_node(a, value, {"summary": "changed"}), NOT_FOUND),
        ("merge_entities(drop id)", lambda: store.merge_entities(a, ids["entity"], value), NOT_FOUND),
        ("merge_entities(keep id)", lambda: store.merge_entities(a, value, ids["entity"]), NOT_FOUND),
        ("set_entry_status(id)", lambda: store.set_entry_status(a, value, EntryStatus.DONE), NOT_FOUND),
        ("set_entry_status(status)", lambda: store.set_entry_status(a, ids["entry"], value), INVALID),
        ("update_node(field name)", lambda: store.update_node(a, ids["episode"], {value: "x"}), INVALID),
    ]


@cases(neo4j=[h for h in HOSTILE if h.kind in NEO4J_SYNTAX or h in SAMPLE])
def test_hostile_values_in_reads_raise_only_persona_errors_and_change_nothing(world: World, hostile: Hostile) -> None:
    guard = Guard(world, per_call=world.kind == "sqlite" or hostile.kind == "cypher")
    others = world.owned[world.b]
    for name, call, must_raise in _read_calls(world, hostile.value):
        status, result = outcome(call)
        if must_raise is OK:
            assert status == "ok", f"{name} raised {result!r} for plain search text"
        elif must_raise is not None:
            assert status == "error" and isinstance(result, must_raise), f"{name}: expected {must_raise.__name__}"
        if status == "ok":
            assert not result_ids(result) & others, f"{name} returned another user's nodes"
        guard.check(name)
    guard.finish()


# -- 3. hostile entry text: stored exactly (after cleaning) or refused before any write --------------------------
@cases(neo4j=SAMPLE)
def test_hostile_entry_text_round_trips_or_is_refused(
    world: World, writer: tuple[str, dict[str, str]], hostile: Hostile
) -> None:
    store, provider, (user, _) = world.store, world.provider, writer
    before, entries = world.exports(), store.count_nodes(user, NodeType.ENTRY)
    when = day(100 + HOSTILE.index(hostile))  # its own day, so the entry is the newest when it is written
    status, result = outcome(lambda: ingest_entry(store, provider, user, hostile.value, occurred_at=when))
    if not storable(hostile.value):
        assert status == "error" and isinstance(result, ValidationError)
        assert store.count_nodes(user, NodeType.ENTRY) == entries, "a refused entry was written"
    else:
        assert status == "ok" and result.ok, result
        stored = store.get_node(user, result.entry.id)
        assert stored.text == expected_text(hostile.value)
        assert store.list_nodes(user, NodeType.ENTRY, limit=1)[0].text == expected_text(hostile.value)
        assert store.chain(user)[-1] == result.batch.episodes[0].id
        # every passage is a piece of what was written, nothing invented
        passages = store.neighbours(user, [stored.id], link_types=[LinkType.PART_OF])
        for passage in store.get_nodes(user, [lk.source_id for lk in passages]):
            assert passage.text.split()[0] in stored.text
    assert world.exports() == before, "another user's data changed"


# -- 4. hostile memory edits and entity names --------------------------------------------------------------------
def _text_edits(ids: dict[str, str], value: str) -> list[tuple[str, str, str]]:
    """(node role, field, value) edits that take free text."""
    return [
        ("episode", "summary", value),
        ("episode", "title", value),
        ("psyche", "text", value),
        ("goal", "text", value),
        ("goal", "title", value),
        ("passage", "text", value),
        ("entry", "text", value),
    ]


@cases(neo4j=SAMPLE)
def test_hostile_memory_edits_round_trip_or_are_refused(
    world: World, editor: tuple[str, dict[str, str]], hostile: Hostile
) -> None:
    store, (fresh_user, ids) = world.store, editor
    bystanders = world.exports()
    for role, name, value in _text_edits(ids, hostile.value):
        before = store.get_node(fresh_user, ids[role])
        status, result = outcome(lambda: store.update_node(fresh_user, ids[role], {name: value}))  # noqa: B023
        after = store.get_node(fresh_user, ids[role])
        if status == "ok":
            assert getattr(after, name) == expected_text(value), f"{role}.{name} did not round-trip"
            assert getattr(result, name) == getattr(after, name)
        else:
            assert isinstance(result, ValidationError), f"{role}.{name}: {result!r}"
            assert after == before, f"a refused edit of {role}.{name} changed the node"
            assert not storable(value) or len(value) > 300, f"{role}.{name} refused a storable value: {result}"
    assert world.exports() == bystanders


@cases(neo4j=SAMPLE)
def test_hostile_entity_names_merge_rename_and_search_cleanly(
    world: World, editor: tuple[str, dict[str, str]], hostile: Hostile
) -> None:
    """Entity names come from extraction and from edits: through write_batch (merge by canonical name), a rename,
    a merge of two entities, and a search for the name."""
    store, (fresh_user, ids) = world.store, editor
    bystanders = world.exports()
    name = hostile.value
    existing = {e.canonical: e for e in store.list_nodes(fresh_user, NodeType.ENTITY, limit=100)}
    # Extraction cleans names before it builds entities (ingest._entities); a model given raw text refuses what it
    # cannot store (no letters, too long, not valid Unicode) with a ValueError.
    valid_unicode = not any("\ud800" <= ch <= "\udfff" for ch in name)
    usable = valid_unicode and storable(name) and bool(canonical_name(name)) and len(expected_text(name)) <= 200
    # 1. written by a batch (what ingest does with an extracted name)
    if usable:
        entity = Entity(user_id=fresh_user, name=name, kind=EntityKind.PERSON, embedding=EMBEDDER.embed([name])[0])
        mapping = store.write_batch(fresh_user, MemoryBatch(entities=[entity]))
        stored = store.get_node(fresh_user, mapping[entity.id])
        known = existing.get(canonical_name(name))
        if known is not None:  # 'sarah"' is Sarah: the name joins the node that already holds it
            assert stored.id == known.id and expected_text(name) in {stored.name, *stored.aliases}
        else:
            assert stored.name == expected_text(name)
            # the same canonical name again is the same node
            again = Entity(user_id=fresh_user, name=name.upper() if name.isascii() else name, kind=EntityKind.PERSON)
            assert store.write_batch(fresh_user, MemoryBatch(entities=[again]))[again.id] == stored.id
            # 2. merged into a seeded entity: its name becomes an alias, the merged node is gone
            store.merge_entities(fresh_user, ids["entity"], stored.id)
            assert expected_text(name).strip() in store.get_node(fresh_user, ids["entity"]).aliases
            assert outcome(lambda: store.get_node(fresh_user, stored.id))[0] == "error"
        outcome(lambda: store.text_search(fresh_user, name))
    else:
        with pytest.raises(ValueError):  # the model refuses it before any store sees it
            Entity(user_id=fresh_user, name=name, kind=EntityKind.PERSON)
    # 3. a rename to the hostile name
    before = store.get_node(fresh_user, ids["entity2"])
    status, result = outcome(lambda: store.update_node(fresh_user, ids["entity2"], {"name": name}))
    after = store.get_node(fresh_user, ids["entity2"])
    if status == "ok":
        assert after.name == expected_text(name) and after.canonical == canonical_name(name)
    else:
        assert isinstance(result, ValidationError | DuplicateError), repr(result)
        assert after == before
    # 4. the neighbours of the renamed entity are still the user's own
    links = store.neighbours(fresh_user, [ids["entity2"]], link_types=[LinkType.MENTIONS])
    sources = {lk.source_id for lk in links}
    assert {n.id for n in store.get_nodes(fresh_user, list(sources))} == sources
    assert world.exports() == bystanders


def test_the_hostile_table_is_big_and_varied() -> None:
    kinds = {h.kind for h in HOSTILE}
    assert len(HOSTILE) >= 50 and len(SMALL) >= 45
    assert {"cypher", "sql", "lucene", "fts5", "unicode", "control", "format", "path", "html", "size"} <= kinds


def test_a_second_store_instance_sees_the_same_clean_data(world: World) -> None:
    """The data written through one store object reads back the same through another (nothing cached hides a
    corruption)."""
    if world.kind == "sqlite":
        other: Store = SqliteStore(world.store.path, embedder=HashEmbedder().info)
    else:
        other = Neo4jStore(world.store.uri, auth=None, embedder=HashEmbedder().info)
    try:
        assert other.export_user(world.a) == world.store.export_user(world.a)
    finally:
        other.close()
