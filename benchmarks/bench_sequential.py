"""Sequential in-memory run: N independent trivial tasks (a product grid), flow.run(num_workers=1)."""

from fluidml import Flow, Task, TaskSpec

from _common import best_of, emit, parse_args, timed


def tiny(x: int, task: Task):
    task.save(x, "value")


def main() -> None:
    args = parse_args(__doc__, "number of tasks N")

    def trial():
        flow = Flow([TaskSpec(task=tiny, config={"x": list(range(args.size))}, expand="product")])
        seconds, _ = timed(flow.run, num_workers=1, run_name="bench")
        return {"seconds": seconds}, {"num_tasks": flow.num_tasks}

    result = best_of(trial, args.repeats, args.budget)
    result["us_per_task"] = result["seconds"] / result["num_tasks"] * 1e6
    emit({"scenario": "sequential", "n": args.size, **result})


if __name__ == "__main__":
    main()
