"""Group-by reduce: Flow() for an N x N x N product grid followed by a reducer over one axis
(``reduce="c"``: N*N group reducers), against the same grid with one ``reduce=True`` task."""

from typing import List

from fluidml import Flow, Task, TaskSpec
from fluidml.storage import Sweep

from _common import best_of, emit, parse_args, timed


def grid(a: int, b: int, c: int, task: Task):
    task.save(a + b + c, "value")


def aggregate(value: List[Sweep], task: Task):
    task.save(sum(sweep.value for sweep in value), "total")


def make_specs(n: int, reduce) -> List[TaskSpec]:
    """The grid and its reducer; only Flow() over them is timed."""
    grid_spec = TaskSpec(task=grid, config={"a": list(range(n)), "b": list(range(n)), "c": list(range(n))},
                         expand="product")
    reduce_spec = TaskSpec(task=aggregate, reduce=reduce)
    reduce_spec.requires(grid_spec)
    return [grid_spec, reduce_spec]


def main() -> None:
    args = parse_args(__doc__, "grid values per axis N")

    def trial():  # both builds in each trial, so that both see the same machine load
        group_seconds, group_flow = timed(Flow, make_specs(args.size, "c"))
        full_seconds, full_flow = timed(Flow, make_specs(args.size, True))
        return ({"group_seconds": group_seconds, "full_seconds": full_seconds},
                {"num_tasks": group_flow.num_tasks, "full_num_tasks": full_flow.num_tasks})

    result = best_of(trial, args.repeats, args.budget)
    result["group_over_full"] = result["group_seconds"] / result["full_seconds"]
    emit({"scenario": "groupby", "n": args.size, **result})


if __name__ == "__main__":
    main()
