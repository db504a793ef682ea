"""LocalFileStore, sequential: N independent trivial tasks (a product grid) that each save a tiny value,
run with flow.run(num_workers=1) into a fresh store directory; then the same flow again on the same
store, where every task is already executed (the fully cached re-run). For scale it also times the
filesystem floor: the directories and files one such task leaves (run dir, .fluidml/, config.json, object,
load info, registry, info: 2 mkdirs and 5 small files written to a temporary name and renamed) made with plain
os calls, no fluidml. On a busy disk that floor moves a lot; compare the two in the same run."""

import os
import shutil
import tempfile
import time

from fluidml import Flow, Task, TaskSpec
from fluidml.storage import LocalFileStore

from _common import best_of, emit, parse_args, timed


def tiny(x: int, task: Task):
    task.save(x, "value", type_="pickle")  # the original needs a type


def floor_trial(size: int) -> float:
    base_dir = tempfile.mkdtemp(prefix="fluidml-bench-floor-", dir=".")
    try:
        start = time.perf_counter()
        for i in range(size):
            run = os.path.join(base_dir, f"bench-{i:03d}")
            os.mkdir(run)
            os.mkdir(os.path.join(run, ".fluidml"))
            for name in ("config.json", "value.p", ".fluidml/.value_load_info.p", ".fluidml/.saved_results.json",
                         "fluidml_info.json"):
                temp = os.path.join(run, ".~tmp")
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                os.write(fd, b"{}")
                os.close(fd)
                os.replace(temp, os.path.join(run, name))
        return time.perf_counter() - start
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)


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
        floor = floor_trial(args.size)
        return {"seconds": first, "cached_seconds": cached, "floor_seconds": floor}, {"num_tasks": flow.num_tasks}

    result = best_of(trial, args.repeats, args.budget * 3)  # a trial takes ~1 s: a few, against disk noise
    result["us_per_task"] = result["seconds"] / result["num_tasks"] * 1e6
    result["cached_us_per_task"] = result["cached_seconds"] / result["num_tasks"] * 1e6
    result["floor_us_per_task"] = result["floor_seconds"] / result["num_tasks"] * 1e6
    emit({"scenario": "filestore", "n": args.size, **result})


if __name__ == "__main__":
    main()
