"""A driver program for the Slurm tests that stop a driver (Ctrl-C, SIGHUP, SIGKILL).

    python slurm_driver.py wait STORE_DIR FOLDER [hold]

runs ``wait_for_release(FOLDER)`` and a successor as Slurm jobs (held in the queue with ``hold``),
results in STORE_DIR, and prints ``RESULTS {json}`` at the end. The cluster comes from SLURM_CONF.
"""

import json
import signal
import sys

import slurm_tasks as t
from fluidml import Flow, SlurmExecutor, TaskSpec, configure_logging
from fluidml.storage import LocalFileStore


def wait(store_dir: str, folder: str, hold: str = "") -> None:
    configure_logging(rich_logging=False)
    first = TaskSpec(task=t.wait_for_release, config={"folder": folder})
    second = TaskSpec(task=t.after)
    second.requires(first)
    executor = SlurmExecutor(sbatch={"hold": bool(hold)})
    results = Flow([first, second]).run(executor=executor, results_store=LocalFileStore(store_dir),
                                        return_results="all", progress=False)
    print("RESULTS " + json.dumps({name: [r.results for r in runs] for name, runs in results.items()}), flush=True)


if __name__ == "__main__":
    # SIGHUP ends the driver as it ends a program whose login session is lost, also where the tests
    # run under nohup (which ignores SIGHUP in every process it starts)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    {"wait": wait}[sys.argv[1]](*sys.argv[2:])
