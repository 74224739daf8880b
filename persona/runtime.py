"""Building the clients (store, provider) from settings, in one place for the app, the CLI and the API."""

from __future__ import annotations

from persona.config import Settings, get_settings
from persona.llm.base import Provider
from persona.store.base import Store


def make_provider(settings: Settings | None = None) -> Provider:
    """The OpenAI-compatible provider when a key or base URL is configured, else the offline one."""
    settings = settings or get_settings()
    if settings.use_openai:
        from persona.llm.openai_provider import OpenAIProvider

        return OpenAIProvider.from_settings(settings)
    from persona.llm.offline import OfflineProvider, default_offline_embedder

    return OfflineProvider(embedder=default_offline_embedder(settings))


def open_store(provider: Provider, settings: Settings | None = None, *, warm_up: bool = False) -> Store:
    """The configured store, bound to the provider's embedder. Raises ``StoreUnavailableError`` when unreachable.

    A store whose vectors come from another embedder opens all the same, with vector search off until
    ``persona.reembed`` has run (``persona.reembed.vector_search_notice`` says so).

    ``warm_up`` (the app and the API, which open their store once per process): a Neo4j server is warmed in the
    background so a person's first import does not pay for its cold start (``persona.warmup``; ``NEO4J_WARM_UP``
    turns it off). The thread is ``store.warming``."""
    settings = settings or get_settings()
    if settings.persona_store == "neo4j":
        from persona.store.neo4j import Neo4jStore

        password = settings.neo4j_password.get_secret_value() if settings.neo4j_password else None
        auth = (settings.neo4j_user, password) if password else None
        store = Neo4jStore(
            settings.neo4j_uri,
            auth=auth,
            embedder=provider.embedder.info,
            database=settings.neo4j_database,
            accept_other_embedder=True,
        )
        # A store waiting for its re-embed keeps an index of the old vectors' dimension, which the warm-up's are not.
        if warm_up and settings.neo4j_warm_up and store.stale_embedder is None:
            from persona.warmup import start_warm_up

            store.warming = start_warm_up(store)
        return store
    from persona.store.sqlite import SqliteStore

    # A store from another embedder opens with vector search off (store.stale_embedder), so the user can re-embed it.
    return SqliteStore(settings.sqlite_path, embedder=provider.embedder.info, accept_other_embedder=True)
