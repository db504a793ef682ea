"""fluidml on a local Ray runtime beside the same work as bare ``ray.remote`` calls, in the same
process, interleaved, best of 3 each: N trivial tasks, and 16 CPU-bound tasks of about 0.25 s.
Reports both per-task costs and fluidml's overhead on top of Ray relative to Ray's own cost
((ours - bare) / bare; the target is at most 2). Needs Ray (``pip install "fluidml[ray]"``)."""

import os
import shutil
import tempfile

from fluidml import Flow, Task, TaskSpec

from _common import emit, parse_args, timed
from bench_cpu import burn, calibrate, spin  # the CPU scenario's work, the same on both sides

CPU_TASKS = 16
CPU_TASK_SECONDS = 0.25


def trivial(index: int, task: Task):
    task.save(index, "index")


def main() -> None:
    args = parse_args(__doc__, "number of trivial tasks N")
    import ray

    home = tempfile.mkdtemp(prefix="fml-bench-ray-", dir="/tmp")
    os.environ.update(HOME=home, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0")
    cpus = os.cpu_count() or 1
    ray.init(num_cpus=cpus, include_dashboard=False, _temp_dir=os.path.join(home, "tmp"), log_to_driver=False)
    bare_trivial = ray.remote(lambda index: index)
    bare_burn = ray.remote(spin)
    n = args.size
    loops = calibrate(CPU_TASK_SECONDS)

    def ours(spec: TaskSpec) -> None:
        Flow([spec]).run(executor="ray", progress=False)

    trivial_spec = TaskSpec(task=trivial, config={"index": list(range(n))}, expand="product")
    burn_spec = TaskSpec(task=burn, config={"loops": loops, "index": list(range(CPU_TASKS))}, expand="product")
    runs = {
        "bare_trivial": lambda: ray.get([bare_trivial.remote(i) for i in range(n)]),
        "ours_trivial": lambda: ours(trivial_spec),
        "bare_cpu": lambda: ray.get([bare_burn.remote(loops) for _ in range(CPU_TASKS)]),
        "ours_cpu": lambda: ours(burn_spec),
    }
    for run in runs.values():  # warm-up: Ray's workers are started and have imported everything
        run()
    best = {name: float("inf") for name in runs}
    repeats = min(args.repeats, 3)
    for _ in range(repeats):  # interleaved: both see the same machine
        for name, run in runs.items():
            best[name] = min(best[name], timed(run)[0])
    ray.shutdown()
    shutil.rmtree(home, ignore_errors=True)
    per_task = {name: seconds / (n if name.endswith("trivial") else CPU_TASKS) * 1e6 for name, seconds in best.items()}
    emit({"scenario": "ray", "n": n, "num_tasks": n + CPU_TASKS, "cpus": cpus, "repeats": repeats,
          **{f"{name}_us_per_task": value for name, value in per_task.items()},
          "trivial_overhead": (best["ours_trivial"] - best["bare_trivial"]) / best["bare_trivial"],
          "cpu_overhead": (best["ours_cpu"] - best["bare_cpu"]) / best["bare_cpu"]})


if __name__ == "__main__":
    main()
