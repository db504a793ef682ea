"""Several drivers on one LocalFileStore: the same sweep (48 tasks that each wait 0.25 s, so the
CPUs are not what limits) run by one `python driver.py` process, and by N such processes started
together; each task runs once either way (claims). Reports both wall times (process start to the
last exit, Python start-up included) and the speedup of N drivers over one. The original fluidml
has no claims: every driver would run every task."""

import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from _common import best_of, emit, parse_args

TASKS, HOLD = 48, 0.25

DRIVER = f"""
import sys, time
from fluidml import Flow, TaskSpec
from fluidml.storage import LocalFileStore

def hold(value, task):
    time.sleep({HOLD})
    task.save(value, "v")

if __name__ == "__main__":
    spec = TaskSpec(task=hold, config={{"value": list(range({TASKS}))}}, expand="product")
    Flow([spec]).run(num_workers=1, results_store=LocalFileStore(sys.argv[1]), progress=False)
"""


def sweep(drivers: int) -> float:
    """Seconds from starting ``drivers`` processes on a fresh store until the last one exits."""
    work = Path(tempfile.mkdtemp(prefix="fluidml-bench-drivers-", dir="."))
    try:
        script = work / "driver.py"
        script.write_text(textwrap.dedent(DRIVER))
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, str(script), str(work / "store")], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for _ in range(drivers)]
        codes = [proc.wait() for proc in procs]
        seconds = time.perf_counter() - start
        if any(codes):
            raise RuntimeError(f"a driver failed: exit codes {codes}")
        return seconds
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    args = parse_args(__doc__, "number of drivers N")

    def trial():
        return {"one_seconds": sweep(1), "n_seconds": sweep(args.size)}, {}

    result = best_of(trial, min(args.repeats, 2), 0.0)
    result["speedup"] = result["one_seconds"] / result["n_seconds"]
    emit({"scenario": "drivers", "n": args.size, "num_tasks": TASKS, **result})


if __name__ == "__main__":
    main()
