"""What a Slurm job of the Slurm executor runs: one fluidml task, read from the run's work directory.

The batch script ends with ``exec python -c "from fluidml.executors._slurm_job import main; main()"
<batch file>`` (``-c``, not ``-m``: the task's pickled ``__main__`` functions must not meet this
module as ``__main__``). The batch file (JSON) lists the job's tasks; an element of a job array runs
the entry at its ``SLURM_ARRAY_TASK_ID`` and renames Slurm's log of the element to
``<name>-<jobid>.out``. The job loads the store and the task, runs it with ``run_task`` (which
records it in the store) and writes its packed ``Outcome`` next to the log, atomically. SIGTERM
(``scancel``, the time limit, preemption) interrupts the task like Ctrl-C, so its ``finally``
blocks run and the store records it as killed.
"""

import json
import logging
import os
import pickle
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, List, Optional

from fluidml.executors._shipping import load_specs, resolve_specs
from fluidml.executors._slurm_files import write_atomic
from fluidml.executors.worker import pack_outcome
from fluidml.runner import Outcome, run_task
from fluidml.task import TaskState
from fluidml.task_requests import Allocation

__all__ = ["allocation", "main"]

#: Exit codes of the job: Slurm's accounting then shows how the task ended.
EXIT_CODES = {TaskState.FINISHED: 0, TaskState.KILLED: 130}


def _job_id(array: bool) -> str:
    env = os.environ
    if array:
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env["SLURM_JOB_ID"]


def _take_log(work_dir: Path, array_log: str, prefix: str, job_id: str) -> None:
    """Renames Slurm's log of this array element (named by the array) to ``<prefix>-<jobid>.out``;
    Slurm keeps writing to it. A log left by an earlier attempt (a requeued job) is kept as ``.1``."""
    source = work_dir / array_log.replace("%A_%a", job_id)
    target = work_dir / f"{prefix}-{job_id}.out"
    try:
        if target.exists():
            os.replace(target, target.with_name(target.name + ".1"))
        os.replace(source, target)
    except OSError as exc:  # the log keeps Slurm's name; the driver looks there too
        print(f"fluidml: could not rename {source} to {target}: {exc}", file=sys.stderr)


class _Interrupt:
    """SIGTERM raises KeyboardInterrupt in the task, once (a second SIGTERM is Slurm being impatient)."""

    def __init__(self) -> None:
        self.raised = False

    def __call__(self, signum: int, frame: Any) -> None:
        if not self.raised:
            self.raised = True
            print(f"fluidml: received {signal.Signals(signum).name}; interrupting the task", file=sys.stderr)
            raise KeyboardInterrupt


def allocation(requests: Any) -> Allocation:
    """What Slurm gave the job, from its environment (``custom`` from the task's requests, which
    Slurm granted when it started the job). With no GPU given, ``CUDA_VISIBLE_DEVICES`` is set
    empty, so CUDA sees none."""
    env = os.environ
    cpus = float(env.get("SLURM_CPUS_PER_TASK") or env.get("SLURM_CPUS_ON_NODE") or 1)
    gpu_ids = [i for i in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if i]
    gpus = float(len(gpu_ids) or env.get("SLURM_GPUS_ON_NODE") or 0)
    if not gpus and "CUDA_VISIBLE_DEVICES" not in env:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    memory: Optional[int] = None
    if env.get("SLURM_MEM_PER_NODE"):
        memory = int(env["SLURM_MEM_PER_NODE"]) * 2**20
    elif env.get("SLURM_MEM_PER_CPU"):
        memory = int(float(env["SLURM_MEM_PER_CPU"]) * cpus) * 2**20
    custom = {name: float(amount) for name, amount in getattr(requests, "custom", {}).items()}
    return Allocation(cpus=cpus, gpus=gpus, gpu_ids=gpu_ids, memory=memory, custom=custom,
                      node_id=env.get("SLURMD_NODENAME", ""))


def _setup_logging(level: int) -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-8s %(name)s: %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level)


def _run(work_dir: Path, run_file: str, prefix: str) -> Outcome:
    """Loads the run's settings and the task, and runs it."""
    settings = pickle.loads((work_dir / run_file).read_bytes())
    for path in reversed(settings["sys_path"]):  # e.g. the directory of the driver's script
        if path not in sys.path:
            sys.path.insert(1, path)
    _setup_logging(settings["log_level"])
    store = pickle.loads(settings["store"])
    specs_file, payload = pickle.loads((work_dir / f"{prefix}.task").read_bytes())
    specs = load_specs((work_dir / specs_file).read_bytes())
    task, predecessors, reason = pickle.loads(payload)
    resolve_specs(task, specs)
    task.results_store = store
    task.resource = allocation(task._requests)
    try:
        return run_task(task, predecessors, store, reason, in_worker=True)  # (a timeout may end this job)
    except Exception as exc:  # the store failed (e.g. its server went away)
        return Outcome(TaskState.FAILED, reason=reason, error=exc, traceback=traceback.format_exc(),
                       run_name=task.run_name, sweep_counter=task.sweep_counter, run_history=task.run_history)


def main(argv: Optional[List[str]] = None) -> None:
    """Runs the task of this job and writes its outcome; exits 0 if it finished."""
    batch_path = Path((sys.argv[1:] if argv is None else argv)[0])
    work_dir = batch_path.parent
    batch = json.loads(batch_path.read_text(encoding="utf-8"))
    entry = batch["tasks"][int(os.environ.get("SLURM_ARRAY_TASK_ID", "0")) if batch["array"] else 0]
    prefix, job_id = entry["prefix"], _job_id(batch["array"])
    if batch["array"]:
        _take_log(work_dir, batch["array_log"], prefix, job_id)
    outcome_path = work_dir / f"{prefix}-{job_id}.outcome"
    try:
        outcome_path.unlink()  # left by an earlier attempt of a requeued job
    except FileNotFoundError:
        pass
    signal.signal(signal.SIGTERM, _Interrupt())
    print(f'fluidml: job {job_id} runs task "{entry["unique_name"]}" on {os.environ.get("SLURMD_NODENAME", "?")}',
          file=sys.stderr, flush=True)
    try:
        outcome = _run(work_dir, batch["run"], prefix)
    except BaseException as exc:  # e.g. the task's module cannot be imported here
        state = TaskState.KILLED if isinstance(exc, KeyboardInterrupt) else TaskState.FAILED
        text = traceback.format_exc()
        if isinstance(exc, ModuleNotFoundError):
            exc = ModuleNotFoundError(
                f"{exc} in Slurm job {job_id}: the task's code must be importable on the cluster's nodes. Install "
                f"it in the Python the jobs run (SlurmExecutor(python=...)), or put its directory on PYTHONPATH "
                f"(sbatch passes the driver's environment on).", name=exc.name)
        outcome = Outcome(state, error=exc, traceback=text)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the task is over: its outcome is written whatever comes
    sys.stdout.flush()
    if outcome.state != TaskState.FINISHED and outcome.traceback:
        sys.stderr.write(outcome.traceback)
    print(f"fluidml: task {outcome.state.value}", file=sys.stderr, flush=True)
    write_atomic(outcome_path, pack_outcome(outcome))
    sys.exit(EXIT_CODES.get(outcome.state, 1))
