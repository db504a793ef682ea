"""Deep chain: DEPTH specs t0 <- t1 <- ... each requiring the previous; built and run sequentially."""

from fluidml import Flow, Task, TaskSpec

from _common import best_of, emit, parse_args, timed


def step(task: Task):
    task.save(1, "done")


def make_chain(depth: int):
    """DEPTH specs named t0, t1, ..., each requiring the one before."""
    specs = []
    for i in range(depth):
        spec = TaskSpec(task=step, name=f"t{i}")
        if specs:
            spec.requires(specs[-1])
        specs.append(spec)
    return specs


def main() -> None:
    args = parse_args(__doc__, "chain depth")

    def trial():
        specs = make_chain(args.size)
        build_seconds, flow = timed(Flow, specs)
        run_seconds, _ = timed(flow.run, num_workers=1, run_name="bench")
        return {"build_seconds": build_seconds, "run_seconds": run_seconds}, {"num_tasks": flow.num_tasks}

    result = best_of(trial, args.repeats, args.budget)
    for phase in ("build", "run"):
        result[f"{phase}_us_per_task"] = result[f"{phase}_seconds"] / result["num_tasks"] * 1e6
    emit({"scenario": "chain", "depth": args.size, **result})


if __name__ == "__main__":
    main()
