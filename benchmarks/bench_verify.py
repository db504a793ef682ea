"""fluidml.results.verify on a LocalFileStore of N finished runs (a product grid of N trivial tasks
that each save a small value), made once in a fresh directory; the time of a whole check (every
run's info, config and object: sizes and checksums), best of a few. Nothing is damaged, so it also
reports how many damages it found (0)."""

import shutil
import tempfile

from fluidml import Flow, Task, TaskSpec
from fluidml.results import verify
from fluidml.storage import LocalFileStore

from _common import best_of, emit, parse_args, timed


def tiny(x: int, task: Task):
    task.save(x, "value", type_="pickle")


def main() -> None:
    args = parse_args(__doc__, "number of runs N")
    base_dir = tempfile.mkdtemp(prefix="fluidml-bench-verify-", dir=".")
    try:
        flow = Flow([TaskSpec(task=tiny, config={"x": list(range(args.size))}, expand="product")])
        flow.run(num_workers=1, run_name="bench", results_store=LocalFileStore(base_dir), progress=False)

        def trial():
            seconds, found = timed(verify, LocalFileStore(base_dir))
            return {"seconds": seconds}, {"num_tasks": args.size, "damaged": len(found)}

        result = best_of(trial, args.repeats, args.budget * 5)
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)
    result["us_per_run"] = result["seconds"] / args.size * 1e6
    emit({"scenario": "verify", "n": args.size, **result})


if __name__ == "__main__":
    main()
