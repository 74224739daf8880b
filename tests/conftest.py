"""Shared fixtures: a ``store`` parametrized over SQLite and a real Neo4j server started for the test session.

Neo4j: when ``PERSONA_TEST_NEO4J_URI`` is set, that server is used; otherwise ``scripts/neo4j/neo4j start`` runs
Neo4j Community from Maven jars on a free loopback port. Where it cannot start, the Neo4j cases skip with the
reason, unless ``PERSONA_REQUIRE_NEO4J=1`` (CI), where they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from persona.llm.embedding import HashEmbedder
from persona.store.base import Store
from persona.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parent.parent
NEO4J_SCRIPT = ROOT / "scripts" / "neo4j" / "neo4j"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _require(flag: str) -> bool:
    return os.environ.get(flag, "") not in ("", "0", "false")


class Neo4jServer:
    """A Neo4j server for this test session: its bolt URI, how long it took to start, and how to stop it."""

    def __init__(self) -> None:
        self.uri: str | None = os.environ.get("PERSONA_TEST_NEO4J_URI")
        self.error: str | None = None
        self.start_seconds: float | None = None
        self.home: Path | None = None
        self._env: dict[str, str] = {}
        if self.uri is None:
            self._start()

    def _start(self) -> None:
        if not NEO4J_SCRIPT.exists():
            self.error = f"{NEO4J_SCRIPT} is missing"
            return
        if shutil.which("java") is None or shutil.which("mvn") is None:
            self.error = "java or mvn is not on PATH, so Neo4j cannot be fetched and started"
            return
        port = _free_port()
        self.home = ROOT / ".neo4j" / f"test-{port}"
        self._env = os.environ | {"NEO4J_HOME_DIR": str(self.home), "NEO4J_BOLT_PORT": str(port)}
        self._env.pop("NEO4J_PASSWORD", None)
        began = time.monotonic()
        result = subprocess.run(
            [str(NEO4J_SCRIPT), "start"], env=self._env, capture_output=True, text=True, timeout=600, check=False
        )
        if result.returncode != 0:
            self.error = f"scripts/neo4j/neo4j start failed: {(result.stdout + result.stderr)[-2000:]}"
            return
        self.start_seconds = time.monotonic() - began
        self.uri = f"bolt://127.0.0.1:{port}"

    def stop(self) -> None:
        if self.home is not None and self._env:
            subprocess.run([str(NEO4J_SCRIPT), "stop"], env=self._env, capture_output=True, timeout=120, check=False)
            shutil.rmtree(self.home, ignore_errors=True)


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
