"""The ``persona`` command line on a fresh PERSONA_HOME (SQLite, offline): import, export, retry, stats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from persona.cli import cli
from persona.config import get_settings
from persona.llm.offline import OfflineProvider
from persona.models import Entry, EntryStatus, NodeType
from persona.store.sqlite import SqliteStore

JOURNAL = """# Journal

## 2024-03-01
Went hiking with Maria in the Alps. I love the mountains.

## 2024-03-02 19:30
Dinner with Tom at Luigi's. I want to learn Italian by June.
"""


@pytest.fixture
def run(app_home: Path):
    """Invoke the CLI in-process on the fresh home; returns the click result (and fails on a traceback)."""
    runner = CliRunner()

    def invoke(*args: str):
        get_settings.cache_clear()  # each command reads the settings as a new process would
        result = runner.invoke(cli, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    return invoke


def _stats(output: str) -> dict[str, int]:
    rows = [line.split(":") for line in output.splitlines() if ":" in line and line.startswith(" ")]
    return {key.strip(): int(value) for key, value in rows}


def _store(home: Path) -> SqliteStore:
    return SqliteStore(home / "persona.sqlite3", embedder=OfflineProvider().embedder.info)


def test_import_then_stats_counts_what_the_journal_holds(run, app_home: Path, tmp_path: Path):
    journal = tmp_path / "journal.md"
    journal.write_text(JOURNAL)
    imported = run("import", str(journal), "--user", "ada")
    assert "2 entries ingested, 0 already there, 0 failed for ada" in imported.output
    stats = _stats(run("stats", "--user", "ada").output)
    assert stats["Entry"] == 2 and stats["Episode"] == 2 and stats["Entity"] >= 3 and stats["users"] == 1
    again = run("import", str(journal), "--user", "ada")
    assert "0 entries ingested, 2 already there" in again.output


def test_export_then_import_restores_the_same_graph_into_another_persona(run, tmp_path: Path):
    journal, export = tmp_path / "journal.md", tmp_path / "ada.json"
    journal.write_text(JOURNAL)
    run("import", str(journal), "--user", "ada")
    written = run("export", "--user", "ada", "--output", str(export))
    data = json.loads(export.read_text())
    assert data["format"] == "persona-export/1" and data["user_id"] == "ada"
    assert f"wrote {len(data['nodes'])} nodes and {len(data['links'])} links" in written.output
    restored = run("import", str(export), "--user", "bob")
    assert "restored 2 entries (0 already there)" in restored.output
    ada, bob = _stats(run("stats", "--user", "ada").output), _stats(run("stats", "--user", "bob").output)
    assert ada == bob
    printed = json.loads(run("export", "--user", "bob").output)  # to stdout
    assert sorted(n["text"] for n in printed["nodes"] if n["type"] == "Entry") == sorted(
        n["text"] for n in data["nodes"] if n["type"] == "Entry"
    )


def test_retry_processes_failed_and_pending_entries(run, app_home: Path):
    store = _store(app_home)
    when = datetime(2024, 3, 5, 8, tzinfo=UTC)
    failed = store.save_entry(Entry(user_id="ada", text="Swam with Ines at the lake.", occurred_at=when))
    store.set_entry_status("ada", failed.id, EntryStatus.FAILED, error="ProviderError: timeout")
    store.save_entry(Entry(user_id="ada", text="Read a book about gardens with Tom.", occurred_at=when))
    store.close()
    retried = run("retry", "--user", "ada")
    assert "2 entries ingested, 0 already there, 0 failed for ada" in retried.output
    store = _store(app_home)
    try:
        statuses = {e.status for e in store.list_nodes("ada", NodeType.ENTRY)}  # type: ignore[union-attr]
        assert statuses == {EntryStatus.DONE} and store.count_nodes("ada", NodeType.EPISODE) == 2
    finally:
        store.close()


def test_a_bad_file_is_a_clear_error_and_stores_nothing(app_home: Path, tmp_path: Path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "occurred_at": "2024-03-01"}\nnot json at all\n')
    env = os.environ | {"PERSONA_HOME": str(app_home)}
    done = subprocess.run(
        [sys.executable, "-m", "persona.cli", "import", str(bad), "--user", "ada"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert "line 2" in done.stderr
    store = _store(app_home)
    try:
        assert store.stats()["Entry"] == 0
    finally:
        store.close()
