"""The bundled demo persona: a synthetic three-month journal, loadable offline in seconds."""

from __future__ import annotations

from importlib import resources

from persona.importers import parse_markdown
from persona.ingest import IngestResult, ProgressCallback, ingest_many
from persona.llm.base import Provider
from persona.store.base import Store

DEMO_FILE = "demo_journal.md"


def demo_journal() -> str:
    """The demo journal's markdown text (shipped inside the package)."""
    return resources.files("persona.data").joinpath(DEMO_FILE).read_text(encoding="utf-8")


def load_demo(
    store: Store, provider: Provider, user_id: str = "demo", *, on_progress: ProgressCallback | None = None
) -> list[IngestResult]:
    """Ingest the demo journal into ``user_id`` (entries already there are skipped: loading twice is harmless)."""
    items = parse_markdown(demo_journal())
    store.ensure_user(user_id, display_name="Demo persona")
    return ingest_many(
        store, provider, user_id, [(i.text, i.occurred_at) for i in items], source="demo", on_progress=on_progress
    )
