"""Flow() build time: a product grid of N values -> one successor per value -> one reduce task."""

from typing import List

from fluidml import Flow, Task, TaskSpec
from fluidml.storage import Sweep

from _common import best_of, emit, parse_args, timed


def grid(x: int, task: Task):
    task.save(x, "value")


def successor(value: int, task: Task):
    task.save(value + 1, "next_value")


def reduce_all(next_value: List[Sweep], task: Task):
    task.save(len(next_value), "count")


def make_specs(n: int) -> List[TaskSpec]:
    """The three specs of the scenario; only Flow() over them is timed."""
    grid_spec = TaskSpec(task=grid, config={"x": list(range(n))}, expand="product")
    successor_spec = TaskSpec(task=successor)
    successor_spec.requires(grid_spec)
    reduce_spec = TaskSpec(task=reduce_all, reduce=True)
    reduce_spec.requires(successor_spec)
    return [grid_spec, successor_spec, reduce_spec]


def main() -> None:
    args = parse_args(__doc__, "number of grid values N")

    def trial():
        specs = make_specs(args.size)
        seconds, flow = timed(Flow, specs)
        return {"seconds": seconds}, {"num_tasks": flow.num_tasks}

    emit({"scenario": "build", "n": args.size, **best_of(trial, args.repeats, args.budget)})


if __name__ == "__main__":
    main()
