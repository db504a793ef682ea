"""Worker pool overhead: N independent trivial tasks on 2 workers (per-task cost), and the time to
run 2 trivial tasks on 2 fresh workers (what starting the pool costs)."""

from fluidml import Flow, Task, TaskSpec

from _common import best_of, emit, parse_args, timed


def tiny(x: int, task: Task):
    task.save(x, "value")


def wide(n: int) -> Flow:
    return Flow([TaskSpec(task=tiny, config={"x": list(range(n))}, expand="product")])


def main() -> None:
    args = parse_args(__doc__, "number of tasks N")

    def trial():
        flow = wide(args.size)
        seconds, _ = timed(flow.run, num_workers=2, run_name="bench")
        startup, _ = timed(wide(2).run, num_workers=2, run_name="bench")
        return {"seconds": seconds, "startup_seconds": startup}, {"num_tasks": flow.num_tasks}

    result = best_of(trial, min(args.repeats, 3), args.budget)
    result["us_per_task"] = result["seconds"] / result["num_tasks"] * 1e6
    # what each task adds once the pool runs: the run minus a run of 2 tasks (which is all start-up)
    result["steady_us_per_task"] = max(result["seconds"] - result["startup_seconds"], 0) / (args.size - 2) * 1e6
    emit({"scenario": "parallel", "n": args.size, **result})


if __name__ == "__main__":
    main()
