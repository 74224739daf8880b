"""The app with its store unreachable: every page shows a clear message that names the store, never a traceback.

Two ways the store goes away: it is unreachable from the start (Neo4j on a loopback port nobody listens on), and it
breaks in the middle of a session (the SQLite connection the app cached is closed under it). Each page is run through
``app.py`` (the real navigation) and on its own.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from persona.config import get_settings

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["journal", "timeline", "graph", "chat", "memories", "settings"]
TIMEOUT = 60


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:  # nothing listens once it is closed
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)


def _page(name: str) -> AppTest:
    return AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=TIMEOUT)


def _assert_clear_store_message(at: AppTest, where: str, *, mentions: str) -> None:
    assert not at.exception, f"{where}: traceback {[e.value for e in at.exception]}"
    errors = [e.value for e in at.error]
    assert any("memory store" in e.lower() for e in errors), f"{where}: no store message in {errors}"
    assert any(mentions in e for e in errors), f"{where}: the message does not say which store ({errors})"
    assert not at.get("bidi_component"), f"{where}: the page went on after the message (graph drawn)"


def test_every_page_says_the_neo4j_store_is_unreachable(
    app_home, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    monkeypatch.setenv("PERSONA_STORE", "neo4j")
    monkeypatch.setenv("NEO4J_URI", f"bolt://127.0.0.1:{closed_port}")
    get_settings.cache_clear()
    at = _app()
    at.run()
    _assert_clear_store_message(at, "app.py", mentions=str(closed_port))
    for name in PAGES:
        at.switch_page(f"pages/{name}.py")
        at.run()
        _assert_clear_store_message(at, f"app.py → {name}", mentions=str(closed_port))
    for name in PAGES:
        alone = _page(name)
        alone.run()
        _assert_clear_store_message(alone, f"{name} on its own", mentions=str(closed_port))


def test_every_page_says_so_when_the_store_breaks_mid_session(app_home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONA_STORE", "sqlite")
    get_settings.cache_clear()
    at = _app()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    import app_support  # the module the app imported: same process, same cache

    app_support._open_clients().store.close()  # the connection the app cached is gone
    for name in PAGES:
        at.switch_page(f"pages/{name}.py")
        at.run()
        _assert_clear_store_message(at, f"app.py → {name} after the store broke", mentions="SQLite")
