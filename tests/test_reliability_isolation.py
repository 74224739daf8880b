"""Isolation, as a property: random sequences of operations by two users, on both stores, and after every step
neither user can see or change the other's data through any function.

The model is simple and strict: an operation by one user leaves the other user's export exactly as it was, every id a
function returns belongs to the user who asked (never to the other, not even an id the other has since deleted), and
an operation that names the other user's node behaves as if the node did not exist.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from persona.chat import answer
from persona.errors import NodeNotFoundError, PersonaError
from persona.ingest import ingest_entry
from persona.llm.offline import OfflineProvider
from persona.models import MEMORY_TYPES, NodeType
from persona.retrieval import RetrievalQuery, retrieve
from persona.store.base import Store
from tests.factories import day
from tests.test_store_contract import _assert_single_ordered_chain

PEOPLE = ["Sarah", "Tom", "Helena", "Ana"]
PLACES = ["Lisbon", "Porto", "the river", "the office"]
WORDS = ["lunch", "walk", "budget", "garden", "Sarah", "Lisbon", "trip", "bread", "river"]
USERS = ("a", "b")
PROVIDER = OfflineProvider()

# Both users write about the same people and places with the same words: isolation must hold where the data is
# most alike (same entity names, same passages), not only where it differs.
texts = st.builds(
    lambda who, where, what, n: f"Had {what} with {who} in {where}. I want to plan the {what} again ({n}).",
    st.sampled_from(PEOPLE),
    st.sampled_from(PLACES),
    st.sampled_from(["lunch", "a walk", "a budget talk", "gardening", "bread baking"]),
    st.integers(0, 5),
)
users = st.sampled_from(USERS)


def _ids(export: dict[str, Any], *types: NodeType) -> list[str]:
    wanted = {t.value for t in types} or {t.value for t in NodeType}
    return [n["id"] for n in export["nodes"] if n["type"] in wanted]


def _returned_ids(result: Any) -> set[str]:
    if isinstance(result, list):
        return set().union(*(_returned_ids(item) for item in result)) if result else set()
    found = set()
    for attribute in ("id", "source_id", "target_id"):
        if isinstance(getattr(result, attribute, None), str):
            found.add(getattr(result, attribute))
    for attribute in ("nodes", "links", "sources"):
        if isinstance(getattr(result, attribute, None), list):
            found |= _returned_ids(getattr(result, attribute))
    if getattr(result, "node", None) is not None:
        found.add(result.node.id)
    return found


def make_machine(store: Store) -> type[RuleBasedStateMachine]:
    class TwoUsers(RuleBasedStateMachine):
        """Two users (fresh ids per example) acting on one store."""

        @initialize()
        def setup(self) -> None:
            self.uid = {u: f"u-iso-{u}-{uuid.uuid4().hex[:8]}" for u in USERS}
            for u in USERS:  # the same two entries for both: same names, same passages, same hashes but the user
                for offset, text in enumerate(["Had lunch with Sarah in Lisbon.", "Walked with Tom along the river."]):
                    ingest_entry(store, PROVIDER, self.uid[u], text, occurred_at=day(offset * 7))
            self.expected = {u: store.export_user(self.uid[u]) for u in USERS}
            self.ever = {u: set() for u in USERS}  # every id a user has ever owned
            self.steps = 0

        def teardown(self) -> None:
            for u in USERS:
                store.delete_user(self.uid[u])

        # -- the check every operation goes through ---------------------------------------------------------
        def act(self, who: str, label: str, call: Any) -> Any:
            """Run an operation as ``who``: the other user's export must not move, the result must name only
            ``who``'s nodes; then record ``who``'s new state."""
            other = "b" if who == "a" else "a"
            try:
                result = call()
            except PersonaError as exc:
                result = exc
            assert not (_returned_ids(result) & self.ever[other]), f"{label} by {who} returned the other's ids"
            assert store.export_user(self.uid[other]) == self.expected[other], f"{label} by {who} changed {other}"
            self.expected[who] = store.export_user(self.uid[who])
            self.ever[who] |= set(_ids(self.expected[who]))
            return result

        def pick(self, data: st.DataObject, who: str, *types: NodeType) -> str | None:
            ids = _ids(self.expected[who], *types)
            return data.draw(st.sampled_from(ids)) if ids else None

        # -- operations ---------------------------------------------------------------------------------------
        @rule(who=users, text=texts, offset=st.integers(0, 60))
        def ingest(self, who: str, text: str, offset: int) -> None:
            result = self.act(
                who, "ingest", lambda: ingest_entry(store, PROVIDER, self.uid[who], text, occurred_at=day(offset))
            )
            assert not isinstance(result, Exception) and result.entry.status.value in ("done", "pending", "failed")
            assert result.entry.id in _ids(self.expected[who], NodeType.ENTRY)

        @rule(who=users, data=st.data(), text=texts)
        def update_memory(self, who: str, data: st.DataObject, text: str) -> None:
            node_id = self.pick(data, who, *MEMORY_TYPES)
            if node_id is None:
                return
            node = store.get_node(self.uid[who], node_id)
            field = {"Episode": "summary", "Psyche": "text", "Goal": "text"}[node.type.value]
            updated = self.act(who, "update", lambda: store.update_node(self.uid[who], node_id, {field: text}))
            assert getattr(updated, field) == text

        @rule(who=users, data=st.data(), kind=st.sampled_from(["memory", "entry", "entity", "user"]))
        def delete(self, who: str, data: st.DataObject, kind: str) -> None:
            if kind == "user":  # the whole user, then the same id again
                self.act(who, "delete_user", lambda: store.delete_user(self.uid[who]))
                assert self.expected[who]["nodes"] == []
                self.act(who, "ensure_user", lambda: store.ensure_user(self.uid[who]))
                return
            types = {"memory": MEMORY_TYPES, "entry": (NodeType.ENTRY,), "entity": (NodeType.ENTITY,)}[kind]
            node_id = self.pick(data, who, *types)
            if node_id is None:
                return
            self.act(who, f"delete {kind}", lambda: store.delete_node(self.uid[who], node_id))
            assert node_id not in _ids(self.expected[who])

        @rule(who=users, data=st.data())
        def merge_entities(self, who: str, data: st.DataObject) -> None:
            entities = _ids(self.expected[who], NodeType.ENTITY)
            if len(entities) < 2:
                return
            keep, drop = data.draw(st.lists(st.sampled_from(entities), min_size=2, max_size=2, unique=True))
            self.act(who, "merge", lambda: store.merge_entities(self.uid[who], keep, drop))
            assert drop not in _ids(self.expected[who]) and keep in _ids(self.expected[who])

        @rule(who=users, word=st.sampled_from(WORDS))
        def search(self, who: str, word: str) -> None:
            hits = self.act(who, "text_search", lambda: store.text_search(self.uid[who], word, k=50))
            assert {h.id for h in hits} <= set(_ids(self.expected[who]))

        @rule(who=users, words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3))
        def retrieve_and_answer(self, who: str, words: list[str]) -> None:
            question = " ".join(words)
            found = self.act(
                who,
                "retrieve",
                lambda: retrieve(store, PROVIDER.embedder, self.uid[who], RetrievalQuery(question, limit=20)),
            )
            assert {m.id for m in found} <= set(_ids(self.expected[who]))
            reply = self.act(who, "answer", lambda: answer(store, PROVIDER, self.uid[who], question))
            reply.complete()
            assert not ({s.id for s in reply.sources} & self.ever["b" if who == "a" else "a"])

        @rule(who=users, data=st.data(), depth=st.integers(1, 3))
        def subgraph(self, who: str, data: st.DataObject, depth: int) -> None:
            centre = self.pick(data, who)
            centres = [centre] if centre else None
            graph = self.act(who, "subgraph", lambda: store.subgraph(self.uid[who], center_ids=centres, depth=depth))
            assert {n.id for n in graph.nodes} <= set(_ids(self.expected[who]))

        @rule(who=users, data=st.data(), op=st.sampled_from(["get", "update", "delete", "merge", "neighbours"]))
        def reach_for_the_other_users_node(self, who: str, data: st.DataObject, op: str) -> None:
            """Name a node of the other user: it must not exist for ``who``."""
            other = "b" if who == "a" else "a"
            theirs = self.pick(data, other)
            mine = self.pick(data, who, NodeType.ENTITY)
            if theirs is None:
                return
            me = self.uid[who]
            calls = {
                "get": lambda: store.get_node(me, theirs),
                "update": lambda: store.update_node(me, theirs, {"summary": "hijacked"}),
                "delete": lambda: store.delete_node(me, theirs),
                "merge": lambda: store.merge_entities(me, mine or theirs, theirs),
                "neighbours": lambda: store.neighbours(me, [theirs]),
            }
            result = self.act(who, f"{op} of the other's node", calls[op])
            if op == "neighbours":
                assert result == []
            elif not (op == "merge" and mine is None):
                assert isinstance(result, NodeNotFoundError), f"{op}: {result!r}"
            assert store.get_nodes(me, [theirs]) == []

        @invariant()
        def chains_are_single_ordered_paths(self) -> None:
            if not hasattr(self, "uid"):
                return
            for u in USERS:
                _assert_single_ordered_chain(store, self.uid[u])

    return TwoUsers


def test_two_users_never_see_or_change_each_others_data(store: Store) -> None:
    machine = make_machine(store)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=25 if store.__class__.__name__ == "SqliteStore" else 20,
            stateful_step_count=10,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
            derandomize=False,
        ),
    )


@pytest.mark.slow
def test_two_users_isolation_long_run(store: Store) -> None:
    run_state_machine_as_test(
        make_machine(store),
        settings=settings(
            max_examples=150,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
