"""The evolution set's scorer (``persona eval evolution``): each detection is matched one to one with a label, and
what is left over on either side is a false positive or a miss, named in the report, for goals, beliefs and
relations alike."""

from __future__ import annotations

import json
from pathlib import Path

from persona.evolution_eval import evaluate_evolution

MISLABELLED = {
    "id": "crafted-01",
    "kind": "goal",
    "entries": [
        {"date": "2025-01-10", "text": "I want to learn the cello this year. Dinner with my boss Tom Baker."},
        {"date": "2025-05-20", "text": "I have given up on the cello. My fingers hurt too much."},
    ],
    "expect": {
        # Labelled wrongly on purpose: the detector says dropped (and boss), so each kind has one of each error.
        "goals": [{"goal": "learn the cello", "status": "done", "entry": 1}],
        "beliefs": [{"old": "i love coffee", "entry": 1}],
        "aliases": [],
        "separate": [],
        "relations": [{"name": "Tom Baker", "relation": "brother", "entry": 0}],
    },
}


def test_detections_and_labels_are_matched_one_to_one_per_kind(tmp_path: Path):
    path = tmp_path / "cases.jsonl"
    path.write_text(json.dumps(MISLABELLED) + "\n", encoding="utf-8")
    report = evaluate_evolution(path)
    kinds = report["kinds"]
    assert (kinds["goals"]["tp"], kinds["goals"]["fp"], kinds["goals"]["fn"]) == (0, 1, 1)
    assert (kinds["beliefs"]["tp"], kinds["beliefs"]["fp"], kinds["beliefs"]["fn"]) == (0, 0, 1)
    assert (kinds["relations"]["tp"], kinds["relations"]["fp"], kinds["relations"]["fn"]) == (0, 1, 1)
    assert report["errors"] == [
        "crafted-01: wrongly dropped: 'Learn the cello' at entry 1",
        "crafted-01: missed done of 'learn the cello'",
        "crafted-01: missed the change of 'i love coffee'",
        "crafted-01: wrongly 'boss' for 'Tom Baker' at entry 0",
        "crafted-01: missed 'brother' for 'Tom Baker' at entry 0",
    ]


def test_a_right_detection_is_a_true_positive_once(tmp_path: Path):
    case = json.loads(json.dumps(MISLABELLED))
    case["expect"] |= {
        "goals": [{"goal": "learn the cello", "status": "dropped", "entry": 1}] * 2,  # a label twice: one is missed
        "beliefs": [],
        "relations": [{"name": "Tom Baker", "relation": "boss", "entry": 0}],
    }
    path = tmp_path / "cases.jsonl"
    path.write_text(json.dumps(case) + "\n", encoding="utf-8")
    kinds = evaluate_evolution(path)["kinds"]
    assert (kinds["goals"]["tp"], kinds["goals"]["fp"], kinds["goals"]["fn"]) == (1, 0, 1)
    assert (kinds["relations"]["tp"], kinds["relations"]["fp"], kinds["relations"]["fn"]) == (1, 0, 0)
