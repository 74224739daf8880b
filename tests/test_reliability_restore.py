"""Restoring a backup the person edited, or a crafted one: every collision is found before the first write, and the
answer is a choice or a clear refusal, never an ``IntegrityError`` half-way (issue 16)."""

from __future__ import annotations

import copy
import json

import pytest

from persona.errors import PersonaError, RestoreConflictError, ValidationError
from persona.ingest import ingest_entry
from persona.llm.offline import OfflineProvider
from persona.models import EntryStatus, NodeType
from persona.transfer import restore_export
from tests.factories import day, persona_cli


@pytest.fixture(scope="module")
def provider() -> OfflineProvider:
    return OfflineProvider()


def _fill(store, provider, user, n=3):
    for i in range(n):
        ingest_entry(
            store, provider, user, f"Met Sarah at the park on day {i}. We planned the garden.", occurred_at=day(i)
        )
    return store.export_user(user)


def _snapshot(store, user):
    data = store.export_user(user)
    nodes = sorted((n["type"], n["id"], n.get("text"), n.get("status"), n.get("name")) for n in data["nodes"])
    return nodes, sorted(json.dumps(lk, sort_keys=True) for lk in data["links"])


def _entries(data):
    return [n for n in data["nodes"] if n["type"] == "Entry"]


def test_an_edited_backup_is_refused_naming_the_entry_and_nothing_is_written(store, provider, user):
    backup = _fill(store, provider, user)
    edited = copy.deepcopy(backup)
    _entries(edited)[1]["text"] += " Edited later."
    _entries(edited)[2]["occurred_at"] = (day(40)).isoformat()
    before = _snapshot(store, user)
    with pytest.raises(RestoreConflictError) as caught:
        restore_export(store, provider.embedder, edited)
    message = str(caught.value)
    assert "2 of your entries differ" in message and "\n" not in message
    assert _entries(edited)[1]["id"] in message and _entries(edited)[2]["id"] in message
    assert set(caught.value.entry_ids) == {_entries(edited)[1]["id"], _entries(edited)[2]["id"]}
    assert _snapshot(store, user) == before


def test_conflict_choices_keep_mine_replace_keep_both(store, provider, user):
    backup = _fill(store, provider, user, n=2)
    edited = copy.deepcopy(backup)
    target = _entries(edited)[0]
    target["text"] = "Met Sarah at the park. The backup's own words."
    before = _snapshot(store, user)

    report = restore_export(store, provider.embedder, edited, on_conflict="keep-mine")
    assert (report.entries, report.skipped_duplicates, report.conflicts_kept_mine) == (0, 1, 1)
    assert _snapshot(store, user) == before

    report = restore_export(store, provider.embedder, edited, on_conflict="keep-both")
    assert (report.entries, report.conflicts_kept_both) == (1, 1)
    texts = sorted(e.text for e in store.list_nodes(user, NodeType.ENTRY, limit=10))
    assert texts.count("Met Sarah at the park. The backup's own words.") == 1 and len(texts) == 3
    assert all(e.status is EntryStatus.DONE for e in store.list_nodes(user, NodeType.ENTRY, limit=10))
    assert len(store.chain(user)) == 3


def test_replace_puts_the_backups_version_back_with_its_memories(store, provider, user):
    backup = _fill(store, provider, user, n=2)
    first = _entries(backup)[0]
    store.update_node(user, first["id"], {"text": "Something I rewrote after the backup."})
    report = restore_export(store, provider.embedder, backup, on_conflict="replace")
    assert (report.entries, report.conflicts_replaced, report.skipped_duplicates) == (1, 1, 1)
    restored = store.get_node(user, first["id"])
    assert restored.text == first["text"] and restored.status is EntryStatus.DONE
    assert _snapshot(store, user)[0] == _snapshot_of(backup)
    assert len(store.chain(user)) == 2


def _snapshot_of(data):
    return sorted((n["type"], n["id"], n.get("text"), n.get("status"), n.get("name")) for n in data["nodes"])


def test_an_unchanged_backup_is_already_there(store, provider, user):
    backup = _fill(store, provider, user)
    before = _snapshot(store, user)
    report = restore_export(store, provider.embedder, backup)
    assert (report.entries, report.skipped_duplicates, report.nodes) == (0, 3, 0)
    assert _snapshot(store, user) == before


def test_a_restore_without_a_user_goes_to_the_exports_user(store, provider, user_ids):
    source, other = user_ids[0], user_ids[1]
    backup = _fill(store, provider, source, n=2)
    store.delete_user(source)
    store.ensure_user(other)
    report = restore_export(store, provider.embedder, backup)
    assert report.entries == 2
    assert store.count_nodes(source, NodeType.ENTRY) == 2 and store.count_nodes(other, NodeType.ENTRY) == 0
    assert sorted(e.id for e in store.list_nodes(source, NodeType.ENTRY)) == sorted(e["id"] for e in _entries(backup))


def _crafted(backup, change):
    data = copy.deepcopy(backup)
    change(data)
    return data


def _repeat_an_entry(data):
    data["nodes"].append(copy.deepcopy(_entries(data)[0]) | {"text": "Another text under the same id."})


def _orphan_memories(data):
    data["nodes"] = [
        n for n in data["nodes"] if not (n["type"] == "Entry" and n["text"].endswith("day 0. We planned the garden."))
    ]


def _dangling_link(data):
    data["links"].append({"type": "MENTIONS", "source_id": data["nodes"][-1]["id"], "target_id": "no-such-node"})


def _mistyped_link(data):
    entry, episode = _entries(data)[0], next(n for n in data["nodes"] if n["type"] == "Episode")
    data["links"].append({"type": "MENTIONS", "source_id": episode["id"], "target_id": entry["id"]})


CRAFTED = {
    "repeated-id": (_repeat_an_entry, "repeated node id"),
    "orphan-memories": (_orphan_memories, "whose entry is not in the file"),
    "dangling-link": (_dangling_link, "to nodes not in the file"),
    "mistyped-link": (_mistyped_link, "never link"),
    "nodes-not-a-list": (lambda d: d.update(nodes=5), '"nodes" must be a list'),
    "links-not-a-list": (lambda d: d.update(links=5), '"links" must be a list'),
    "null-node": (lambda d: d["nodes"].append(None), "is not an object"),
    "string-node": (lambda d: d["nodes"].append("x"), "is not an object"),
    "null-link": (lambda d: d["links"].append(None), "link"),
    "bad-user": (lambda d: d.update(user_id=None), "user"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_a_crafted_export_is_refused_before_anything_is_written(store, provider, user_ids, case):
    source, target = user_ids[0], user_ids[1]
    backup = _fill(store, provider, source, n=2)
    change, expected = CRAFTED[case]
    data = _crafted(backup, change)
    for into in (source, target):
        before = _snapshot(store, into)
        with pytest.raises(PersonaError, match=expected) as caught:
            restore_export(store, provider.embedder, data, user_id=into if case != "bad-user" else into)
        assert "\n" not in str(caught.value)
        assert _snapshot(store, into) == before


def test_a_memory_naming_no_entry_of_the_file_is_refused_not_dropped(store, provider, user_ids):
    source, target = user_ids[0], user_ids[1]
    backup = _fill(store, provider, source, n=2)
    data = _crafted(backup, _orphan_memories)
    with pytest.raises(ValidationError, match=r"\d+ memory\(ies\) whose entry is not in the file"):
        restore_export(store, provider.embedder, data, user_id=target)
    assert store.stats(target).get("Entry", 0) == 0


def test_an_entitys_canonical_comes_from_its_name_not_from_the_file(store, provider, user_ids):
    source, target = user_ids[0], user_ids[1]
    ingest_entry(store, provider, target, "Lunch with Sarah in Lisbon.", occurred_at=day(0))
    ingest_entry(store, provider, source, "Coffee with Sarah downtown.", occurred_at=day(1))
    backup = store.export_user(source)
    for node in backup["nodes"]:
        if node["type"] == "Entity" and node["name"] == "Sarah":
            node["name"] = "Totally Different"
            node["canonical"] = "sarah"
    restore_export(store, provider.embedder, backup, user_id=target)
    names = sorted(e.name for e in store.list_nodes(target, NodeType.ENTITY, limit=50))
    assert "Totally Different" in names and "Sarah" in names
    sarah = next(e for e in store.list_nodes(target, NodeType.ENTITY, limit=50) if e.name == "Sarah")
    assert "Totally Different" not in sarah.aliases


def test_an_id_held_by_another_user_gets_a_fresh_one(store, provider, user_ids):
    owner, victim = user_ids[0], user_ids[1]
    theirs = _fill(store, provider, victim, n=1)
    mine = _fill(store, provider, owner, n=1)
    store.delete_user(owner)
    crafted = copy.deepcopy(mine)
    stolen = _entries(theirs)[0]["id"]
    old = _entries(crafted)[0]["id"]
    text = json.dumps(crafted).replace(old, stolen)
    before = _snapshot(store, victim)
    report = restore_export(store, provider.embedder, json.loads(text))
    assert report.entries == 1
    assert _snapshot(store, victim) == before
    assert [e.id for e in store.list_nodes(owner, NodeType.ENTRY)] != [stolen]


def test_repeats_in_one_backup_are_already_there_not_half_written(store, provider, user_ids):
    source, target = user_ids[0], user_ids[1]
    backup = _fill(store, provider, source, n=1)
    twin = copy.deepcopy(backup)
    copy_entry = copy.deepcopy(_entries(twin)[0]) | {"id": "f" * 8 + "-0000-4000-8000-000000000000"}
    twin["nodes"].append(copy_entry)
    report = restore_export(store, provider.embedder, twin, user_id=target)
    assert (report.entries, report.skipped_duplicates) == (1, 1)
    assert [e.status for e in store.list_nodes(target, NodeType.ENTRY)] == [EntryStatus.DONE]


def test_an_unknown_conflict_choice_is_refused(store, provider, user):
    backup = _fill(store, provider, user, n=1)
    with pytest.raises(ValidationError, match="unknown conflict choice"):
        restore_export(store, provider.embedder, backup, on_conflict="merge")


# -- the command line, on SQLite ------------------------------------------------------------------------------
def test_cli_restoring_an_edited_backup_says_what_to_do(tmp_path):
    journal = tmp_path / "j.md"
    journal.write_text("## 2024-03-01\nMet Sarah in Lisbon.\n\n## 2024-03-02\nCalled Ada about the bike.\n")
    assert persona_cli(tmp_path, "import", str(journal), "--user", "alice", user="demo").returncode == 0
    backup = tmp_path / "a.json"
    assert persona_cli(tmp_path, "export", "--user", "alice", "-o", str(backup), user="demo").returncode == 0
    data = json.loads(backup.read_text())
    _entries(data)[0]["text"] = "Met Sarah in Porto, in fact."
    backup.write_text(json.dumps(data))

    refused = persona_cli(tmp_path, "import", str(backup), user="demo")
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("error: 1 of your entries differ")
    assert "--on-conflict" in refused.stderr and "Traceback" not in refused.stderr

    kept = persona_cli(tmp_path, "import", str(backup), "--on-conflict", "keep-both", user="demo")
    assert kept.returncode == 0 and "restored 1 entries" in kept.stdout and "for alice" in kept.stdout
    stats = persona_cli(tmp_path, "stats", "--user", "alice", user="demo").stdout
    assert "Entry: 3" in stats
    # PERSONA_USER=demo picked no user for the restore: the backup's own user got it, "demo" was never made.
    demo = persona_cli(tmp_path, "stats", "--user", "demo", user="demo")
    assert demo.returncode == 2 and "no user 'demo'" in demo.stderr, demo.stderr


def test_cli_fifty_identical_lines_are_one_entry_and_no_failure(tmp_path):
    lines = tmp_path / "same.jsonl"
    lines.write_text('{"text": "The same line again.", "occurred_at": "2024-01-01"}\n' * 50)
    done = persona_cli(tmp_path, "import", str(lines), "--user", "bob", user="demo")
    assert done.returncode == 0, done.stderr
    assert "1 entries ingested, 49 already there, 0 failed for bob" in done.stdout
    assert "retry" not in done.stderr
