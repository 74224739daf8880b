"""Shared fixtures: a ``store`` parametrized over SQLite and a real Neo4j server started for the test session.

Neo4j: when ``PERSONA_TEST_NEO4J_URI`` is set, that server is used; otherwise ``scripts/neo4j/neo4j start`` runs
Neo4j Community from Maven jars on a free loopback port. Where it cannot start, the Neo4j cases skip with the
reason, unless ``PERSONA_REQUIRE_NEO4J=1`` (CI), where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from persona.llm.embedding import HashEmbedder
from persona.llm.offline import OfflineProvider
from persona.store.base import Store
from persona.store.sqlite import SqliteStore
from tests.fake_openai import fake_openai_fixture  # noqa: F401 - registers the `fake_openai` fixture
from tests.neo4j_server import Neo4jServer

# Tests that do not test meaning use the small, fast hashing embedder; tests of the sentence model (and of the
# default) ask for it explicitly (tests/test_neural.py). Set PERSONA_EMBEDDER=neural to run everything on the model.
os.environ.setdefault("PERSONA_EMBEDDER", "hash")
# The app and the API warm a fresh Neo4j in the background (persona.warmup): in tests, only where the warm-up is tested.
os.environ.setdefault("NEO4J_WARM_UP", "false")


def _require(flag: str) -> bool:
    return os.environ.get(flag, "") not in ("", "0", "false")


@pytest.fixture(scope="session")
def neo4j_server() -> Iterator[Neo4jServer]:
    """One real Neo4j for the whole session (skips, or fails under PERSONA_REQUIRE_NEO4J=1, when unavailable)."""
    server = Neo4jServer()
    try:
        if server.uri is None:
            message = f"Neo4j is not available: {server.error}"
            if _require("PERSONA_REQUIRE_NEO4J"):
                pytest.fail(message)
            pytest.skip(message)
        if server.start_seconds is not None:
            print(f"\nNeo4j started in {server.start_seconds:.1f} s at {server.uri}")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture(scope="session")
def neo4j_store_factory(neo4j_server: Neo4jServer, embedder: HashEmbedder):
    """Opens Neo4jStores on the session's server (closed at the end of the session)."""
    from persona.store.neo4j import Neo4jStore

    opened: list[Store] = []

    def factory(*, embedder_override=None) -> Store:
        store = Neo4jStore(neo4j_server.uri, auth=None, embedder=(embedder_override or embedder).info)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture(scope="session")
def provider() -> OfflineProvider:
    """The offline provider (rules and its local embedder); it keeps no state, so the session shares one."""
    return OfflineProvider()


@pytest.fixture
def sqlite_store(tmp_path: Path, provider: OfflineProvider) -> Iterator[SqliteStore]:
    """A fresh SQLite file bound to the offline provider's embedder, for the cases about SQLite only. It is the file
    the app and the CLI open when the test also uses ``app_home`` (both live in ``tmp_path``)."""
    opened = SqliteStore(tmp_path / "persona.sqlite3", embedder=provider.embedder.info)
    yield opened
    opened.close()


@pytest.fixture
def app_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ``PERSONA_HOME`` for the app and the CLI: the SQLite store, the offline provider, user "demo", no
    keys, no cached settings or clients. AppTest runs in it always go through ``app.py`` (see below)."""
    import streamlit as st
    from streamlit.runtime.pages_manager import PagesManager

    from persona.config import get_settings

    monkeypatch.setenv("PERSONA_HOME", str(tmp_path))
    monkeypatch.setenv("PERSONA_STORE", "sqlite")
    monkeypatch.setenv("PERSONA_PROVIDER", "offline")
    monkeypatch.setenv("PERSONA_USER", "demo")
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "NEO4J_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    # AppTest resets ``PagesManager.uses_pages_directory`` to None before every run; it is then recomputed as True
    # because ``pages/`` exists, so every run after the first would execute the page alone and skip ``app.py`` (and
    # its sidebar). The real server keeps the False that ``st.navigation`` sets.
    original = PagesManager.__init__

    def init(self: PagesManager, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)
    get_settings.cache_clear()
    st.cache_resource.clear()
    yield tmp_path
    st.cache_resource.clear()
    get_settings.cache_clear()


@pytest.fixture(params=["sqlite", "neo4j"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store(store_kind: str, request: pytest.FixtureRequest, tmp_path: Path, embedder: HashEmbedder) -> Iterator[Store]:
    """A store of each kind: a fresh SQLite file, or the session's Neo4j (tests use fresh user ids)."""
    if store_kind == "sqlite":
        opened = SqliteStore(tmp_path / "persona.sqlite3", embedder=embedder.info)
        yield opened
        opened.close()
    else:
        yield request.getfixturevalue("neo4j_store_factory")()


@pytest.fixture
def user_ids(store: Store) -> Iterator[list[str]]:
    """Fresh user ids for one test; their data is deleted afterwards (Neo4j is shared across tests)."""
    made: list[str] = []

    def make() -> str:
        user = f"u-{uuid.uuid4().hex[:10]}"
        made.append(user)
        return user

    yield [make(), make(), make()]
    for user in made:
        store.delete_user(user)


@pytest.fixture
def user(user_ids: list[str]) -> str:
    return user_ids[0]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run the long reliability cases (make test-long)")


def _slow(item: pytest.Item) -> bool:
    """Marked ``slow``, or ``slow_on_neo4j`` and this is its Neo4j case."""
    if "slow" in item.keywords:
        return True
    callspec = getattr(item, "callspec", None)
    return "slow_on_neo4j" in item.keywords and callspec is not None and callspec.params.get("store_kind") == "neo4j"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The one mechanism for long cases: marked ``slow`` (or ``slow_on_neo4j``), they run only with ``--run-slow``
    or PERSONA_RUN_SLOW=1; CI runs the rest each time."""
    if config.getoption("--run-slow") or _require("PERSONA_RUN_SLOW"):
        return
    skip = pytest.mark.skip(reason="a long case: run with `make test-long` (pytest --run-slow)")
    for item in items:
        if _slow(item):
            item.add_marker(skip)
