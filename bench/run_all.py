"""Run every benchmark on both stores, one after the other (each prints its own markdown table).

Usage: .venv/bin/python bench/run_all.py [--stores sqlite,neo4j]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["store_bench.py", "ingest_bench.py", "retrieval_bench.py", "graph_page.py"]
SINGLE_PROCESS = ["neural_bench.py"]  # no store to choose: the sentence model's own costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stores", default="sqlite,neo4j")
    args = parser.parse_args()
    for script in SCRIPTS:
        print(f"\n## {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), "--stores", args.stores], check=True)
    for script in SINGLE_PROCESS:
        print(f"\n## {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script)], check=True)


if __name__ == "__main__":
    main()
