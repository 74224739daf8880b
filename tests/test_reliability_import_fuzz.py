"""Hostile and careless import files, as a table of named files and as a hypothesis fuzz over every format and
shape: the answer is a ``PersonaError`` with a one-line message (``error: ...`` and exit 2 on the command line, a
message in the app), never a traceback, and nothing is written before the refusal (issue 16)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persona.errors import PersonaError
from persona.ingest import ingest_entry
from persona.llm.offline import OfflineProvider
from persona.store.sqlite import SqliteStore
from persona.views import import_file
from tests.factories import persona_cli

PROVIDER = OfflineProvider()


def _store(path: Path) -> SqliteStore:
    return SqliteStore(path, embedder=PROVIDER.embedder.info)


def _backup() -> dict:
    """A real export of two entries, the base that crafted files are cut from."""
    store = SqliteStore(None, embedder=PROVIDER.embedder.info)
    for n, text in enumerate(["Met Sarah in Lisbon. We talked about the garden.", "Called Ada about the bike."]):
        ingest_entry(store, PROVIDER, "source", text, occurred_at=datetime(2024, 3, 1 + n, 9, tzinfo=UTC))
    return store.export_user("source")


BACKUP = _backup()


def _export(change: Callable[[dict], object]) -> bytes:
    data = copy.deepcopy(BACKUP)
    change(data)
    return json.dumps(data).encode()


def _set(key: str, value: object) -> Callable[[dict], object]:
    return lambda d: d.update({key: value})


def _node_field(node_type: str, key: str, value: object) -> Callable[[dict], object]:
    def change(data: dict) -> None:
        next(n for n in data["nodes"] if n["type"] == node_type)[key] = value

    return change


# Named hostile files: (file name, bytes, the words the refusal must contain).
HOSTILE_FILES: dict[str, tuple[str, bytes, str]] = {
    # JSON shapes
    "json-null": ("x.json", b"null", "Day One export or a Persona export"),
    "json-list": ("x.json", b'["x"]', "Day One export or a Persona export"),
    "json-list-null": ("x.json", b"[null]", "Day One export or a Persona export"),
    "json-number": ("x.json", b"5", "Day One export or a Persona export"),
    "export-nodes-number": ("x.json", _export(_set("nodes", 5)), '"nodes" must be a list'),
    "export-nodes-null": ("x.json", _export(_set("nodes", None)), '"nodes" must be a list'),
    "export-nodes-dict": ("x.json", _export(_set("nodes", {})), '"nodes" must be a list'),
    "export-links-number": ("x.json", _export(_set("links", 5)), '"links" must be a list'),
    "export-node-null": ("x.json", _export(lambda d: d["nodes"].append(None)), "not an object"),
    "export-node-string": ("x.json", _export(lambda d: d["nodes"].append("x")), "not an object"),
    "export-node-no-type": ("x.json", _export(lambda d: d["nodes"].append({})), "no known type"),
    "export-link-null": ("x.json", _export(lambda d: d["links"].append(None)), "link"),
    "export-link-list": ("x.json", _export(lambda d: d["links"].append([1, 2])), "link"),
    "export-user-null": ("x.json", _export(_set("user_id", None)), "user"),
    "export-user-bad": ("x.json", _export(_set("user_id", "../../etc")), "user"),
    "export-entry-date-text": ("x.json", _export(_node_field("Entry", "occurred_at", "yesterday")), "occurred_at"),
    "export-entry-naive-date": (
        "x.json",
        _export(_node_field("Entry", "occurred_at", "2024-03-01T09:00:00")),
        "timezone",
    ),
    "export-entry-year-1": (
        "x.json",
        _export(_node_field("Entry", "occurred_at", "0001-01-01T00:00:00+05:00")),
        "range",
    ),
    "export-entry-text-number": ("x.json", _export(_node_field("Entry", "text", 5)), "text"),
    "export-episode-importance": ("x.json", _export(_node_field("Episode", "importance", "high")), "importance"),
    "export-entity-kind": ("x.json", _export(_node_field("Entity", "kind", "alien")), "kind"),
    "export-entity-name-empty": ("x.json", _export(_node_field("Entity", "name", "  ")), "name"),
    # Collisions inside one export
    "export-repeated-id": (
        "x.json",
        _export(lambda d: d["nodes"].append(copy.deepcopy(d["nodes"][0]))),
        "repeated node id",
    ),
    "export-orphan-memory": (
        "x.json",
        _export(lambda d: d.update(nodes=[n for n in d["nodes"] if n["type"] != "Entry"])),
        "entry is not in the file",
    ),
    "export-dangling-link": (
        "x.json",
        _export(lambda d: d["links"].append({"type": "PART_OF", "source_id": "a", "target_id": "b"})),
        "not in the file",
    ),
    # Parser limits
    "json-deep-nesting": ("x.json", b"[" * 100_000, "nested too deeply"),
    "jsonl-deep-nesting": ("x.jsonl", b'{"text": "a", "occurred_at": "2024-01-01"}\n' + b"[" * 100_000, "nested"),
    "json-huge-integer": ("x.json", b'{"entries": [{"text": "a", "creationDate": ' + b"9" * 5000 + b"}]}", "JSON"),
    "jsonl-huge-integer": ("x.jsonl", b'{"text": "a", "occurred_at": ' + b"9" * 5000 + b"}", "JSON"),
    "not-utf8": ("x.md", b"## 2024-03-01\n\xff\xfe hello", "UTF-8"),
    # Dates
    "dayone-kiritimati-9999": (
        "x.json",
        json.dumps(
            {"entries": [{"text": "end", "creationDate": "9999-12-31T23:00:00Z", "timeZone": "Pacific/Kiritimati"}]}
        ).encode(),
        "out of range",
    ),
    "dayone-no-date": ("x.json", b'{"entries": [{"text": "a"}]}', "creationDate"),
    "dayone-entries-null": ("x.json", b'{"entries": null}', "entries"),
    "markdown-year-1": ("x.md", b"## 0001-01-01\nThe very first day.\n", "range"),
    "markdown-year-9999": ("x.md", b"## 9999-12-31 23:59\nThe very last day.\n", "range"),
    "jsonl-no-date": ("x.jsonl", b'{"text": "a"}\n', "occurred_at"),
    "jsonl-text-number": ("x.jsonl", b'{"text": 5, "occurred_at": "2024-01-01"}\n', "text"),
    "jsonl-list-line": ("x.jsonl", b'[1]\n{"text": "a", "occurred_at": "2024-01-01"}\n', "text"),
    "markdown-no-dates": ("x.md", b"just some words\n", "date headings"),
    "markdown-undated-preamble": ("x.md", b"loose words\n## 2024-03-01\nday\n", "no date"),
    "markdown-over-limit": ("x.md", b"## 2024-03-01\n" + b"word " * 420_000, "longer than"),
}


def _counts(store: SqliteStore) -> dict[str, int]:
    return store.stats()


@pytest.mark.parametrize("case", sorted(HOSTILE_FILES))
def test_each_hostile_file_gets_a_one_line_refusal_and_no_write(tmp_path, case):
    name, raw, expected = HOSTILE_FILES[case]
    with _store(tmp_path / "p.sqlite3") as store:
        ingest_entry(store, PROVIDER, "alice", "Something already there.", occurred_at=datetime(2024, 1, 1, tzinfo=UTC))
        before = _counts(store)
        with pytest.raises(PersonaError) as caught:
            import_file(store, PROVIDER, "alice", name, raw)
        message = str(caught.value)
        assert expected.lower() in message.lower(), message
        assert "\n" not in message and len(message) < 600
        assert _counts(store) == before


CLI_SAMPLE = [
    "json-list-null",
    "export-nodes-number",
    "json-deep-nesting",
    "json-huge-integer",
    "dayone-kiritimati-9999",
]


def test_the_command_line_says_error_and_exits_2_for_hostile_files(tmp_path):
    """A sample of the table through the real ``persona import`` (one process each: a second apiece)."""
    for case in CLI_SAMPLE:
        name, raw, expected = HOSTILE_FILES[case]
        path = tmp_path / name
        path.write_bytes(raw)
        done = persona_cli(tmp_path, "import", str(path), "--user", "alice")
        assert done.returncode == 2, (case, done.stderr[-500:])
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected.lower() in lines[0].lower(), lines


# -- the fuzz ----------------------------------------------------------------------------------------------------
JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["2024-03-01", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "Entry", "sarah"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
DATES = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(lambda d: d.isoformat())
ZONES = st.sampled_from(["Europe/Berlin", "Pacific/Kiritimati", "Etc/GMT+12", "UTC", "Not/AZone", "../etc", ""])
FIELDS = ["id", "user_id", "text", "occurred_at", "created_at", "name", "canonical", "entry_id", "type", "kind"]


@st.composite
def crafted_exports(draw: st.DrawFn) -> bytes:
    data = copy.deepcopy(BACKUP)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["node", "link", "top"]))
        nodes = [n for n in data["nodes"] if isinstance(n, dict)] if isinstance(data["nodes"], list) else []
        links = [lk for lk in data["links"] if isinstance(lk, dict)] if isinstance(data["links"], list) else []
        if where == "node" and nodes:
            node = draw(st.sampled_from(nodes))
            field = draw(st.sampled_from(FIELDS))
            if draw(st.booleans()):
                node.pop(field, None)
            else:
                node[field] = draw(JUNK | DATES)
        elif where == "link" and links:
            link = draw(st.sampled_from(links))
            link[draw(st.sampled_from(["type", "source_id", "target_id"]))] = draw(JUNK)
        else:
            data[draw(st.sampled_from(["nodes", "links", "user_id", "format"]))] = draw(JUNK)
    return json.dumps(data, default=str).encode()


@st.composite
def day_one_files(draw: st.DrawFn) -> bytes:
    entries = draw(
        st.lists(
            st.fixed_dictionaries(
                {"text": st.text(max_size=40) | JUNK, "creationDate": DATES.map(lambda d: d + "Z") | JUNK},
                optional={"timeZone": ZONES | JUNK},
            ),
            max_size=4,
        )
        | JUNK
    )
    return json.dumps({"entries": entries}, default=str).encode()


@st.composite
def json_lines_files(draw: st.DrawFn) -> bytes:
    lines = draw(
        st.lists(
            st.fixed_dictionaries({"text": st.text(min_size=1, max_size=40) | JUNK, "occurred_at": DATES | JUNK})
            | JUNK,
            min_size=1,
            max_size=4,
        )
    )
    return "\n".join(json.dumps(line, default=str) for line in lines).encode()


@st.composite
def markdown_files(draw: st.DrawFn) -> bytes:
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        heading = draw(DATES | st.dates().map(str) | st.text(max_size=20))
        parts.append(f"{'#' * draw(st.integers(1, 6))} {heading}\n{draw(st.text(max_size=60))}\n")
    return "".join(parts).encode("utf-8", "surrogatepass")


FILES = st.one_of(
    crafted_exports().map(lambda raw: ("backup.json", raw)),
    day_one_files().map(lambda raw: ("dayone.json", raw)),
    json_lines_files().map(lambda raw: ("lines.jsonl", raw)),
    markdown_files().map(lambda raw: ("journal.md", raw)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(file=FILES, into=st.sampled_from(["source", "other"]))
def test_fuzzed_import_files_succeed_or_are_refused_cleanly(tmp_path_factory, file, into):
    name, raw = file
    path = tmp_path_factory.mktemp("fuzz") / "p.sqlite3"
    with _store(path) as store:
        ingest_entry(
            store,
            PROVIDER,
            "source",
            "Met Sarah in Lisbon. We talked about the garden.",
            occurred_at=datetime(2024, 3, 1, 9, tzinfo=UTC),
        )
        before = _counts(store)
        try:
            import_file(store, PROVIDER, into, name, raw)
        except PersonaError as exc:
            message = str(exc)
            assert message and "\n" not in message and len(message) < 600, message
            assert _counts(store) == before, message
