"""A real Neo4j server for tests and benchmarks: Neo4j Community from Maven jars, started by scripts/neo4j/neo4j
on a free loopback port (or the server named by ``PERSONA_TEST_NEO4J_URI``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NEO4J_SCRIPT = ROOT / "scripts" / "neo4j" / "neo4j"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Neo4jServer:
    """A Neo4j server for this test session: its bolt URI, how long it took to start, and how to stop it."""

    def __init__(self) -> None:
        self.uri: str | None = os.environ.get("PERSONA_TEST_NEO4J_URI")
        self.error: str | None = None
        self.start_seconds: float | None = None
        self.home: Path | None = None
        self._env: dict[str, str] = {}
        if self.uri is None:
            self._start()

    def _start(self) -> None:
        if not NEO4J_SCRIPT.exists():
            self.error = f"{NEO4J_SCRIPT} is missing"
            return
        if shutil.which("java") is None or shutil.which("mvn") is None:
            self.error = "java or mvn is not on PATH, so Neo4j cannot be fetched and started"
            return
        port = _free_port()
        self.home = ROOT / ".neo4j" / f"test-{port}"
        self._env = os.environ | {"NEO4J_HOME_DIR": str(self.home), "NEO4J_BOLT_PORT": str(port)}
        self._env.pop("NEO4J_PASSWORD", None)
        began = time.monotonic()
        result = subprocess.run(
            [str(NEO4J_SCRIPT), "start"], env=self._env, capture_output=True, text=True, timeout=600, check=False
        )
        if result.returncode != 0:
            self.error = f"scripts/neo4j/neo4j start failed: {(result.stdout + result.stderr)[-2000:]}"
            return
        self.start_seconds = time.monotonic() - began
        self.uri = f"bolt://127.0.0.1:{port}"

    def stop(self) -> None:
        if self.home is not None and self._env:
            subprocess.run([str(NEO4J_SCRIPT), "stop"], env=self._env, capture_output=True, timeout=120, check=False)
            shutil.rmtree(self.home, ignore_errors=True)
