"""docker compose cannot run here (no Docker engine): check that the file parses and names what the app reads."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from persona.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_neo4j_service_is_pinned_healthchecked_and_has_no_default_password():
    neo4j = _compose()["services"]["neo4j"]
    assert neo4j["image"] == "neo4j:5.26-community"
    assert "healthcheck" in neo4j and "RETURN 1" in " ".join(neo4j["healthcheck"]["test"])
    auth = neo4j["environment"]["NEO4J_AUTH"]
    assert re.fullmatch(r"neo4j/\$\{NEO4J_PASSWORD:\?[^}]+\}", auth), "the password must come from .env, no default"
    assert all(p.startswith("127.0.0.1:") for p in neo4j["ports"])


def test_app_service_reads_settings_the_app_knows():
    app = _compose()["services"]["app"]
    assert app["build"] == "." and (ROOT / "Dockerfile").exists()
    assert app["depends_on"]["neo4j"]["condition"] == "service_healthy"
    known = {name.upper() for name in Settings.model_fields}
    assert set(app["environment"]) <= known, set(app["environment"]) - known
    assert app["environment"]["PERSONA_STORE"] == "neo4j"
    assert app["environment"]["NEO4J_URI"].startswith("bolt://neo4j:")


def test_env_example_holds_no_secret_and_env_is_ignored():
    example = (ROOT / ".env.example").read_text()
    assert re.search(r"^NEO4J_PASSWORD=$", example, re.MULTILINE)
    assert ".env" in (ROOT / ".gitignore").read_text().split()
