"""Settings from the environment or a ``.env`` file (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything Persona reads from its environment. Unset means: embedded store, offline provider."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    persona_home: Path = Field(default=Path("~/.persona"), description="data folder; the SQLite file lives here")
    persona_store: Literal["sqlite", "neo4j"] = "sqlite"
    persona_provider: Literal["auto", "offline", "openai"] = Field(
        default="auto", description="auto: OpenAI-compatible when OPENAI_API_KEY or OPENAI_BASE_URL is set"
    )
    persona_user: str = Field(default="demo", description="the user the app opens with")
    persona_embedder: Literal["neural", "hash"] = Field(
        default="neural",
        description="offline embedder: neural (a local sentence model, understands paraphrase) or hash (tiny, "
        "words and spellings only; for the test suite and machines that cannot run the model)",
    )

    neo4j_uri: str = "bolt://127.0.0.1:7687"
    neo4j_user: str = "neo4j"
    neo4j_password: SecretStr | None = None
    neo4j_database: str = "neo4j"
    neo4j_warm_up: bool = Field(
        default=True,
        description="the app and the API warm a fresh Neo4j server in the background when they open the store "
        "(persona.warmup); the test suite turns it off",
    )

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_chat_model: str = "gpt-4o-mini"
    openai_embedding_model: str = "text-embedding-3-small"
    openai_embedding_dimensions: int | None = None
    openai_timeout: float = 60.0
    openai_max_retries: int = 2

    persona_api_token: SecretStr | None = None
    persona_api_allow_no_auth: bool = False

    @property
    def home(self) -> Path:
        """The data folder, expanded and created on demand by whoever writes into it."""
        return self.persona_home.expanduser()

    @property
    def sqlite_path(self) -> Path:
        return self.home / "persona.sqlite3"

    @property
    def use_openai(self) -> bool:
        """True when the OpenAI-compatible provider is chosen, explicitly or by a key or base URL being set."""
        if self.persona_provider == "auto":
            return bool(self.openai_api_key or self.openai_base_url)
        return self.persona_provider == "openai"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
