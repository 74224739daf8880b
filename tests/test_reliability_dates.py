"""Dates a person can really have: years before 1000 (padded sort keys, and the migration that re-keys old rows),
the zone offset of each date rather than today's, and the wall times daylight saving skips or repeats (issue 16)."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from persona.importers import parse_date, parse_markdown
from persona.llm.embedding import HashEmbedder
from persona.models import NodeType
from persona.store import migrations
from persona.store.sqlite import SqliteStore
from persona.zones import local_zone, localise
from tests.factories import write_entry

YEARS = [2024, 5, 1500, 999, 1999, 10]
FIXTURE_DB = Path(__file__).parent / "fixtures" / "e557b58.sqlite3"


def _at(year: int) -> datetime:
    return datetime(year, 6, 1, 12, tzinfo=UTC)


def test_years_before_1000_sort_and_filter_by_time(store, user):
    for year in YEARS:
        write_entry(store, user, f"Something that happened in the year {year}.", _at(year))
    oldest_first = store.list_nodes(user, NodeType.EPISODE, newest_first=False, limit=50)
    assert [e.occurred_at.year for e in oldest_first] == sorted(YEARS)
    newest_first = store.list_nodes(user, NodeType.EPISODE, limit=50)
    assert [e.occurred_at.year for e in newest_first] == sorted(YEARS, reverse=True)
    middle_ages = store.list_nodes(user, NodeType.EPISODE, start=_at(900), end=_at(1600), limit=50)
    assert sorted(e.occurred_at.year for e in middle_ages) == [999, 1500]
    early = store.list_nodes(user, NodeType.EPISODE, end=_at(1000), limit=50)
    assert sorted(e.occurred_at.year for e in early) == [5, 10, 999]
    chain_years = [store.get_node(user, i).occurred_at.year for i in store.chain(user)]
    assert chain_years == sorted(YEARS)


def _unpad(path: Path) -> None:
    """Write sort keys as release e557b58 did for years under 1000 (``%Y`` unpadded on Linux)."""
    with sqlite3.connect(path) as conn:
        for column in ("sort_time", "created_at"):
            conn.execute(f"UPDATE nodes SET {column} = ltrim(substr({column}, 1, 4), '0') || substr({column}, 5)")
    conn.close()


def test_the_migration_pads_years_stored_unpadded(tmp_path):
    path = tmp_path / "old.sqlite3"
    with SqliteStore(path, embedder=HashEmbedder().info) as store:
        for year in YEARS:
            write_entry(store, "u-years", f"The year {year}.", _at(year))
    _unpad(path)
    with sqlite3.connect(path) as conn:
        keys = [k for (k,) in conn.execute("SELECT sort_time FROM nodes WHERE type = 'Episode' ORDER BY sort_time")]
        assert keys[0].startswith("10-") and keys[-1].startswith("999-")  # the bug: text order is not time order
        migrations.pad_short_years(conn)
        keys = [k for (k,) in conn.execute("SELECT sort_time FROM nodes WHERE type = 'Episode' ORDER BY sort_time")]
    conn.close()
    assert [k[:4] for k in keys] == [f"{y:04d}" for y in sorted(YEARS)]


def test_a_release_store_with_short_years_opens_re_keyed(tmp_path):
    """The migration is registered: a store e557b58 wrote, holding a year-5 memory, lists it first."""
    path = tmp_path / "persona.sqlite3"
    shutil.copyfile(FIXTURE_DB, path)
    with sqlite3.connect(path) as conn:
        user, pk = conn.execute("SELECT user_id, pk FROM nodes WHERE type = 'Episode' ORDER BY sort_time").fetchone()
        conn.execute("UPDATE nodes SET sort_time = '5-06-01T12:00:00.000000' WHERE pk = ?", (pk,))
    conn.close()
    assert "002_pad_years_before_1000" in [s.name for s in migrations.SQLITE.steps]
    with SqliteStore(path, embedder=HashEmbedder().info) as store:
        first = store.list_nodes(user, NodeType.EPISODE, newest_first=False, limit=1)
        assert (
            first
            and store._read("SELECT sort_time FROM nodes WHERE pk = ?", (pk,))[0][0] == "0005-06-01T12:00:00.000000"
        )
        assert first[0].id == store._read("SELECT id FROM nodes WHERE pk = ?", (pk,))[0][0]


# -- zones ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def berlin(monkeypatch):
    monkeypatch.setenv("TZ", "Europe/Berlin")
    return local_zone()


def test_a_date_without_zone_gets_that_dates_offset(berlin):
    summer = parse_date("2024-07-15 09:00")
    winter = parse_date("2024-11-15 09:00")
    assert summer.utcoffset() == timedelta(hours=2) and summer.hour == 9
    assert winter.utcoffset() == timedelta(hours=1) and winter.hour == 9
    items = parse_markdown("## 2024-07-15 09:00\nBreakfast on the balcony.\n")
    assert items[0].occurred_at.astimezone(UTC).hour == 7


def test_a_time_in_the_spring_forward_gap_moves_forward(berlin):
    gap = parse_date("2024-03-31 02:30")  # clocks jump from 02:00 to 03:00: 02:30 never happens in Berlin
    assert (gap.hour, gap.minute, gap.utcoffset()) == (3, 30, timedelta(hours=2))
    assert gap.astimezone(UTC) == datetime(2024, 3, 31, 1, 30, tzinfo=UTC)
    before = parse_date("2024-03-31 01:59")
    assert before.utcoffset() == timedelta(hours=1) and before < gap


def test_a_time_in_the_fall_back_overlap_is_the_first_one(berlin):
    twice = parse_date("2024-10-27 02:30")  # 02:30 happens at 00:30 UTC (summer time) and again at 01:30 UTC
    assert twice.utcoffset() == timedelta(hours=2)
    assert twice.astimezone(UTC) == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)
    after = parse_date("2024-10-27 03:30")
    assert after.utcoffset() == timedelta(hours=1)


def test_localise_keeps_a_fixed_offset_so_comparisons_use_the_instant(berlin):
    first = localise(datetime(2024, 10, 27, 2, 30), berlin)
    later = datetime(2024, 10, 27, 1, 45, tzinfo=UTC)  # 02:45 winter time, after the first 02:30
    assert first < later and first.tzinfo.utcoffset(None) == timedelta(hours=2)


def test_an_unknown_tz_falls_back_to_the_machines_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Not/AZone")
    assert parse_date("2024-07-15 09:00").utcoffset() is not None
