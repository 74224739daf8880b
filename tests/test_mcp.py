"""``persona mcp`` through the official MCP SDK's own client over stdio: the server runs as an assistant would start
it (a subprocess of ``persona mcp --user ID``, a fresh PERSONA_HOME, offline), and every tool and resource is called.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from persona.ingest import ingest_entry
from persona.llm.offline import OfflineProvider
from persona.models import NodeType
from persona.store.sqlite import SqliteStore
from tests.factories import day

TOOLS = {"add_entry", "search_memories", "read_timeline", "get_user_context", "ask", "what_happened"}


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PERSONA_", "NEO4J_"))}
    return env | {"PERSONA_HOME": str(home), "PERSONA_PROVIDER": "offline", "PERSONA_STORE": "sqlite"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PERSONA_HOME where Maya and Bob each have a journal (Bob's holds a word Maya's never does)."""
    folder = tmp_path_factory.mktemp("persona-mcp")
    provider = OfflineProvider()
    with SqliteStore(folder / "persona.sqlite3", embedder=provider.embedder.info) as store:
        maya = [
            (0, "Went hiking with Sarah in Sintra. The fog lifted at noon."),
            (4, "Started reading a book about bees. I value patience. I want to finish the garden plan by Friday."),
            (40, "Dinner with Tom in Porto. We talked about the garden."),
        ]
        for offset, text in maya:
            ingest_entry(store, provider, "maya", text, occurred_at=day(offset))
        ingest_entry(store, provider, "bob", "My secret xylophone recital in Zurich went well.", occurred_at=day(2))
    return folder


@asynccontextmanager
async def connected(home: Path, user: str) -> AsyncIterator[ClientSession]:
    """An MCP client session with ``persona mcp --user USER`` started over stdio."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "persona.cli", "mcp", "--user", user], env=_env(home), cwd=str(home)
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def run(home: Path, scenario: Callable[[ClientSession], Awaitable[Any]], user: str = "maya") -> Any:
    async def main() -> Any:
        async with connected(home, user) as session:
            return await scenario(session)

    return asyncio.run(asyncio.wait_for(main(), timeout=120))


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    """A tool's structured result; fails the test when the call is an error."""
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result.structured_content


async def error(session: ClientSession, tool: str, **arguments: Any) -> str:
    """The message of a tool call that must fail."""
    result = await session.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return " ".join(getattr(part, "text", "") for part in result.content)


def test_tools_and_resources_are_listed(home):
    async def scenario(session: ClientSession):
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        resources = {str(r.uri) for r in (await session.list_resources()).resources}
        return tools, resources

    tools, resources = run(home, scenario)
    assert set(tools) == TOOLS
    assert all(tool.description for tool in tools.values())
    search = tools["search_memories"].input_schema["properties"]
    assert {"query", "types", "since", "until", "as_of", "limit"} <= set(search)
    assert tools["add_entry"].input_schema["required"] == ["text"]
    assert resources == {"persona://goals/active", "persona://context"}


def test_each_tool_and_resource(home):
    async def scenario(session: ClientSession):
        out = {
            "search": await call(session, "search_memories", query="hiking in Sintra"),
            "goals_only": await call(session, "search_memories", query="garden", types=["goal"]),
            "april": await call(session, "search_memories", query="garden", since="2024-04-01"),
            "as_of": await call(session, "search_memories", query="garden", as_of="2024-03-20"),
            "timeline": await call(session, "read_timeline"),
            "march": await call(session, "read_timeline", until="2024-03-31"),
            "context": await call(session, "get_user_context"),
            "ask": await call(session, "ask", question="Who did I go hiking with?"),
            "added": await call(session, "add_entry", text="Swam at Cascais with Ana.", occurred_at="2024-05-01"),
        }
        out["after"] = await call(session, "search_memories", query="Cascais Ana")
        out["goals"] = json.loads((await session.read_resource("persona://goals/active")).contents[0].text)
        out["ctx"] = json.loads((await session.read_resource("persona://context")).contents[0].text)
        return out

    out = run(home, scenario)
    first = out["search"]["results"][0]
    assert (
        "Sintra" in first["text"] and first["date"].startswith("2024-03-01") and first["reason"] and first["rank"] == 1
    )
    assert out["goals_only"]["results"] and {r["type"] for r in out["goals_only"]["results"]} == {"Goal"}
    assert all(r["date"] >= "2024-04-01" for r in out["april"]["results"] if r["date"])
    assert out["as_of"]["results"] and all(
        r["date"] <= "2024-03-20T23:59:59.999999+00:00" for r in out["as_of"]["results"] if r["date"]
    )
    dates = [e["date"] for e in out["timeline"]["episodes"]]
    assert len(dates) == 3 and dates == sorted(dates)
    assert [e["date"][:7] for e in out["march"]["episodes"]] == ["2024-03", "2024-03"]
    assert any("patience" in p["text"] for p in out["context"]["psyche"])
    assert any("garden plan" in g["text"] for g in out["context"]["active_goals"])
    assert out["ask"]["offline"] is True and "Sarah" in out["ask"]["answer"] and out["ask"]["cited_ids"]
    assert out["added"]["status"] == "done" and out["added"]["occurred_at"].startswith("2024-05-01")
    assert any(r["text"].startswith("Swam at Cascais") for r in out["after"]["results"])
    assert out["goals"]["user_id"] == "maya" and all(g["status"] == "active" for g in out["goals"]["active_goals"])
    assert out["ctx"]["user_id"] == "maya" and out["ctx"]["recent_episodes"][0]["date"].startswith("2024-05-01")


def test_bad_arguments_give_clear_errors(home):
    async def scenario(session: ClientSession):
        return [
            await error(session, "add_entry", text="   "),
            await error(session, "add_entry", text="A day.", occurred_at="next Tuesday"),
            await error(session, "search_memories", query="x", types=["Dream"]),
            await error(session, "search_memories", query=""),
            await error(session, "search_memories", query=42),
            await error(session, "search_memories", query="x", limit=0),
            await error(session, "read_timeline", since="2024-13-45"),
            await error(session, "no_such_tool"),
        ]

    messages = run(home, scenario)
    assert "empty" in messages[0]
    assert "occurred_at" in messages[1] and "YYYY-MM-DD" in messages[1]
    assert "unknown memory type 'Dream'" in messages[2]
    assert "empty" in messages[3]
    assert "query" in messages[4] and "string" in messages[4]
    assert "limit" in messages[5]
    assert "since" in messages[6]
    assert "no_such_tool" in messages[7]
    assert not any("Traceback" in m or "/persona/" in m for m in messages)


def test_one_user_cannot_reach_another(home):
    async def scenario(session: ClientSession):
        return {
            "search": await call(session, "search_memories", query="xylophone recital Zurich"),
            "ask": await call(session, "ask", question="How did the xylophone recital go?"),
            "refused": [
                await error(session, "search_memories", query="xylophone", user_id="bob"),
                await error(session, "add_entry", text="Planted by an assistant.", user_id="bob"),
                await error(session, "get_user_context", user_id="bob"),
                await error(session, "read_timeline", user_id="bob"),
                await error(session, "ask", question="xylophone?", user_id="bob"),
            ],
            "own": await call(session, "get_user_context", user_id="maya"),
        }

    out = run(home, scenario)
    assert not any("xylophone" in r["text"] for r in out["search"]["results"])
    assert "xylophone" not in out["ask"]["answer"].lower()
    assert all("serves only user 'maya'" in message for message in out["refused"])
    assert out["own"]["user_id"] == "maya"
    with SqliteStore(home / "persona.sqlite3", embedder=OfflineProvider().embedder.info) as store:
        assert len(store.list_nodes("bob", NodeType.ENTRY)) == 1  # nothing was written for Bob


def test_an_unknown_user_is_refused_before_serving(home):
    result = subprocess.run(
        [sys.executable, "-m", "persona.cli", "mcp", "--user", "nobody"],
        env=_env(home),
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and result.stderr.startswith("error: no user 'nobody'") and result.stdout == ""


def test_what_happened_tells_a_thread_of_the_servers_user_only(home):
    async def scenario(session: ClientSession):
        return {
            "sarah": await call(session, "what_happened", about="Sarah"),
            "bobs": await error(session, "what_happened", about="xylophone recital"),
            "empty": await error(session, "what_happened", about=" "),
        }

    out = run(home, scenario)
    assert out["sarah"]["subject"]["title"] == "Sarah" and out["sarah"]["subject"]["type"] == "Entity"
    assert [e["occurred_at"][:10] for e in out["sarah"]["entries"]] == ["2024-03-01"]
    assert "Sintra" in out["sarah"]["entries"][0]["text"] and "[" in out["sarah"]["text"]
    assert "nothing in your memories" in out["bobs"]  # Bob's recital is not Maya's
    assert "empty" in out["empty"]
