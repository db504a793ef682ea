"""The grid the sweep-table and CLI tests inspect (module-level tasks, so every executor imports them):

    Featurize (n: 16, 32) -> train (C: 0.1, 1.0; seed 42) -> evaluate -> select (reduce)

evaluate saves "accuracy" (a pickled float, n/100 + C) and "metrics" (a JSON dict); train saves a
"model" (a pickled dict, ``model_bytes`` long) so that tables can be checked never to load it.
"""

import os
import sys
import time
from typing import List

from fluidml import Flow, TaskSpec
from fluidml.storage import LocalFileStore, Sweep


#: evaluate's sweep table after one run of the flow (named "exp", in this process), without times.
EVALUATE_ROWS = [
    {"run": "exp-000", "state": "finished", "unique_name": "evaluate-1", "hash": "de0rz21f",
     "config.Featurize.n": 16, "config.train.C": 0.1, "accuracy": 0.26, "metrics.f1": 0.13, "metrics.loss": 0.87},
    {"run": "exp-001", "state": "finished", "unique_name": "evaluate-2", "hash": "3at5pkh2",
     "config.Featurize.n": 16, "config.train.C": 1.0, "accuracy": 1.16, "metrics.f1": 0.58, "metrics.loss": 0.42},
    {"run": "exp-002", "state": "finished", "unique_name": "evaluate-3", "hash": "3clzm2ki",
     "config.Featurize.n": 32, "config.train.C": 0.1, "accuracy": 0.42, "metrics.f1": 0.21, "metrics.loss": 0.79},
    {"run": "exp-003", "state": "finished", "unique_name": "evaluate-4", "hash": "6rgsx4sp",
     "config.Featurize.n": 32, "config.train.C": 1.0, "accuracy": 1.32, "metrics.f1": 0.66, "metrics.loss": 0.34},
]


def featurize(n: int, task):
    task.save(list(range(n)), "features")


def train(features, C: float, seed: int, task, model_bytes: int = 2000, fail_C: float = -1.0, gate: str = ""):
    if C == fail_C:
        raise ValueError(f"C={C} does not converge")
    if gate:  # (the concurrency test) say that the run started, then wait to be released
        open(gate + ".started", "w").close()
        while not os.path.exists(gate + ".release"):
            time.sleep(0.02)
    task.save({"C": C, "weights": b"w" * model_bytes}, "model")


def evaluate(features, model, task):
    accuracy = round(len(features) / 100 + model["C"], 4)
    task.save(accuracy, "accuracy")
    task.save({"f1": round(accuracy / 2, 4), "loss": round(1 - accuracy / 2, 4)}, "metrics", type_="json")


def select(accuracy: List[Sweep], task):
    best = max(accuracy, key=lambda sweep: sweep.value)
    task.save(best.value, "best")


def make_flow(model_bytes: int = 2000, fail_C: float = -1.0, gate: str = "") -> Flow:
    """The flow; ``fail_C`` makes the train runs with that C fail, ``gate`` holds train runs until
    ``<gate>.release`` exists (they create ``<gate>.started`` first)."""
    features = TaskSpec(task=featurize, name="Featurize", config={"n": [16, 32]}, expand="product")
    training = TaskSpec(task=train, config={"C": [0.1, 1.0], "seed": 42, "_model_bytes": model_bytes,
                                            "_fail_C": fail_C, "_gate": gate},
                        expand="product", config_ignore_prefix="_")
    evaluation = TaskSpec(task=evaluate)
    selection = TaskSpec(task=select, reduce=True)
    training.requires(features)
    evaluation.requires(features, training)
    selection.requires(evaluation)
    return Flow([features, training, evaluation, selection])


if __name__ == "__main__":  # python sweep_pipeline.py STORE [GATE]: runs the flow into a LocalFileStore
    make_flow(gate=sys.argv[2] if len(sys.argv) > 2 else "").run(
        num_workers=1, run_name="exp", results_store=LocalFileStore(sys.argv[1]), progress=False)
