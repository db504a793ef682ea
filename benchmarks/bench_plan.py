"""flow.plan(): N independent tasks (a product grid of one function task that saves a tiny value).

The tasks are run once with cache="code" into a fresh LocalFileStore (not timed), so the store holds
all N finished runs with their code versions. Then, on fresh Flow objects each time (so the code
hashing of cache="code" is counted), interleaved: flow.plan(cache="config") and flow.plan(cache="code")
against that store (every task "cached"), and the same two against an empty InMemoryStore (every task
"new config": the planner's own CPU cost, without reading the disk). Seconds are wall-clock time
(best of the trials); each code / config ratio is the median over the trials of the ratio of the two
plans' CPU time (time.process_time, which other processes on a busy machine inflate less; the files
are in the page cache, so planning is CPU-bound), the two plans running back to back in alternating
order."""

import gc
import shutil
import statistics
import tempfile
import time

from fluidml import Flow, Task, TaskSpec
from fluidml.storage import InMemoryStore, LocalFileStore

from _common import best_of, emit, parse_args, timed


def tiny(x: int, task: Task):
    task.save(x, "value", type_="pickle")


def make_flow(size: int) -> Flow:
    return Flow([TaskSpec(task=tiny, config={"x": list(range(size))}, expand="product")])


def main() -> None:
    args = parse_args(__doc__, "number of tasks N")
    base_dir = tempfile.mkdtemp(prefix="fluidml-bench-plan-", dir=".")
    try:
        make_flow(args.size).run(num_workers=1, run_name="bench", results_store=LocalFileStore(base_dir),
                                 cache="code")
        store = LocalFileStore(base_dir)

        order = [("config", "code"), ("code", "config")]
        ratios = {"file": [], "memory": []}  # code / config of the two plans of each trial (run back to back)

        def trial():
            timings, reasons = {}, {}
            order.reverse()  # each goes first in every other trial
            for label, target in (("file", store), ("memory", InMemoryStore())):
                for cache in order[0]:
                    flow = make_flow(args.size)
                    gc.collect()  # (the previous flow's garbage is not collected inside this plan)
                    cpu = time.process_time()
                    seconds, plan = timed(flow.plan, results_store=target, cache=cache)
                    timings[f"{label}_{cache}_seconds"] = seconds
                    timings[f"{label}_{cache}_cpu_seconds"] = time.process_time() - cpu
                    reasons[f"{label}_{cache}"] = sorted({entry.reason for entry in plan})
            for label in ratios:
                ratios[label].append(timings[f"{label}_code_cpu_seconds"] / timings[f"{label}_config_cpu_seconds"])
            assert reasons["file_config"] == reasons["file_code"] == ["cached"], reasons
            assert reasons["memory_config"] == reasons["memory_code"] == ["new config"], reasons
            return timings, {"num_tasks": len(plan)}

        result = best_of(trial, max(args.repeats, 25), args.budget * 20)  # medians of close figures: many trials
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)
    result["file_ratio"] = statistics.median(ratios["file"])
    result["memory_ratio"] = statistics.median(ratios["memory"])
    emit({"scenario": "plan", "n": args.size, **result})


if __name__ == "__main__":
    main()
