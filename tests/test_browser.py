"""End to end in a real browser: the app as ``make run`` starts it, driven by Playwright with Debian's Chromium.

Walk every page: write an entry carrying HTML and see it in the timeline as text, click a node in the graph and see
its details, hover it, find one by name, double-click to expand, ask a question and open its sources in the graph;
no dialog ever opens and nothing is fetched from outside 127.0.0.1. axe-core (npm, ``tests/browser/package.json``,
installed with ``npm ci`` when missing, loaded into the page from that local file) checks every page: no serious or
critical violations. Screenshots of each page go to ``test-artifacts/screenshots/``; with
``PERSONA_UPDATE_SCREENSHOTS=1`` the demo ones are copied to ``docs/screenshots/`` for the README. Without Chromium the
test skips, except under ``PERSONA_REQUIRE_BROWSER=1``. Playwright never downloads a browser here: the system
Chromium is passed as ``executable_path``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.app_server import CHROMIUM_ARGS, AppDidNotStart, running_app

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
AXE_DIR = ROOT / "tests" / "browser"
AXE_SCRIPT = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = ROOT / "test-artifacts" / "screenshots"
DOCS_SHOTS = ROOT / "docs" / "screenshots"
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


@pytest.fixture(scope="module")
def axe_script(chromium: str) -> Path:
    """axe-core from npm (``npm ci`` against tests/browser/package-lock.json when it is not installed yet)."""
    if not AXE_SCRIPT.exists():
        npm = shutil.which("npm")
        if npm is None:
            message = "npm is needed to install axe-core for the accessibility checks"
            if _flag("PERSONA_REQUIRE_BROWSER"):
                pytest.fail(message)
            pytest.skip(message)
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=AXE_DIR, check=True, capture_output=True)
    return AXE_SCRIPT


@pytest.fixture
def app_url(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app on a free loopback port, with a fresh data folder, the SQLite store and the offline provider."""
    home = tmp_path_factory.mktemp("persona-home")
    try:
        with running_app(home) as url:
            yield url
    except AppDidNotStart as exc:
        pytest.fail(str(exc))


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


AXE_RUN = """async () => {
    const result = await axe.run(document, {resultTypes: ["violations"]});
    return result.violations
        .filter((v) => v.impact === "serious" || v.impact === "critical")
        .map((v) => ({id: v.id, impact: v.impact, help: v.help, where: v.nodes.slice(0, 4).map((n) => n.target)}));
}"""
HUB_POSITION = """(el) => {
    const net = el.network;
    const ids = net.body.data.nodes.getIds().filter((i) => net.body.data.nodes.get(i).ptype === "Entity");
    let best = ids[0];
    for (const i of ids) if (net.getConnectedNodes(i).length > net.getConnectedNodes(best).length) best = i;
    // From the view's centre and scale (canvasToDOM lags behind an animated zoom).
    const at = net.getPosition(best), view = net.getViewPosition(), scale = net.getScale();
    const box = el.querySelector(".canvas").getBoundingClientRect();
    const x = box.left + box.width / 2 + (at.x - view.x) * scale;
    const y = box.top + box.height / 2 + (at.y - view.y) * scale;
    return {id: best, x, y, label: net.body.data.nodes.get(best).label};
}"""


def test_write_browse_graph_and_chat_in_a_real_browser(browser_page, app_url: str, axe_script: Path) -> None:
    with _pictured_on_failure(browser_page, "write-browse-chat"):
        _write_browse_graph_and_chat(browser_page, app_url, axe_script)


def test_demo_persona_walks_every_page(browser_page, app_url: str, axe_script: Path) -> None:
    """The demo journal, loaded from the Home page; every page checked; the README's screenshots come from here."""
    with _pictured_on_failure(browser_page, "demo"):
        _demo_persona(browser_page, app_url, axe_script)


def _check_accessibility(page, axe_script: Path, where: str) -> None:
    """axe-core on the page as it is now: no serious or critical violation."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(axe_script))
    violations = page.evaluate(AXE_RUN)
    assert violations == [], f"{where}: accessibility violations {violations}"


def _graph(page):
    """The clickable graph, once its layout has settled."""
    from playwright.sync_api import expect

    graph = page.locator(".persona-graph")
    expect(graph).to_have_attribute("data-settled", "true", timeout=2 * WAIT_MS)
    return graph


def _click_hub(page) -> str:
    """Click the most connected entity in the graph; its details open beside the graph. Returns its name."""
    from playwright.sync_api import expect

    graph = _graph(page)
    hub = graph.evaluate(HUB_POSITION)
    page.mouse.move(hub["x"], hub["y"])
    expect(graph).to_have_attribute("data-hovered", hub["id"])  # hover highlights its neighbourhood
    page.mouse.click(hub["x"], hub["y"])
    expect(graph).to_have_attribute("data-selected", hub["id"])
    # The details panel beside the graph: the node's name, and its links (only the panel writes "MENTIONS").
    expect(page.get_by_test_id("stMarkdown").get_by_text(hub["label"], exact=True).first).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text("MENTIONS", exact=False).first).to_be_visible()
    return hub["label"]


def _double_click_hub(page) -> dict:
    """Double-click the hub to add its neighbours, and see it said. The details panel that the hub's click opened can
    still be settling the page when the double-click comes (once in a full CI run, the double-click selected the hub
    again and added nothing), so a double-click with no "Expanded" after half the wait is made once more, at the
    hub's position as it is then. Returns the hub."""
    from playwright.sync_api import expect

    expanded = page.get_by_text("Expanded 1 node", exact=False).first
    hub = _graph(page).evaluate(HUB_POSITION)
    page.mouse.dblclick(hub["x"], hub["y"])
    try:
        expect(expanded).to_be_visible(timeout=WAIT_MS // 2)
    except AssertionError:  # once more, where the hub is now
        hub = _graph(page).evaluate(HUB_POSITION)
        page.mouse.dblclick(hub["x"], hub["y"])
        expect(expanded).to_be_visible(timeout=WAIT_MS)
    return hub


def _write_browse_graph_and_chat(page, app_url: str, axe_script: Path) -> None:
    from playwright.sync_api import expect

    page.set_default_timeout(WAIT_MS)
    page.goto(app_url)
    expect(page.get_by_role("heading", name="Home", exact=True).first).to_be_visible(timeout=WAIT_MS)
    shots = {"home-empty": _shot(page, "home-empty")}
    _check_accessibility(page, axe_script, "home (empty)")

    # Journal: write an entry; the extracted memories appear as cards.
    _open(page, "Journal")
    page.get_by_label("What happened?").fill(ENTRY)
    page.get_by_role("button", name="Save entry").click()
    expect(page.get_by_text("Extracted memories")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text("Sarah").first).to_be_visible()
    shots["journal"] = _shot(page, "journal")
    _check_accessibility(page, axe_script, "journal")

    # Timeline: the episode is there, and the hostile markup is shown as the text it is.
    _open(page, "Timeline")
    expect(page.get_by_text("Long walk by the river").first).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".vega-embed canvas, .vega-embed svg").first).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text("<script>alert(1)</script>", exact=False).first).to_be_visible()
    expect(page.get_by_text("<img src=x onerror=alert(1)>", exact=False).first).to_be_visible()
    page.get_by_text("Entry text").first.click()
    expect(page.get_by_test_id("stText").filter(has_text="onerror=alert(1)").first).to_be_visible()
    shots["timeline"] = _shot(page, "timeline")
    _check_accessibility(page, axe_script, "timeline")

    # Graph: click a node and see its details; the hostile label is drawn as text (no dialog).
    _open(page, "Graph")
    expect(page.locator(".persona-graph .legend")).to_contain_text("Episode")
    _click_hub(page)
    shots["graph"] = _shot(page, "graph")
    _check_accessibility(page, axe_script, "graph")

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
    _check_accessibility(page, axe_script, "chat")

    # Show the sources in the graph: the page switches and highlights them.
    answer.get_by_role("button", name="Show in graph").click()
    expect(page.get_by_text("Highlighting the", exact=False)).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".persona-graph .legend")).to_contain_text("source of the last chat")
    shots["graph-highlight"] = _shot(page, "graph-highlight")

    for title in ("Memories", "Settings"):
        _open(page, title)
        shots[title.lower()] = _shot(page, title.lower())
        _check_accessibility(page, axe_script, title)

    _assert_quiet(page)
    print(f"\nscreenshots: {', '.join(str(p) for p in shots.values())}")


def _demo_persona(page, app_url: str, axe_script: Path) -> None:
    from playwright.sync_api import expect

    page.set_default_timeout(WAIT_MS)
    page.goto(app_url)
    expect(page.get_by_role("heading", name="Home", exact=True).first).to_be_visible(timeout=WAIT_MS)
    page.get_by_role("button", name="Load the demo persona").first.click()
    expect(page.get_by_text("Loaded the demo persona", exact=False)).to_be_visible(timeout=2 * WAIT_MS)
    expect(page.get_by_role("heading", name="Active goals").first).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".vega-embed canvas, .vega-embed svg").first).to_be_visible(timeout=WAIT_MS)
    shots = {"home": _shot(page, "home-demo")}
    _check_accessibility(page, axe_script, "home (demo)")

    _open(page, "Timeline")
    expect(page.get_by_role("heading", name="August 2026").first).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".vega-embed canvas, .vega-embed svg").first).to_be_visible(timeout=WAIT_MS)
    shots["timeline"] = _shot(page, "timeline-demo")
    _check_accessibility(page, axe_script, "timeline (demo)")

    # Graph: click the hub, double-click it to add its neighbours, find a node by name (zooms to it).
    _open(page, "Graph")
    name = _click_hub(page)
    hub = _double_click_hub(page)
    graph = _graph(page)
    graph.get_by_label("Find").fill(name)
    graph.get_by_label("Find").press("Enter")
    expect(graph).to_have_attribute("data-zoomed", hub["id"])
    shots["graph"] = _shot(page, "graph-demo")
    _check_accessibility(page, axe_script, "graph (demo)")

    # Chat: ask, then follow up; open the sources in the graph.
    _open(page, "Chat")
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(f"What did I do with {name}?")
    box.press("Enter")
    expect(page.get_by_text("Offline answer", exact=False).first).to_be_visible(timeout=WAIT_MS)
    answer = page.get_by_test_id("stChatMessage").last
    expect(answer.get_by_text("Sources", exact=False).first).to_be_visible(timeout=WAIT_MS)
    shots["chat"] = _shot(page, "chat-demo")
    _check_accessibility(page, axe_script, "chat (demo)")
    answer.get_by_role("button", name="Show in graph").click()
    expect(page.get_by_text("Highlighting the", exact=False)).to_be_visible(timeout=WAIT_MS)
    _graph(page)

    for title in ("Journal", "Memories", "Settings"):
        _open(page, title)
        shots[title.lower()] = _shot(page, f"{title.lower()}-demo")
        _check_accessibility(page, axe_script, f"{title} (demo)")

    _assert_quiet(page)
    print(f"\nscreenshots: {', '.join(str(p) for p in shots.values())}")
    if _flag("PERSONA_UPDATE_SCREENSHOTS"):
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        for name in ("home", "graph", "timeline", "chat"):  # the README's four
            shutil.copyfile(shots[name], DOCS_SHOTS / f"{name}.png")
        print(f"updated {DOCS_SHOTS}")


def _assert_quiet(page) -> None:
    """No dialog opened (no script from an entry ran) and nothing was fetched from outside 127.0.0.1."""
    assert page.dialogs == [], f"a dialog opened: {page.dialogs}"
    assert page.outside == [], f"requests left 127.0.0.1: {page.outside[:5]}"
