"""The ``persona`` command: import, export, the demo persona, retries, stats and the evaluation."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from persona.access import require_user
from persona.config import get_settings
from persona.errors import PersonaError, ProviderError
from persona.ingest import IngestResult, ingest_many, retry_failed
from persona.llm.base import Provider
from persona.store.base import Store

if TYPE_CHECKING:
    from persona.chat import Answer

USER_OPTION = click.option("--user", "-u", "user_id", default=None, help="the persona (user id); default PERSONA_USER")


def _clients() -> tuple[Store, Provider]:
    from persona.runtime import make_provider, open_store

    provider = make_provider()
    store = open_store(provider)
    if store.backup_path is not None:
        click.echo(f"The store was brought up to date; a copy of it as it was is at {store.backup_path}", err=True)
    if store.stale_embedder is not None:
        from persona.reembed import vector_search_notice

        click.echo(vector_search_notice(store), err=True)
    return store, provider


def _user(user_id: str | None) -> str:
    return user_id or get_settings().persona_user


@click.group()
@click.version_option(package_name="persona")
def cli() -> None:
    """Persona: your journal as a memory graph you can browse, walk and chat with."""


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--user",
    "-u",
    "user_id",
    default=None,
    help="the persona (user id); default PERSONA_USER, or for a Persona export the user it was exported from",
)
@click.option(
    "--on-conflict",
    type=click.Choice(["refuse", "keep-mine", "replace", "keep-both"]),
    default="refuse",
    show_default=True,
    help="restoring an export: what to do with entries you changed since the backup",
)
def import_command(file: Path, user_id: str | None, on_conflict: str) -> None:
    """Import a journal: markdown/text with date headings, JSON Lines, Day One JSON, or a Persona export."""
    from persona.importers import detect_and_parse
    from persona.transfer import restore_export

    parsed = detect_and_parse(file.name, file.read_bytes())
    store, provider = _clients()
    with store:
        if isinstance(parsed, dict):
            with click.progressbar(length=1, label="Restoring export") as bar:
                report = restore_export(
                    store,
                    provider.embedder,
                    parsed,
                    user_id=user_id,
                    on_conflict=on_conflict,
                    on_progress=lambda n, total: _set(bar, n, total),
                )
            kept = report.conflicts_kept_mine + report.conflicts_replaced + report.conflicts_kept_both
            click.echo(
                f"restored {report.entries} entries ({report.skipped_duplicates} already there"
                + (f", {kept} changed since the backup: {on_conflict}" if kept else "")
                + f"), {report.nodes} nodes, {report.links} links for {user_id or parsed['user_id']}"
            )
            return
        user = _user(user_id)
        with click.progressbar(length=len(parsed), label=f"Importing {len(parsed)} entries") as bar:
            results = ingest_many(
                store,
                provider,
                user,
                [(i.text, i.occurred_at) for i in parsed],
                source=f"import:{file.name}",
                on_progress=lambda n, total, _r: bar.update(1),
            )
        _summarise(results, user)


def _set(bar, done: int, total: int) -> None:  # type: ignore[no-untyped-def]
    """Move a click progress bar to ``done`` of ``total`` (totals are known only once work starts)."""
    bar.length = total
    bar.update(done - bar.pos)


def _summarise(results: list[IngestResult], user: str) -> None:
    done = sum(r.ok and not r.duplicate for r in results)
    duplicates = sum(r.duplicate for r in results)
    failed = [r for r in results if not r.ok and not r.duplicate]  # a repeat is "already there", not a failure
    click.echo(f"{done} entries ingested, {duplicates} already there, {len(failed)} failed for {user}")
    for result in failed[:10]:
        click.echo(f"  failed {result.entry.occurred_at:%Y-%m-%d}: {result.error}", err=True)
    if failed:
        click.echo(f"run `persona retry --user {user}` when the cause is fixed", err=True)


@cli.command("export")
@USER_OPTION
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None, help="file (default: stdout)"
)
def export_command(user_id: str | None, output: Path | None) -> None:
    """Export a persona's whole graph as JSON (``persona import`` reads it back)."""
    store, _ = _clients()
    with store:
        data = store.export_user(require_user(store, _user(user_id)))
    text = json.dumps(data, ensure_ascii=False, indent=1)
    if output is None:
        click.echo(text)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {len(data['nodes'])} nodes and {len(data['links'])} links to {output}", err=True)


@cli.command("demo")
@click.option("--user", "-u", "user_id", default="demo", show_default=True, help="the persona to load it into")
def demo_command(user_id: str) -> None:
    """Load the bundled demo persona (a synthetic three-month journal), offline, in a few seconds."""
    from persona.demo import load_demo

    store, provider = _clients()
    with store, click.progressbar(length=1, label="Loading the demo persona") as bar:
        results = load_demo(store, provider, user_id, on_progress=lambda n, total, _r: _set(bar, n, total))
    _summarise(results, user_id)


@cli.command("retry")
@USER_OPTION
def retry_command(user_id: str | None) -> None:
    """Process again the entries that failed (or were left pending by a crash)."""
    store, provider = _clients()
    user = _user(user_id)
    with store:
        require_user(store, user)
        with click.progressbar(length=1, label="Retrying") as bar:
            results = retry_failed(store, provider, user, on_progress=lambda n, total, _r: _set(bar, n, total))
    _summarise(results, user)


@cli.command("reembed")
@click.option("--user", "-u", "user_ids", multiple=True, help="only this persona (repeatable); default: every one")
def reembed_command(user_ids: tuple[str, ...]) -> None:
    """Compute every stored vector again with the embedder in use (after the embedder changed). Nothing else in the
    store changes; search by meaning is back once every persona is done."""
    from persona.reembed import reembed

    store, provider = _clients()
    with store, click.progressbar(length=1, label="Re-embedding") as bar:
        result = reembed(
            store, provider.embedder, user_ids=list(user_ids) or None, on_progress=lambda n, total: _set(bar, n, total)
        )
    click.echo(f"re-embedded {result.replaced} memories of {len(result.users)} persona(s) with {store.embedder.name}")
    if result.remaining_users:
        click.echo(
            f"{len(result.remaining_users)} other persona(s) still hold the old vectors "
            f"({', '.join(result.remaining_users[:5])}): run `persona reembed` to finish; search by meaning stays off "
            "until then",
            err=True,
        )


@cli.command("stats")
@USER_OPTION
def stats_command(user_id: str | None) -> None:
    """Counts of entries, memories, entities and links."""
    store, provider = _clients()
    with store:
        counts = store.stats(require_user(store, _user(user_id)))
    click.echo(f"store: {store.description}\nprovider: {provider.describe()}")
    for key, value in counts.items():
        click.echo(f"{key:>10}: {value}")


@cli.group("eval")
def eval_group() -> None:
    """Evaluations."""


@eval_group.command("locomo")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--k", "ks", type=int, multiple=True, default=(1, 3, 5, 10), show_default=True, help="session recall@k")
@click.option("--budget", "budgets", type=int, multiple=True, default=(500, 1000, 2000), show_default=True)
@click.option("--preset", default="default", show_default=True, help="retrieval preset")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def eval_locomo(file: Path, ks: tuple[int, ...], budgets: tuple[int, ...], preset: str, as_json: bool) -> None:
    """Answer recall within a context budget and session recall@k on LoCoMo-format data, with baselines."""
    from persona.evaluation import evaluate_locomo, format_report
    from persona.llm.offline import OfflineProvider

    report = evaluate_locomo(
        file, OfflineProvider(), budgets=budgets, ks=ks, preset=preset, on_progress=lambda m: click.echo(m, err=True)
    )
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))


@eval_group.command("evolution")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--no-embedder", is_flag=True, help="rules and shared words only, without the embedder's similarity")
@click.option("--details", is_flag=True, help="list every missed or wrong change")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def eval_evolution(file: Path, no_embedder: bool, details: bool, as_json: bool) -> None:
    """Precision and recall of goal, belief and alias changes on a labelled set (tests/data/evolution_dev.jsonl)."""
    from persona.evolution_eval import evaluate_evolution, format_evolution_report
    from persona.llm.offline import OfflineProvider

    report = evaluate_evolution(file, embedder=None if no_embedder else OfflineProvider().embedder)
    click.echo(json.dumps(report, indent=2) if as_json else format_evolution_report(report, details=details))


@eval_group.command("paraphrase")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False)
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def eval_paraphrase(file: Path | None, as_json: bool) -> None:
    """hit@1/3/5 of paraphrased questions over the demo persona: the sentence model, the hashing embedder, BM25.

    FILE is JSON lines ``{"question": ..., "gold": [entry dates]}``; default: the set in tests/data."""
    from persona.evaluation import evaluate_paraphrase, format_paraphrase_report
    from persona.llm.embedding import HashEmbedder
    from persona.llm.neural import NeuralEmbedder
    from persona.llm.offline import OfflineProvider

    path = file or Path(__file__).resolve().parent.parent / "tests" / "data" / "paraphrase_demo.jsonl"
    if not path.exists():
        raise click.UsageError(f"no question file at {path}: name one")
    providers = {"neural": OfflineProvider(NeuralEmbedder()), "hash": OfflineProvider(HashEmbedder())}
    report = evaluate_paraphrase(path, providers, presets={"hash": "hashing"})
    click.echo(json.dumps(report, indent=2) if as_json else format_paraphrase_report(report))


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind (loopback unless a token is set)")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="port to listen on")
def serve_command(host: str, port: int) -> None:
    """Serve the HTTP API (docs at /docs). Needs PERSONA_API_TOKEN (or PERSONA_API_ALLOW_NO_AUTH=1: loopback only)."""
    from persona.api import serve

    serve(host=host, port=port)


# -- for a person: search, ask, chat, context, and the MCP server for assistants ----------------------------------
TYPE_OPTION = click.option(
    "--type",
    "-t",
    "types",
    multiple=True,
    help="only this memory type (Episode, Psyche, Goal, Entity, Passage); repeatable",
)
SINCE_OPTION = click.option("--since", default=None, help="happened on or after this date (YYYY-MM-DD)")
UNTIL_OPTION = click.option("--until", default=None, help="happened on or before this date (YYYY-MM-DD)")
AS_OF_OPTION = click.option("--as-of", "as_of", default=None, help="only what had happened by this date (YYYY-MM-DD)")
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="print JSON instead of text")


@cli.command("search")
@click.argument("question")
@USER_OPTION
@TYPE_OPTION
@SINCE_OPTION
@UNTIL_OPTION
@AS_OF_OPTION
@click.option("--limit", "-n", default=10, show_default=True, type=click.IntRange(1, 50), help="results at most")
@JSON_OPTION
def search_command(
    question: str,
    user_id: str | None,
    types: tuple[str, ...],
    since: str | None,
    until: str | None,
    as_of: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Search memories: ranked, with their dates and why each was found."""
    from persona.access import result_dict, search

    store, provider = _clients()
    with store:
        found = search(
            store, provider.embedder, _user(user_id), question,
            types=types, since=since, until=until, as_of=as_of, limit=limit,
        )  # fmt: skip
    rows = [result_dict(result, rank) for rank, result in enumerate(found, start=1)]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    if not rows:
        click.echo("Nothing in your memories matches this question.")
    for row in rows:
        date = (row["date"] or "")[:10] or "undated"
        click.echo(f"{row['rank']:>2}. {date}  {row['type']:<7} {_one_line(row['text'])}")
        click.echo(f"    why: {row['reason']} (score {row['score']:.3f})  id: {row['id']}")


def _one_line(text: str, words: int = 30) -> str:
    parts = text.split()
    return " ".join(parts[:words]) + (" …" if len(parts) > words else "")


@cli.command("ask")
@click.argument("question")
@USER_OPTION
@AS_OF_OPTION
@JSON_OPTION
def ask_command(question: str, user_id: str | None, as_of: str | None, as_json: bool) -> None:
    """Answer a question from your memories, citing them (offline: the best memories, cited)."""
    from persona.access import parse_when

    store, provider = _clients()
    with store:
        user = require_user(store, _user(user_id))
        reply = _answer(store, provider, user, question, as_of=parse_when(as_of, field="as_of", end_of_day=True))
        if as_json:
            click.echo(json.dumps(_answer_dict(reply), ensure_ascii=False, indent=1))
        else:
            _print_answer(reply)


def _answer(store: Store, provider: Provider, user: str, question: str, **options: Any) -> Answer:
    from persona.chat import answer

    return answer(store, provider, user, question, **options)


def _print_answer(reply: Answer) -> None:
    """Stream the answer, then list the memories it cites (or, offline, the ones it shows)."""
    for token in reply:
        click.echo(token, nl=False)
    click.echo()
    if reply.error:
        raise ProviderError(reply.error)
    cited = set(reply.cited_ids)
    sources = [s for s in reply.sources if s.id in cited]
    if sources:
        click.echo("\nSources:")
    for source in sources:
        when = getattr(source.node, "occurred_at", None)
        click.echo(f"  [{source.id}] {f'{when:%Y-%m-%d}' if when else 'undated'} {source.type.value}: {source.reason}")


def _answer_dict(reply: Answer) -> dict[str, Any]:
    from persona.access import result_dict

    text = reply.complete()
    if reply.error:
        raise ProviderError(reply.error)
    cited = set(reply.cited_ids)
    sources = [result_dict(s, rank) for rank, s in enumerate(reply.sources, start=1) if s.id in cited]
    return {"answer": text, "offline": reply.offline, "cited_ids": reply.cited_ids, "sources": sources}


@cli.command("chat")
@USER_OPTION
def chat_command(user_id: str | None) -> None:
    """Talk with your memory: each answer cites its memories and knows the conversation so far.
    An empty line is skipped; `exit`, `quit` or end of input (Ctrl-D) ends it."""
    store, provider = _clients()
    with store:
        user = require_user(store, _user(user_id))
        mode = "offline: answers are the best memories" if provider.offline else provider.describe()
        click.echo(f"Chatting with {user}'s memory ({mode}). `exit` or Ctrl-D to stop.", err=True)
        _line_editing()
        history: list[dict[str, str]] = []
        while (question := _next_question()) is not None:
            reply = _answer(store, provider, user, question, history=history)
            _print_answer(reply)
            history += [{"role": "user", "content": question}, {"role": "assistant", "content": reply.text}]


def _line_editing() -> None:
    """In a terminal, arrow keys recall earlier questions (readline hooks into ``input``); not on Windows."""
    if sys.stdin.isatty():
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401 - importing it is what enables line editing


def _next_question() -> str | None:
    """The next question typed, or None at the end of the conversation."""
    while True:
        try:
            line = click.prompt("you", prompt_suffix="> ", default="", show_default=False, err=True)
        except click.Abort:  # end of input or Ctrl-C
            click.echo(err=True)
            return None
        line = line.strip()
        if line.lower() in ("exit", "quit", "/exit", "/quit"):
            return None
        if line:
            return line


@cli.command("context")
@USER_OPTION
@JSON_OPTION
def context_command(user_id: str | None, as_json: bool) -> None:
    """Who you are now, as your memory knows it: recent psyche, active goals and the latest episodes."""
    from persona.access import user_context

    store, _ = _clients()
    with store:
        context = user_context(store, _user(user_id)).as_dict()
    if as_json:
        click.echo(json.dumps(context, ensure_ascii=False, indent=1))
        return
    sections = [("Psyche", "psyche"), ("Active goals", "active_goals"), ("Recent episodes", "recent_episodes")]
    for title, key in sections:
        click.echo(f"{title}:")
        for item in context[key] or [{"text": "(none yet)", "date": None, "id": ""}]:
            date = (item["date"] or "")[:10]
            label = f"{item.get('kind', '')} " if key == "psyche" else ""
            due = f" (due {item['due']})" if item.get("due") else ""
            click.echo(f"  {date + '  ' if date else ''}{label}{_one_line(item['text'])}{due}")
        click.echo()


@cli.command("thread")
@click.argument("about")
@USER_OPTION
@JSON_OPTION
def thread_command(about: str, user_id: str | None, as_json: bool) -> None:
    """What happened to ABOUT (a person, thing, goal or belief: "Amir", "my thesis"): the entries that mention it,
    oldest first, with the changes each made."""
    from persona.threads import thread_about, thread_dict, thread_text

    store, _ = _clients()
    with store:
        found = thread_about(store, require_user(store, _user(user_id)), about)
    click.echo(json.dumps(thread_dict(found), ensure_ascii=False, indent=1) if as_json else thread_text(found))


@cli.command("mcp")
@USER_OPTION
def mcp_command(user_id: str | None) -> None:
    """Serve your memory to an AI assistant over MCP (stdio). The server is fixed to one user for its life."""
    from persona.mcp_server import run

    run(_user(user_id))


def main() -> None:
    """Entry point of the console script: clear messages for Persona's own errors, no tracebacks."""
    try:
        cli(standalone_mode=True)
    except PersonaError as exc:
        click.echo(f"error: {one_line(str(exc))}", err=True)
        sys.exit(2)


def one_line(message: str, limit: int = 500) -> str:
    """An error message on one line (a terminal shows it whole; a log keeps it as one record)."""
    return " ".join(message.split())[:limit]


if __name__ == "__main__":
    main()
