"""The change views in a real browser (Debian's Chromium through Playwright, like ``tests/test_browser.py``): a journal
where a goal is given up and a belief changes; the Timeline with "Changes only", and a goal's history on the
Memories page, each checked by axe-core (no serious or critical violation) and pictured in
``test-artifacts/screenshots/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from persona.ingest import ingest_entry
from persona.llm.offline import OfflineProvider
from persona.models import Goal, NodeType
from persona.store.sqlite import SqliteStore
from tests import test_browser as browser_suite
from tests.app_server import AppDidNotStart, running_app
from tests.factories import day
from tests.test_browser import (
    WAIT_MS,
    _check_accessibility,
    _open,
    _pictured_on_failure,
    _shot,
)
from tests.test_evolution_history_app import JOURNAL

pytestmark = pytest.mark.browser
# The browser suite's fixtures, by name; ``app_url`` below replaces its own for this module's tests.
chromium = browser_suite.chromium
axe_script = browser_suite.axe_script
browser_page = browser_suite.browser_page


@pytest.fixture
def app_url(chromium: str, tmp_path_factory: pytest.TempPathFactory, provider: OfflineProvider) -> Iterator[str]:
    """The app (SQLite, offline, persona "demo") on a free loopback port over a journal with two changes."""
    home = tmp_path_factory.mktemp("persona-home")
    store = SqliteStore(home / "persona.sqlite3", embedder=provider.embedder.info)
    for n, text in JOURNAL:
        assert ingest_entry(store, provider, "demo", text, occurred_at=day(n)).ok
    store.close()
    try:
        with running_app(home) as url:
            yield url
    except AppDidNotStart as exc:
        pytest.fail(str(exc))


def test_timeline_changes_and_memory_history_in_a_real_browser(browser_page, app_url: str, axe_script: Path) -> None:
    from playwright.sync_api import expect

    page = browser_page
    with _pictured_on_failure(page, "changes"):
        page.set_default_timeout(WAIT_MS)
        page.goto(app_url)
        expect(page.get_by_role("heading", name="Home", exact=True).first).to_be_visible(timeout=WAIT_MS)
        _open(page, "Timeline")
        expect(page.get_by_text("Goal dropped").first).to_be_visible()
        expect(page.get_by_text("harbour", exact=False).first).to_be_visible()
        page.get_by_text("Goal dropped").first.scroll_into_view_if_needed()
        _shot(page, "timeline-with-changes")
        page.get_by_text("Changes only").click()
        expect(page.get_by_text("harbour", exact=False)).to_have_count(0)
        expect(page.get_by_text("Changed your mind").first).to_be_visible()
        _shot(page, "timeline-changes-only")
        _check_accessibility(page, axe_script, "timeline (changes only)")

        _open(page, "Memories")
        page.get_by_label("Memory", exact=True).click()
        page.get_by_role("option", name="Learn the cello").first.click()
        expect(page.get_by_text("no longer true since", exact=False).first).to_be_visible()
        page.get_by_text("Correct this change").click()
        expect(page.get_by_role("button", name="Save the correction")).to_be_visible()
        page.get_by_text("History", exact=True).scroll_into_view_if_needed()
        _shot(page, "memories-history")
        _check_accessibility(page, axe_script, "memories (history)")
        assert not page.dialogs and not page.outside  # type: ignore[attr-defined]


def test_the_journal_has_the_goal_the_browser_test_picks(tmp_path: Path, provider: OfflineProvider) -> None:
    """Guards the browser test's premise without a browser: the journal yields the dropped goal it selects."""
    store = SqliteStore(tmp_path / "p.sqlite3", embedder=provider.embedder.info)
    for n, text in JOURNAL:
        assert ingest_entry(store, provider, "demo", text, occurred_at=day(n)).ok
    goals = [g for g in store.list_nodes("demo", NodeType.GOAL) if isinstance(g, Goal)]
    assert [(g.title, g.status.value) for g in goals] == [("Learn the cello", "dropped")]
    store.close()
