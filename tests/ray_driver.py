"""A driver program for the Ray tests that need a process of their own.

    python ray_driver.py grid ADDRESS STORE       # a grid search on the cluster at ADDRESS, results in STORE:
                                                   # a directory, or a JSON {"url": ..., "options": {...}} for an FsspecStore
    python ray_driver.py interrupt MARKER          # a local Ray runtime; a task that waits for Ctrl-C
    python ray_driver.py talk                      # a local Ray runtime; tasks that print and log
"""

import json
import sys

import ray_tasks as t
from fluidml import Flow, RayExecutor, TaskSpec, configure_logging
from fluidml.storage import FsspecStore, LocalFileStore


def open_store(store: str):
    if store.startswith("{"):
        spec = json.loads(store)
        return FsspecStore(spec["url"], **spec.get("options", {}))
    return LocalFileStore(store)


def grid(address: str, store: str) -> None:
    configure_logging()
    train = TaskSpec(task=t.train, config={"lr": [0.1, 0.2, 0.3], "epochs": [1, 2]}, expand="product")
    best = TaskSpec(task=t.best_score, reduce=True)
    best.requires(train)
    executor = RayExecutor(address=address)
    results = Flow([train, best]).run(executor=executor, results_store=open_store(store),
                                      return_results="all", run_name="grid", progress=False)
    print("RESULTS " + json.dumps({name: [r.results for r in runs] for name, runs in results.items()}))


def local_runtime() -> None:
    import ray

    ray.init(num_cpus=2, include_dashboard=False)


def interrupt(marker: str) -> None:
    local_runtime()
    Flow([TaskSpec(task=t.wait_for_interrupt, config={"marker": marker})]).run(executor="ray", progress=False)


def talk() -> None:
    local_runtime()
    configure_logging()
    spec = TaskSpec(task=t.talk, config={"word": ["alpha", "beta"]}, expand="product")
    Flow([spec]).run(executor="ray", progress=False)


if __name__ == "__main__":
    {"grid": grid, "interrupt": interrupt, "talk": talk}[sys.argv[1]](*sys.argv[2:])
