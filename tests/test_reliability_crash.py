"""Crashes in the middle of a bulk import: the database process (Neo4j, ``kill -9``) or the importing process
(SQLite, ``kill -9``) dies, comes back, and nothing that was reported as stored is missing; running the same import
again finishes it without writing anything twice.

Neo4j: a server of its own (started by ``scripts/neo4j/neo4j`` in a temporary home on a free port), never the
session's shared one. It skips with the reason when Java or Maven is missing, and fails instead under
``PERSONA_REQUIRE_NEO4J=1``. The quick variant kills once; the slow one (``PERSONA_RUN_SLOW=1``) kills three
times during a 1,500-entry import.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from persona.ingest import IngestResult, ingest_many
from persona.llm.offline import OfflineProvider
from persona.models import EntryStatus, LinkType, NodeType
from persona.store.base import Store
from tests.factories import EMBEDDER
from tests.neo4j_server import NEO4J_SCRIPT, ROOT, _free_port
from tests.test_reliability_faults import check_finished, journal


def _require_neo4j() -> bool:
    return os.environ.get("PERSONA_REQUIRE_NEO4J", "") not in ("", "0", "false")


class OwnNeo4j:
    """A Neo4j server this module may kill: its own home directory and port."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = _free_port()
        self.uri = f"bolt://127.0.0.1:{self.port}"
        self.env = os.environ | {"NEO4J_HOME_DIR": str(home), "NEO4J_BOLT_PORT": str(self.port)}
        self.env.pop("NEO4J_PASSWORD", None)
        self._share_jars()

    def _share_jars(self) -> None:
        """Point lib/ at jars another home already fetched (the script checks their version), to skip Maven."""
        pom = (NEO4J_SCRIPT.parent / "pom.xml").read_text()
        version = pom.split("<neo4j.version>", 1)[1].split("<", 1)[0]
        for lib in [ROOT / ".neo4j" / "lib", *sorted((ROOT / ".neo4j").glob("*/lib"))]:
            marker = lib / ".neo4j-version"
            if marker.is_file() and marker.read_text().strip() == version and (lib / f"neo4j-{version}.jar").exists():
                self.home.mkdir(parents=True, exist_ok=True)
                (self.home / "lib").symlink_to(lib, target_is_directory=True)
                return

    def _script(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(NEO4J_SCRIPT), command], env=self.env, capture_output=True, text=True, timeout=600, check=False
        )

    def start(self) -> float:
        began = time.monotonic()
        result = self._script("start")
        if result.returncode != 0:
            raise RuntimeError(f"neo4j start failed: {(result.stdout + result.stderr)[-2000:]}")
        return time.monotonic() - began

    @property
    def pid(self) -> int:
        return int((self.home / "run" / "neo4j-script.pid").read_text().strip())

    def kill(self) -> None:
        """``kill -9`` the java process: no shutdown, no flush, exactly a crash."""
        pid = self.pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise RuntimeError(f"java process {pid} survived SIGKILL")

    def stop(self) -> None:
        self._script("stop")


@pytest.fixture(scope="module")
def own_neo4j(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnNeo4j]:
    if shutil.which("java") is None or shutil.which("mvn") is None or not NEO4J_SCRIPT.exists():
        message = "java or mvn is not on PATH (or scripts/neo4j/neo4j is missing): no Neo4j of our own to kill"
        if _require_neo4j():
            pytest.fail(message)
        pytest.skip(message)
    server = OwnNeo4j(tmp_path_factory.mktemp("neo4j-kill") / "home")
    try:
        server.start()
    except RuntimeError as exc:
        if _require_neo4j():
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


def _import_in_background(store: Store, user: str, items: list) -> tuple[threading.Thread, list, list]:
    reported: list[IngestResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ingest_many(store, OfflineProvider(), user, items, on_progress=lambda n, total, r: reported.append(r))
        except BaseException as exc:  # noqa: BLE001 - recorded: the test reports what the import said
            errors.append(exc)

    thread = threading.Thread(target=run, name="import", daemon=True)
    thread.start()
    return thread, reported, errors


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _assert_reported_ok_are_stored(store: Store, user: str, reported: list[IngestResult]) -> int:
    """Every entry the import reported as stored is there, done, with its episode: a commit acknowledged is a commit
    kept, through a kill -9."""
    ok = [r.entry.id for r in reported if r.ok]
    stored = {n.id: n for n in store.get_nodes(user, ok)}
    assert set(stored) == set(ok), f"{len(set(ok) - set(stored))} entries reported as stored are missing"
    assert all(n.status is EntryStatus.DONE for n in stored.values())
    episodes = store.neighbours(user, ok, link_types=[LinkType.FROM_ENTRY])
    assert {lk.target_id for lk in episodes} == set(ok), "an entry reported as stored has no episode"
    return len(ok)


def _kill_during_import(
    server: OwnNeo4j, total: int, kill_after: list[int], *, outage: dict[int, float] | None = None
) -> dict[str, object]:
    """Import ``total`` entries in a thread; kill -9 the server each time ``kill_after[i]`` results are reported and
    start it again (after ``outage[i]`` seconds down, if given: longer than the driver's 30 s of retries, the import
    gives up). Then check what was reported, resume by running the same import again, check everything."""
    began = time.monotonic()
    from persona.store.neo4j import Neo4jStore

    store = Neo4jStore(server.uri, auth=None, embedder=EMBEDDER.info)
    user = f"u-kill-{uuid.uuid4().hex[:8]}"
    items = journal(total, seed=17)
    summary: dict[str, object] = {"entries": total, "kills": []}
    try:
        thread, reported, errors = _import_in_background(store, user, items)
        for threshold in kill_after:
            _wait_for(lambda t=threshold: len(reported) >= t or not thread.is_alive(), 300, f"{threshold} results")
            if not thread.is_alive():
                break
            server.kill()
            at_kill = len(reported)
            down = (outage or {}).get(kill_after.index(threshold), 0.0)
            time.sleep(down)
            restart = server.start()
            summary["kills"].append(  # type: ignore[union-attr]
                {
                    "after_results": at_kill,
                    "down_seconds": round(down + restart, 1),
                    "at": round(time.monotonic() - began, 1),
                }
            )
        thread.join(timeout=600)
        assert not thread.is_alive(), "the import hung after the server came back"
        summary["import_seconds"] = round(time.monotonic() - began, 1)
        summary["import_error"] = f"{type(errors[0]).__name__}: {str(errors[0])[:120]}" if errors else None
        summary["reported"] = len(reported)
        summary["reported_ok"] = _assert_reported_ok_are_stored(store, user, reported)
        summary["reported_failed"] = sum(not r.ok for r in reported)
        texts = {e.text: e for e in store.list_nodes(user, NodeType.ENTRY, limit=100_000)}
        summary["not_in_after_crash"] = sum(1 for text, _ in items if text not in texts)
        summary["stored_not_done"] = sum(1 for e in texts.values() if e.status is not EntryStatus.DONE)
        # Resume: the same import again. Done entries are duplicates (nothing written twice), failed or pending
        # ones are processed, missing ones are written.
        again = ingest_many(store, OfflineProvider(), user, items)
        assert all(r.ok for r in again), [r.error for r in again if not r.ok][:3]
        summary["resumed"] = sum(not r.duplicate for r in again)
        check_finished(store, user, items)
        summary["total_seconds"] = round(time.monotonic() - began, 1)
        return summary
    finally:
        store.delete_user(user)
        store.close()


def test_killing_neo4j_mid_import_loses_nothing_that_was_reported(own_neo4j: OwnNeo4j) -> None:
    summary = _kill_during_import(own_neo4j, total=96, kill_after=[24])
    print(f"\nneo4j kill -9 (quick): {json.dumps(summary)}")
    assert summary["kills"], "the import finished before the kill: make it longer"


@pytest.mark.slow
def test_killing_neo4j_three_times_during_a_long_import(own_neo4j: OwnNeo4j) -> None:
    # The third outage outlasts the driver's 30 s of retries: the import stops with StoreUnavailableError, and
    # running it again must finish it.
    summary = _kill_during_import(own_neo4j, total=1_500, kill_after=[100, 500, 900], outage={2: 40.0})
    print(f"\nneo4j kill -9 (long): {json.dumps(summary)}")
    assert len(summary["kills"]) == 3  # type: ignore[arg-type]
    assert summary["import_error"] and "StoreUnavailableError" in str(summary["import_error"])
    assert summary["resumed"], "the second run had entries left to do"


# -- SQLite: the importing process is the one that dies ----------------------------------------------------------
CHILD = """
import sys
from persona.ingest import ingest_many
from persona.llm.offline import OfflineProvider
from persona.store.sqlite import SqliteStore
from tests.factories import EMBEDDER
from tests.test_reliability_faults import journal

store = SqliteStore(sys.argv[1], embedder=EMBEDDER.info)
items = journal(int(sys.argv[2]), seed=23)

def report(number, total, result):
    print(result.entry.id, int(result.ok), flush=True)

ingest_many(store, OfflineProvider(), sys.argv[3], items, on_progress=report)
print("finished", flush=True)
"""


def _run_and_kill_child(path: Path, total: int, user: str, kill_after: int) -> tuple[list[tuple[str, bool]], bool]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(total), user],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )
    reported: list[tuple[str, bool]] = []
    finished = False
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("finished"):
            finished = True
            break
        entry_id, ok = line.split()
        reported.append((entry_id, ok == "1"))
        if len(reported) >= kill_after:
            child.send_signal(signal.SIGKILL)
            break
    child.wait(timeout=60)
    return reported, finished


def test_killing_the_importing_process_keeps_sqlite_consistent(tmp_path: Path) -> None:
    from persona.store.sqlite import SqliteStore

    path, user, total = tmp_path / "crash.sqlite3", "u-crash", 300
    reported, finished = _run_and_kill_child(path, total, user, kill_after=70)
    assert not finished and len(reported) >= 70
    with sqlite3.connect(path) as raw:
        problems = [row[0] for row in raw.execute("PRAGMA integrity_check")]
        # SQLite 3.40 reports "NULL value in links.user_id" for any WITHOUT ROWID table whose NOT NULL column comes
        # before its key columns (a false positive of that version): count real NULLs instead.
        if problems != ["ok"] and set(problems) == {"NULL value in links.user_id"}:
            assert raw.execute("SELECT count(*) FROM links WHERE user_id IS NULL").fetchone()[0] == 0
            problems = ["ok"]
        assert problems == ["ok"], problems[:5]
    store = SqliteStore(path, embedder=EMBEDDER.info)
    try:
        ok = [entry_id for entry_id, good in reported if good]
        assert {n.id for n in store.get_nodes(user, ok)} == set(ok), "an entry reported as stored is missing"
        episodes = store.neighbours(user, ok, link_types=[LinkType.FROM_ENTRY])
        assert {lk.target_id for lk in episodes} == set(ok)
        items = journal(total, seed=23)
        again = ingest_many(store, OfflineProvider(), user, items)
        assert all(r.ok for r in again)
        check_finished(store, user, items)
    finally:
        store.close()
