"""The layering rules, checked on the source: what each part of Persona may import."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    """Every module a file imports (absolute names, top-level and inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def _offenders(files: list[Path], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    bad = {}
    for path in files:
        hits = sorted(m for m in _imports(path) if m.split(".")[0] in forbidden or m.startswith(forbidden))
        if hits:
            bad[str(path.relative_to(ROOT))] = hits
    return bad


def test_the_store_does_not_import_the_providers():
    assert _offenders(sorted((ROOT / "persona" / "store").glob("*.py")), ("persona.llm",)) == {}


def test_only_the_store_imports_database_drivers():
    """Driver errors are translated inside ``persona/store``: nothing else needs sqlite3 or neo4j."""
    outside = [p for p in (ROOT / "persona").rglob("*.py") if "store" not in p.relative_to(ROOT / "persona").parts]
    outside += [ROOT / "app.py", ROOT / "app_support.py", *sorted((ROOT / "pages").glob("*.py"))]
    assert _offenders(outside, ("sqlite3", "neo4j")) == {}


def _store_calls(path: Path) -> list[str]:
    """``store.<method>`` uses in a file (the pages receive the store only to hand it to persona functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return sorted(
        f"{path.name}:{node.lineno} store.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "store"
    )


def test_pages_call_persona_never_the_store():
    pages = [*sorted((ROOT / "pages").glob("*.py")), ROOT / "app.py"]
    assert _offenders(pages, ("persona.store",)) == {}
    # app_support (the pages' shared widgets) may name the Store type, but calls persona for what it does.
    assert [call for page in [*pages, ROOT / "app_support.py"] for call in _store_calls(page)] == []
