"""LocalFileStore, sequential: N independent trivial tasks (a product grid) that each save a tiny value,
run with flow.run(num_workers=1) into a fresh store directory; then the same flow again on the same
store, where every task is already executed (the fully cached re-run)."""

import shutil
import tempfile

from fluidml import Flow, Task, TaskSpec
from fluidml.storage import LocalFileStore

from _common import best_of, emit, parse_args, timed


def tiny(x: int, task: Task):
    task.save(x, "value", type_="pickle")  # the original needs a type


def main() -> None:
    args = parse_args(__doc__, "number of tasks N")

    def trial():
        base_dir = tempfile.mkdtemp(prefix="fluidml-bench-store-", dir=".")
        try:
            flow = Flow([TaskSpec(task=tiny, config={"x": list(range(args.size))}, expand="product")])
            first, _ = timed(flow.run, num_workers=1, run_name="bench", results_store=LocalFileStore(base_dir))
            flow = Flow([TaskSpec(task=tiny, config={"x": list(range(args.size))}, expand="product")])
            cached, _ = timed(flow.run, num_workers=1, run_name="again", results_store=LocalFileStore(base_dir))
        finally:
            shutil.rmtree(base_dir, ignore_errors=True)
        return {"seconds": first, "cached_seconds": cached}, {"num_tasks": flow.num_tasks}

    result = best_of(trial, args.repeats, args.budget * 3)  # a trial takes ~1 s: a few, against disk noise
    result["us_per_task"] = result["seconds"] / result["num_tasks"] * 1e6
    result["cached_us_per_task"] = result["cached_seconds"] / result["num_tasks"] * 1e6
    emit({"scenario": "filestore", "n": args.size, **result})


if __name__ == "__main__":
    main()
