"""Inspecting a large store: a LocalFileStore holding N runs of one task (each saves an "accuracy"
float, a "metrics" JSON dict and a pickled "model": 4 KB, and 2 MB in every 1000th run), made once
with flow.run(). Then, timed as a user waits for them (a fresh `fluidml` process each, start-up
included): `fluidml --help`, `fluidml ls STORE`, `fluidml ls STORE train` and
`fluidml compare STORE train --sort accuracy` (tables of 100 rows), and the same compare printing
every row as CSV; in this process, `fluidml.results.sweep_rows` over all runs, recording the size of
every object it loads (from the store's own listing). Each command also reports the CPU time
(user + system) of its process: on a busy machine the wall time grows with the load, the CPU time
does not."""

import os
import resource
import shutil
import subprocess
import sys
import tempfile

from fluidml import Flow, Task, TaskSpec
from fluidml.config import config_digest
from fluidml.results import sweep_rows
from fluidml.storage import LocalFileStore

from _common import best_of, emit, parse_args, timed


def train(x: int, task: Task):
    task.save(x / 10_000, "accuracy")
    task.save({"f1": x / 20_000, "loss": 1 - x / 10_000}, "metrics", type_="json")
    task.save(b"m" * (2_000_000 if x % 1000 == 999 else 4_000), "model")


class RecordingStore(LocalFileStore):
    """A read-only store that records the stored size of every object it loads."""

    def __init__(self, base_dir: str):
        super().__init__(base_dir, read_only=True)
        self.sizes = {config_digest(run.unique_config): run.objects for run in self.runs("train")}
        self.loaded = []

    def load_listed(self, record, name):
        self.loaded.append(self.sizes[config_digest(record.unique_config)][name].size)
        return super().load_listed(record, name)


def command() -> list:
    """The installed `fluidml` script next to this python (as pip installs it)."""
    script = os.path.join(os.path.dirname(sys.executable), "fluidml")
    return [script] if os.path.exists(script) else [sys.executable, "-c", "from fluidml.cli import main; main()"]


def run_cli(*args: str) -> tuple:
    """(wall seconds, CPU seconds of the process) of one `fluidml` command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds, done = timed(subprocess.run, [*command(), *args], capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"fluidml {' '.join(args)} failed: {done.stderr}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    args = parse_args(__doc__, "number of runs N")
    base_dir = tempfile.mkdtemp(prefix="fluidml-bench-inspect-", dir=".")
    try:
        flow = Flow([TaskSpec(task=train, config={"x": list(range(args.size))}, expand="product")])
        flow.run(num_workers=1, run_name="bench", results_store=LocalFileStore(base_dir), progress=False)

        commands = {
            "help": ["--help"], "ls_tasks": ["ls", base_dir], "ls": ["ls", base_dir, "train"],
            "compare": ["compare", base_dir, "train", "--sort", "accuracy"],
            "compare_csv": ["compare", base_dir, "train", "--sort", "accuracy", "--format", "csv"],
        }

        def trial():
            timings = {}
            for name, cli_args in commands.items():
                timings[f"{name}_seconds"], timings[f"{name}_cpu_seconds"] = run_cli(*cli_args)
            store = RecordingStore(base_dir)
            timings["table_seconds"], table = timed(sweep_rows, store, "train", sort="accuracy")
            largest = max(size for size in store.loaded if size is not None)
            return timings, {"num_tasks": len(table.rows), "objects_loaded": len(store.loaded),
                             "largest_object_read": largest, "columns": table.columns}

        result = best_of(trial, args.repeats, args.budget * 3)
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)
    result["largest_object_read_mb"] = result["largest_object_read"] / (1 << 20)
    emit({"scenario": "inspect", "n": args.size, **result})


if __name__ == "__main__":
    main()
