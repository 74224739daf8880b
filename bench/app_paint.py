"""Time to first paint of the app and of each page, with the demo persona loaded (SQLite store, offline provider).

Two views of the same question:
- AppTest: the script run of each page (``AppTest.from_file("app.py")`` then ``switch_page``), cold and warm.
- Browser: ``streamlit run app.py`` driven by Playwright with the system Chromium; for each page the time from
  navigation to its heading being visible (cold = the first load of the app, warm = each page opened once more
  through the sidebar), and on the Graph page the time until the network reports a stable, stopped layout.

Usage: .venv/bin/python bench/app_paint.py [--runs 3] [--no-browser]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, markdown_table

from tests.app_server import CHROMIUM_ARGS, running_app

PAGES = ["Home", "Journal", "Timeline", "Graph", "Chat", "Memories", "Settings"]


def demo_home() -> Path:
    """A fresh PERSONA_HOME holding the demo persona."""
    home = Path(tempfile.mkdtemp(prefix="persona-paint-"))
    env = os.environ | {"PERSONA_HOME": str(home), "PERSONA_STORE": "sqlite", "PERSONA_PROVIDER": "offline"}
    subprocess.run([str(Path(sys.executable).with_name("persona")), "demo"], env=env, check=True, capture_output=True)
    return home


def page_paths() -> dict[str, str]:
    """Page title -> script path, as app.py registers them (pages missing from this checkout are skipped)."""
    candidates = {title: f"pages/{title.lower()}.py" for title in PAGES}
    return {title: path for title, path in candidates.items() if (ROOT / path).exists()}


def apptest_times(home: Path, runs: int) -> list[dict[str, object]]:
    """Seconds for each page's script run: the first (cold: caches empty) and the median of the next ``runs``."""
    from streamlit.testing.v1 import AppTest

    os.environ.update({"PERSONA_HOME": str(home), "PERSONA_STORE": "sqlite", "PERSONA_PROVIDER": "offline"})
    os.environ["PERSONA_USER"] = "demo"
    rows = []
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    began = time.perf_counter()
    at.run()
    rows.append({"view": "AppTest", "page": "app (default page)", "cold s": round(time.perf_counter() - began, 3)})
    for title, path in page_paths().items():
        times = []
        for _ in range(runs + 1):
            at.switch_page(path)
            began = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - began)
            assert not at.exception, f"{title}: {at.exception}"
        rows.append({"view": "AppTest", "page": title, "cold s": round(times[0], 3)})
        rows[-1]["warm s (median)"] = round(statistics.median(times[1:]), 3)
    return rows


def browser_times(home: Path, runs: int) -> list[dict[str, object]]:
    """Seconds from navigation to each page's heading in Chromium; the graph's time to a stopped layout."""
    from playwright.sync_api import expect, sync_playwright

    rows: list[dict[str, object]] = []
    with running_app(home, watch_files=True) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        began = time.perf_counter()
        page.goto(url)
        page.get_by_role("heading").first.wait_for(timeout=60_000)
        paint = page.evaluate("performance.getEntriesByName('first-contentful-paint')[0]?.startTime || 0")
        rows.append(
            {
                "view": "browser",
                "page": "app (cold: first load)",
                "cold s": round(time.perf_counter() - began, 3),
                "first contentful paint s": round(paint / 1000, 3),
            }
        )
        for title in page_paths():
            times = []
            for _ in range(runs + 1):
                began = time.perf_counter()
                page.get_by_role("link", name=title).first.click()
                expect(page.get_by_role("heading", name=title, exact=True).first).to_be_visible(timeout=60_000)
                page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
                times.append(time.perf_counter() - began)
                if title == "Graph":
                    rows.append(_graph_settle(page, began))
                if title != PAGES[0]:
                    page.get_by_role("link", name=PAGES[1]).first.click()
                    page.wait_for_timeout(300)
            rows.append({"view": "browser", "page": title, "cold s": round(times[0], 3)})
            rows[-1]["warm s (median)"] = round(statistics.median(times[1:]), 3)
        browser.close()
    return [r for r in rows if r]


SETTLED_JS = """() => {
    // The old page drew the graph in an iframe; the component draws it in a shadow root.
    const frames = [...document.querySelectorAll('iframe')].map(f => f.contentDocument).filter(Boolean);
    const shadows = [...document.querySelectorAll('*')].map(e => e.shadowRoot).filter(Boolean);
    const docs = [document, ...frames, ...shadows];
    for (const doc of docs) {
        const el = doc.querySelector("[data-settled='true']");
        if (el) return {ms: el.getAttribute('data-settle-ms'), nodes: el.getAttribute('data-node-count')};
    }
    return null;
}"""


def _graph_settle(page, began: float) -> dict[str, object]:
    """Seconds from opening the Graph page to a stopped layout (and the layout's own figure when it reports one)."""
    handle = page.wait_for_function(SETTLED_JS, timeout=60_000)
    elapsed = time.perf_counter() - began
    found = handle.json_value()
    nodes = found.get("nodes")
    return {
        "view": "browser",
        "page": f"Graph: click to stable layout ({nodes or '?'} nodes; layout alone {found.get('ms') or '?'} ms)",
        "cold s": round(elapsed, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    home = demo_home()
    rows = apptest_times(home, args.runs)
    if not args.no_browser:
        rows += browser_times(home, args.runs)
    keys = ["view", "page", "cold s", "warm s (median)", "first contentful paint s"]
    print(markdown_table([{k: row.get(k, "") for k in keys} for row in rows]))


if __name__ == "__main__":
    main()
