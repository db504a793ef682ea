"""fluidml on a Slurm cluster beside the same number of bare ``sbatch`` jobs, interleaved, best of 2
each: N trivial tasks as a flow (``executor="slurm"``, results in a ``LocalFileStore``), timed from
``run()`` to its return (submission to the last result), and N jobs ``sbatch --wrap "python -c pass"``,
timed from the first ``sbatch`` until squeue lists all of them as COMPLETED (looked at every 0.25 s).
Reports both and their ratio (target: at most 1.5), and for scale the CPU time a job's Python spends
importing fluidml (median of 5 fresh interpreters, beside ``python -c pass``): on a machine with few
cores that start-up, not Slurm, is most of the difference.

The script starts its own single-node cluster with the tests' helper (tests/slurm_cluster.py:
munged, slurmctld, slurmd as root, Debian's slurm-wlm and munge), unless SLURM_CONF names one.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

from fluidml import Flow, Task, TaskSpec
from fluidml.storage import LocalFileStore

from _common import emit, parse_args, timed

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))
from slurm_cluster import SlurmCluster, missing_programs  # noqa: E402  (the tests' cluster helper)


def trivial(index: int, task: Task):
    task.save(index, "index")


def bare(n: int, log_dir: str) -> None:
    """N bare jobs, then wait until squeue lists every one as COMPLETED."""
    ids: List[str] = []
    for _ in range(n):
        out = subprocess.run(["sbatch", "--parsable", f"--output={log_dir}/bare-%j.out", "--wrap",
                              f"{sys.executable} -c pass"], capture_output=True, text=True, check=True).stdout
        ids.append(out.strip().split(";")[0])
    while True:
        out = subprocess.run(["squeue", "--noheader", "--states=all", f"--jobs={','.join(ids)}", "--format=%i %T"],
                             capture_output=True, text=True, check=True).stdout
        states = dict(line.split() for line in out.splitlines() if line.strip())
        if all(states.get(job_id) == "COMPLETED" for job_id in ids):
            return
        if any(state not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "COMPLETED")
               for state in states.values()):
            raise RuntimeError(f"a bare job failed: {states}")
        time.sleep(0.25)


def cpu_seconds(code: str, runs: int = 5) -> float:
    """Median CPU time (user + sys) of a fresh interpreter running ``code``."""
    times = []
    for _ in range(runs):
        before = os.times()
        subprocess.run([sys.executable, "-c", code], check=True)
        after = os.times()
        times.append(after.children_user - before.children_user + after.children_system - before.children_system)
    return sorted(times)[len(times) // 2]


def main() -> None:
    args = parse_args(__doc__, "number of trivial tasks N")
    n = args.size
    cluster = None
    if not os.environ.get("SLURM_CONF"):
        missing = missing_programs()
        if missing:
            raise SystemExit(f"bench_slurm needs {', '.join(missing)}")
        cluster = SlurmCluster().start()
        os.environ["SLURM_CONF"] = str(cluster.conf)
    import fluidml

    src = Path(fluidml.__file__).resolve().parents[1]  # the jobs import the same fluidml as this process
    os.environ["PYTHONPATH"] = os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    work = tempfile.mkdtemp(prefix="fml-bench-slurm-")
    spec = TaskSpec(task=trivial, config={"index": list(range(n))}, expand="product")
    trials = iter(range(100))

    def ours() -> None:
        store = LocalFileStore(os.path.join(work, f"store{next(trials)}"))
        Flow([spec]).run(executor="slurm", results_store=store, run_name="bench", progress=False)

    try:
        best = {"bare": float("inf"), "ours": float("inf")}
        repeats = min(args.repeats, 2)
        for _ in range(repeats):  # interleaved: both see the same cluster and machine
            best["bare"] = min(best["bare"], timed(bare, n, work)[0])
            best["ours"] = min(best["ours"], timed(ours)[0])
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    emit({"scenario": "slurm", "n": n, "num_tasks": n, "repeats": repeats, "bare_seconds": best["bare"],
          "ours_seconds": best["ours"], "ratio": best["ours"] / best["bare"],
          "job_import_cpu_seconds": cpu_seconds("import fluidml.executors._slurm_job"),
          "bare_python_cpu_seconds": cpu_seconds("pass")})


if __name__ == "__main__":
    main()
