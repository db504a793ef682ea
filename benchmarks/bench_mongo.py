"""MongoDBStore: N independent trivial tasks (a product grid) run sequentially into a fresh database,
then the same flow again, fully cached. The script starts its own nx-27017 server (a MongoDB
wire-protocol server from PyPI) on a free 127.0.0.1 port, so the interpreter needs nx-27017 and
pymongo installed (the original also needs mongoengine)."""

import sys
import tempfile
from pathlib import Path

from fluidml import Flow, Task, TaskSpec
from fluidml.storage import MongoDBStore

from _common import best_of, emit, parse_args, timed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from mongo_server import MongoTestServer  # noqa: E402  (the tests' server helper)


def tiny(x: int, task: Task):
    task.save(x, "value")


def main() -> None:
    args = parse_args(__doc__, "number of tasks N")
    trials = iter(range(1000))

    with tempfile.TemporaryDirectory(prefix="fluidml-bench-mongo-") as data_dir:
        with MongoTestServer(Path(data_dir)) as server:

            def trial():
                store = MongoDBStore(f"bench{next(trials)}", host=server.uri)
                flow = Flow([TaskSpec(task=tiny, config={"x": list(range(args.size))}, expand="product")])
                first, _ = timed(flow.run, num_workers=1, run_name="bench", results_store=store)
                cached, _ = timed(flow.run, num_workers=1, run_name="bench", results_store=store)
                return {"seconds": first, "cached_seconds": cached}, {"num_tasks": flow.num_tasks}

            result = best_of(trial, args.repeats, args.budget)
    result["us_per_task"] = result["seconds"] / result["num_tasks"] * 1e6
    result["cached_us_per_task"] = result["cached_seconds"] / result["num_tasks"] * 1e6
    emit({"scenario": "mongo", "n": args.size, **result})


if __name__ == "__main__":
    main()
