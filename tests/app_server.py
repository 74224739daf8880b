"""The real app, started as a user starts it (``streamlit run app.py``) on a free loopback port, for the browser
tests, the rebinding test and the paint benchmark: one way to start it, wait for it and stop it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

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
"""Chromium without a sandbox (containers have none), a GPU, or any call home of its own."""


class AppDidNotStart(RuntimeError):
    """The app exited or did not answer its health check in time; the message ends with its log."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_app(
    home: Path,
    *,
    port: int | None = None,
    user: str | None = "demo",
    bind_loopback: bool = True,
    watch_files: bool = False,
    timeout: float = 60.0,
) -> Iterator[str]:
    """Run the app on the SQLite store and the offline provider with ``home`` as its data folder; yield its URL.

    ``bind_loopback=False`` leaves out the ``--server.address`` flag, so the project's config decides where it binds
    (what the rebinding test checks). Without ``watch_files`` other work on the checkout cannot reload modules under
    the running app. The app is stopped on leaving, killed if it does not stop in 15 s."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env |= {"PERSONA_HOME": str(home), "PERSONA_STORE": "sqlite", "PERSONA_PROVIDER": "offline"}
    if user:
        env["PERSONA_USER"] = user
    streamlit = Path(sys.executable).with_name("streamlit")
    command = [str(streamlit)] if streamlit.exists() else [sys.executable, "-m", "streamlit"]
    command += ["run", "app.py", "--server.port", str(port)]
    if bind_loopback:
        command += ["--server.address", "127.0.0.1"]
    command += ["--server.headless", "true", "--browser.gatherUsageStats", "false"]
    if not watch_files:
        command += ["--server.fileWatcherType", "none"]
    log = home / "streamlit.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log, timeout)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AppDidNotStart(f"streamlit exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise AppDidNotStart(
        f"streamlit did not answer on {url}/_stcore/health in {timeout:.0f} s:\n{log.read_text()[-3000:]}"
    )
