"""End to end in a real browser: the app as ``make run`` starts it, driven by Playwright with Debian's Chromium.

Write an entry carrying HTML, see it in the timeline as text, see the graph canvas drawn, get a cited chat answer;
no dialog ever opens and nothing is fetched from outside 127.0.0.1. Screenshots of each page go to
``test-artifacts/screenshots/``; with ``PERSONA_UPDATE_SCREENSHOTS=1`` the graph and timeline ones are copied to
``docs/screenshots/`` for the README. Without Chromium the test skips, except under ``PERSONA_REQUIRE_BROWSER=1``.
Playwright never downloads a browser here: the system Chromium is passed as ``executable_path``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "test-artifacts" / "screenshots"
DOCS_SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 30_000
ENTRY = (
    "Long walk by the river with Sarah in Lisbon. She read out <script>alert(1)</script> and "
    "<img src=x onerror=alert(1)> from a book on web security. I love quiet mornings. "
    "I want to run a half marathon by October."
)
CITATION = re.compile(r"\[[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\]")


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false")


@pytest.fixture(scope="module")
def chromium() -> str:
    """The system Chromium, or a skip (a failure under PERSONA_REQUIRE_BROWSER=1)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "Chromium is not installed: apt-get install -y chromium"
        if _flag("PERSONA_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:  # pragma: no cover - playwright is a dev dependency
        if _flag("PERSONA_REQUIRE_BROWSER"):
            pytest.fail(f"playwright is not installed: {exc}")
        pytest.skip(f"playwright is not installed: {exc}")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"streamlit exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    pytest.fail(f"streamlit did not answer on {url}/_stcore/health in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def app_url(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app on a free loopback port, with a fresh data folder, the SQLite store and the offline provider."""
    home = tmp_path_factory.mktemp("persona-home")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env |= {"PERSONA_HOME": str(home), "PERSONA_STORE": "sqlite", "PERSONA_PROVIDER": "offline", "PERSONA_USER": "demo"}
    streamlit = Path(sys.executable).with_name("streamlit")
    command = [str(streamlit)] if streamlit.exists() else [sys.executable, "-m", "streamlit"]
    command += ["run", "app.py", "--server.address", "127.0.0.1", "--server.port", str(port)]
    # No file watcher: other work on the checkout must not reload modules under the running app.
    command += ["--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    log = home / "streamlit.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def browser_page(chromium: str, app_url: str, tmp_path: Path):
    """A page in a fresh Chromium profile that records dialogs and every request leaving 127.0.0.1."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 1150},
        )
        page = context.pages[0] if context.pages else context.new_page()
        page.dialogs = []  # type: ignore[attr-defined]
        page.outside = []  # type: ignore[attr-defined]

        def on_dialog(dialog) -> None:
            page.dialogs.append(dialog.message)  # type: ignore[attr-defined]
            dialog.dismiss()

        def on_request(request) -> None:
            parsed = urlparse(request.url)
            if parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname not in ("127.0.0.1", "localhost"):
                page.outside.append(request.url)  # type: ignore[attr-defined]

        context.on("dialog", on_dialog)
        context.on("request", on_request)
        page.on("dialog", on_dialog)
        try:
            yield page
        finally:
            context.close()


@contextmanager
def _pictured_on_failure(page, name: str) -> Iterator[None]:
    """Keep a picture of the page when a step fails: Streamlit timing problems are easier seen than described."""
    try:
        yield
    except BaseException:
        print(f"\nfailure screenshot: {_shot(page, f'failure-{name}')}")
        raise


def _shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.wait_for_timeout(600)  # let the last reruns paint (Streamlit renders asynchronously)
    page.screenshot(path=str(path))
    return path


def _open(page, title: str) -> None:
    """Go to a page through the sidebar navigation, and wait for its title."""
    from playwright.sync_api import expect

    page.get_by_role("link", name=title).first.click()
    expect(page.get_by_role("heading", name=title, exact=True).first).to_be_visible(timeout=WAIT_MS)


def test_write_browse_graph_and_chat_in_a_real_browser(browser_page, app_url: str) -> None:
    with _pictured_on_failure(browser_page, "write-browse-chat"):
        _write_browse_graph_and_chat(browser_page, app_url)


def test_demo_persona_fills_the_timeline_and_the_graph(browser_page, app_url: str) -> None:
    """The demo journal, loaded from the Journal page: the README's screenshots come from here."""
    with _pictured_on_failure(browser_page, "demo"):
        _demo_persona(browser_page, app_url)


def _write_browse_graph_and_chat(page, app_url: str) -> None:
    from playwright.sync_api import expect

    page.set_default_timeout(WAIT_MS)
    page.goto(app_url)
    expect(page.get_by_role("heading", name="Journal", exact=True).first).to_be_visible(timeout=WAIT_MS)

    # Journal: write an entry; the extracted memories appear as cards.
    page.get_by_label("What happened?").fill(ENTRY)
    page.get_by_role("button", name="Save entry").click()
    expect(page.get_by_text("Extracted memories")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text("Sarah").first).to_be_visible()
    shots = {"journal": _shot(page, "journal")}

    # Timeline: the episode is there, and the hostile markup is shown as the text it is.
    _open(page, "Timeline")
    expect(page.get_by_text("Long walk by the river").first).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".vega-embed canvas, .vega-embed svg").first).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text("<script>alert(1)</script>", exact=False).first).to_be_visible()
    expect(page.get_by_text("<img src=x onerror=alert(1)>", exact=False).first).to_be_visible()
    page.get_by_text("Entry text").first.click()
    expect(page.get_by_test_id("stText").filter(has_text="onerror=alert(1)").first).to_be_visible()
    shots["timeline"] = _shot(page, "timeline")

    # Graph: the pyvis iframe draws a canvas, and its physics settles.
    _open(page, "Graph")
    frame = page.frame_locator("iframe").first
    expect(frame.locator("#mynetwork canvas")).to_be_visible(timeout=WAIT_MS)
    expect(frame.locator("body[data-settled='true']")).to_have_count(1, timeout=WAIT_MS)
    expect(frame.locator("#persona-legend")).to_contain_text("Episode")
    shots["graph"] = _shot(page, "graph")

    # Chat: an offline, extractive answer that cites a memory id, with its sources.
    _open(page, "Chat")
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill("What did I do with Sarah?")
    box.press("Enter")
    expect(page.get_by_text("Offline answer", exact=False).first).to_be_visible(timeout=WAIT_MS)
    answer = page.get_by_test_id("stChatMessage").last
    expect(answer.get_by_text("Sources", exact=False).first).to_be_visible(timeout=WAIT_MS)
    assert CITATION.search(answer.inner_text()), answer.inner_text()
    answer.get_by_text("Sources", exact=False).first.click()
    expect(answer.get_by_text("Why:", exact=False).first).to_be_visible()
    shots["chat"] = _shot(page, "chat")

    # Show the sources in the graph: the page switches and highlights them.
    answer.get_by_role("button", name="Show in graph").click()
    expect(page.get_by_text("Highlighting the", exact=False)).to_be_visible(timeout=WAIT_MS)
    expect(page.frame_locator("iframe").first.locator("#persona-legend")).to_contain_text("source of the last chat")
    shots["graph-highlight"] = _shot(page, "graph-highlight")

    for title in ("Memories", "Settings"):
        _open(page, title)
        shots[title.lower()] = _shot(page, title.lower())

    _assert_quiet(page)
    print(f"\nscreenshots: {', '.join(str(p) for p in shots.values())}")


def _demo_persona(page, app_url: str) -> None:
    from playwright.sync_api import expect

    page.set_default_timeout(WAIT_MS)
    page.goto(app_url)
    page.get_by_role("button", name="Load the demo persona").first.click()
    expect(page.get_by_text("Loaded the demo persona", exact=False)).to_be_visible(timeout=2 * WAIT_MS)

    _open(page, "Timeline")
    expect(page.get_by_role("heading", name="August 2026").first).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".vega-embed canvas, .vega-embed svg").first).to_be_visible(timeout=WAIT_MS)
    shots = {"timeline": _shot(page, "timeline-demo")}

    _open(page, "Graph")
    frame = page.frame_locator("iframe").first
    expect(frame.locator("#mynetwork canvas")).to_be_visible(timeout=WAIT_MS)
    expect(frame.locator("body[data-settled='true']")).to_have_count(1, timeout=2 * WAIT_MS)
    shots["graph"] = _shot(page, "graph-demo")

    _assert_quiet(page)
    print(f"\nscreenshots: {', '.join(str(p) for p in shots.values())}")
    if _flag("PERSONA_UPDATE_SCREENSHOTS"):
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        for name, path in shots.items():
            shutil.copyfile(path, DOCS_SHOTS / f"{name}.png")
        print(f"updated {DOCS_SHOTS}/graph.png and {DOCS_SHOTS}/timeline.png")


def _assert_quiet(page) -> None:
    """No dialog opened (no script from an entry ran) and nothing was fetched from outside 127.0.0.1."""
    assert page.dialogs == [], f"a dialog opened: {page.dialogs}"
    assert page.outside == [], f"requests left 127.0.0.1: {page.outside[:5]}"
