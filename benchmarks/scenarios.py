"""The benchmark scenarios and their targets (DESIGN.md section 6). Adding a scenario means adding a
``bench_*.py`` script that prints one JSON line, and one entry to ``SCENARIOS`` below."""

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple, Union

# A target check gets (size, our value, our values by size), a value being None where our run
# failed, and gives (target text, met: True, False or None when it cannot tell).
Target = Callable[[int, Optional[float], Dict[int, Optional[float]]], Tuple[str, Optional[bool]]]


@dataclass(frozen=True)
class Metric:
    """One number a script reports; it becomes one table row per size."""

    key: str  # the key in the script's JSON line
    label: str  # row label; "{size}" is filled in
    unit: str  # "s" (seconds), "us/task" (microseconds per task), "x" (a factor) or "requests" ("requests/task")
    target: Optional[Target] = None
    higher_is_better: bool = False  # e.g. a speedup; the ratio column then reads ours / original


@dataclass(frozen=True)
class Scenario:
    """A script run once per size, under each interpreter, in its own subprocess."""

    name: str
    script: str
    sizes: Tuple[int, ...]
    quick_sizes: Tuple[int, ...]
    metrics: Tuple[Metric, ...]
    original_max: Optional[int] = None  # larger sizes are not run for the original, for this reason:
    original_note: str = "too slow"


def format_value(value: float, unit: str) -> str:
    """1.75 s, 20.1 ms, 49.0 µs; with "/task" for per-task metrics; 1.02× for factors; request counts."""
    if unit == "x":
        return f"{value:.2f}×"
    if unit.startswith("requests"):
        return f"{value:.2f} requests/task" if unit == "requests/task" else f"{value:g} requests"
    seconds = value * 1e-6 if unit == "us/task" else value
    if seconds >= 1:
        text = f"{seconds:.2f} s"
    elif seconds >= 1e-3:
        text = f"{seconds * 1e3:.1f} ms"
    else:
        text = f"{seconds * 1e6:.1f} µs"
    return text + ("/task" if unit == "us/task" else "")


def at_most(limit: Union[float, Dict[int, float]], unit: str) -> Target:
    """Target: the value is at most ``limit`` (one limit for all sizes, or one per listed size)."""

    def check(size, value, _values):
        bound = limit if not isinstance(limit, dict) else limit.get(size)
        if bound is None:
            return "—", None
        return f"≤ {format_value(bound, unit)}", value is not None and value <= bound

    return check


def at_least(limit: float, unit: str) -> Target:
    """Target: the value is at least ``limit`` (for factors, where higher is better)."""

    def check(size, value, _values):
        return f"≥ {format_value(limit, unit)}", value is not None and value >= limit

    return check


def near_size(fraction: float) -> Target:
    """Target: a speedup of at least ``fraction`` × the size (e.g. N drivers: about N times faster)."""

    def check(size, value, _values):
        return f"≥ {fraction * size:.2f}× ({fraction:g} × {size})", value is not None and value >= fraction * size

    return check


def flat_in_size(factor: float = 2.0) -> Target:
    """Target: it runs, and the cost per task stays within ``factor`` of the cost at the smallest size."""

    def check(size, value, values):
        base = min(values)
        if size == base:
            return "runs", value is not None
        text = f"runs; ≤ {factor:g}× cost at {base}"
        if value is None or values[base] is None:
            return text, False if value is None else None
        return text, value <= factor * values[base]

    return check


SCENARIOS = [
    Scenario(
        name="build",
        script="bench_build.py",
        sizes=(1000, 2000, 10000, 100000),
        quick_sizes=(100,),
        original_max=2000,  # cubic in the original: N=4000 takes about 106 s
        metrics=(Metric("seconds", "`Flow()` build: grid N={size} → successor → reduce", "s",
                        at_most({1000: 0.020, 100000: 3.0}, "s")),),
    ),
    Scenario(
        name="groupby",
        script="bench_groupby.py",
        sizes=(10, 20),
        quick_sizes=(3,),
        original_max=0,
        original_note="no group-by reduce in 0.3.4",
        metrics=(
            Metric("group_seconds", "`Flow()` build: {size}×{size}×{size} grid → `reduce=\"c\"` (one axis)", "s"),
            Metric("full_seconds", "`Flow()` build: the same {size}×{size}×{size} grid → `reduce=True`", "s"),
            Metric("group_over_full", "{size}×{size}×{size} grid: group-by build / `reduce=True` build", "x",
                   at_most(1.5, "x")),
        ),
    ),
    Scenario(
        name="sequential",
        script="bench_sequential.py",
        sizes=(1000, 10000),
        quick_sizes=(50,),
        original_max=1000,  # about 17 ms per task in the original
        metrics=(Metric("us_per_task", "sequential, in-memory, {size} trivial tasks (wide)", "us/task",
                        at_most(30.0, "us/task")),),
    ),
    Scenario(
        name="import",
        script="bench_import.py",
        sizes=(20,),
        quick_sizes=(5,),
        metrics=(
            Metric("over_bare_seconds", "`from fluidml import Flow, Task, TaskSpec` over `python -c pass` "
                   "(median of {size} interpreters)", "s", at_most(0.060, "s")),
            Metric("bare_seconds", "`python -c pass` (median of {size} interpreters)", "s"),
        ),
    ),
    Scenario(
        name="cli_help",
        script="bench_cli_help.py",
        sizes=(20,),
        quick_sizes=(5,),
        original_max=0,
        original_note="no command in 0.3.4",
        metrics=(
            Metric("over_bare_seconds", "`fluidml --help` over `python -c pass` (median of {size} interpreters)", "s"),
            Metric("bare_seconds", "`python -c pass` (median of {size} interpreters)", "s"),
        ),
    ),
    Scenario(
        name="pool_peers",
        script="bench_pool_peers.py",
        sizes=(200,),
        quick_sizes=(20,),
        original_max=0,
        original_note="peers are run beside this project only",
        metrics=(
            Metric("fluidml_seconds", "{size} trivial tasks on 2 workers, fresh interpreter: fluidml", "s"),
            Metric("joblib_seconds", "the same with joblib (loky)", "s"),
            Metric("multiprocessing_seconds", "the same with a spawn multiprocessing.Pool(2)", "s"),
            Metric("vs_joblib", "{size} tasks on 2 workers: fluidml / joblib (loky)", "x", at_most(1.0, "x")),
            Metric("vs_multiprocessing", "{size} tasks on 2 workers: fluidml / spawn Pool(2)", "x",
                   at_most(2.0, "x")),
        ),
    ),
    Scenario(
        name="worker_memory",
        script="bench_worker_memory.py",
        sizes=(300,),
        quick_sizes=(20,),
        original_max=0,
        original_note="no executor choice in 0.3.4",
        metrics=(
            Metric("workers_peak_ratio", "{size} MB array saved in a worker: calling process's peak / array size",
                   "x", at_most(1.5, "x")),
            Metric("local_peak_ratio", "{size} MB array, run in the calling process: peak / array size", "x"),
        ),
    ),
    Scenario(
        name="chain",
        script="bench_chain.py",
        sizes=(500, 1000, 5000, 10000),
        quick_sizes=(50, 100),
        metrics=(
            Metric("build_us_per_task", "deep chain, depth {size}: build", "us/task", flat_in_size()),
            Metric("run_us_per_task", "deep chain, depth {size}: run", "us/task", flat_in_size()),
        ),
    ),
    Scenario(
        name="parallel",
        script="bench_parallel.py",
        sizes=(200, 2000),
        quick_sizes=(20,),
        original_max=200,  # about 60 ms per task in the original
        metrics=(
            Metric("us_per_task", "2 workers, in-memory, {size} trivial tasks (pool start included)", "us/task",
                   at_most({200: 1000.0}, "us/task")),
            Metric("steady_us_per_task", "2 workers, in-memory, {size} trivial tasks: per task once the pool runs",
                   "us/task"),
            Metric("startup_seconds", "2 workers: run of 2 trivial tasks (pool start and stop; with N={size})", "s",
                   at_most(1.0, "s")),
        ),
    ),
    Scenario(
        name="cpu",
        script="bench_cpu.py",
        sizes=(2,),
        quick_sizes=(1,),
        metrics=(
            Metric("speedup", "{size} workers, 4 × {size} CPU-bound tasks of 0.5 s: speedup over serial", "x",
                   higher_is_better=True),
            Metric("pool_speedup", "{size} workers: the same work on a plain multiprocessing.Pool: speedup", "x",
                   higher_is_better=True),
            Metric("relative_to_pool", "{size} workers: fluidml's speedup / the pool's", "x", at_least(0.95, "x"),
                   higher_is_better=True),
        ),
    ),
    Scenario(
        name="filestore",
        script="bench_filestore.py",
        sizes=(1000,),
        quick_sizes=(20,),
        metrics=(
            Metric("us_per_task", "sequential, `LocalFileStore`, {size} trivial tasks (wide)", "us/task",
                   at_most(1000.0, "us/task")),
            Metric("cached_us_per_task", "fully cached re-run, `LocalFileStore`, {size} tasks", "us/task",
                   at_most(100.0, "us/task")),
            Metric("floor_us_per_task", "(filesystem floor: the same dirs and files with plain `os` calls)",
                   "us/task"),
            Metric("joblib_us_per_task", "`joblib.Memory` caching the same {size} calls (same run)", "us/task"),
            Metric("joblib_cached_us_per_task", "`joblib.Memory`, the {size} calls again (all cached)", "us/task"),
            Metric("first_vs_joblib", "`LocalFileStore` first run / joblib's, per task", "x", at_most(1.0, "x")),
            Metric("cached_speedup_vs_joblib", "cached re-run: joblib's time / `LocalFileStore`'s", "x",
                   at_least(2.0, "x"), higher_is_better=True),
            Metric("verify_us_per_task", "the same first run with `LocalFileStore(verify=True)`", "us/task"),
            Metric("verify_cached_us_per_task", "the cached re-run with `LocalFileStore(verify=True)`", "us/task"),
        ),
    ),
    Scenario(
        name="verify",
        script="bench_verify.py",
        sizes=(10000,),
        quick_sizes=(20,),
        original_max=0,
        original_note="no verify in 0.3.4",
        metrics=(Metric("seconds", "`fluidml.results.verify` of a `LocalFileStore` with {size} runs", "s",
                        at_most(5.0, "s")),),
    ),
    Scenario(
        name="plan",
        script="bench_plan.py",  # the original has no flow.plan()
        sizes=(1000, 10000),
        quick_sizes=(50,),
        original_max=0,
        original_note="no flow.plan() in 0.3.4",
        metrics=(
            Metric("file_config_seconds", "`flow.plan()` of {size} tasks, `LocalFileStore` holding them", "s",
                   at_most({10000: 1.0}, "s")),
            Metric("file_code_seconds", "`flow.plan(cache=\"code\")` of {size} tasks, `LocalFileStore` holding them",
                   "s"),
            Metric("file_ratio", "plan of {size} tasks, `LocalFileStore`: cache=\"code\" / cache=\"config\" (CPU time)",
                   "x",
                   at_most({10000: 1.05}, "x")),
            Metric("memory_config_seconds", "`flow.plan()` of {size} new tasks, empty in-memory store", "s"),
            Metric("memory_ratio", "plan of {size} new tasks, in memory: cache=\"code\" / cache=\"config\" (CPU time)",
                   "x",
                   at_most({10000: 1.05}, "x")),
        ),
    ),
    Scenario(
        name="filestore_array",
        script="bench_filestore_array.py",
        sizes=(200,),
        quick_sizes=(5,),
        metrics=(
            Metric("seconds", "{size} MB numpy array saved + loaded through `LocalFileStore`", "s"),
            Metric("time_ratio", "{size} MB array: time / raw pickle round trip", "x", at_most(1.2, "x")),
            Metric("peak_ratio", "{size} MB array: peak memory added / array size", "x", at_most(1.1, "x")),
            Metric("verify_time_ratio", "{size} MB array with `LocalFileStore(verify=True)`: time / raw pickle", "x"),
        ),
    ),
    Scenario(
        name="mongo",
        script="bench_mongo.py",  # starts its own nx-27017 server
        sizes=(1000,),
        quick_sizes=(20,),
        metrics=(
            Metric("us_per_task", "sequential, `MongoDBStore` (nx-27017), {size} trivial tasks", "us/task"),
            Metric("cached_us_per_task", "fully cached re-run, `MongoDBStore` (nx-27017), {size} tasks", "us/task"),
        ),
    ),
    Scenario(
        name="drivers",
        script="bench_drivers.py",  # driver processes of its own; the original has no claims
        sizes=(2, 3),
        quick_sizes=(2,),
        original_max=0,
        original_note="no claims in 0.3.4: every driver runs every task",
        metrics=(
            Metric("one_seconds", "48 tasks of 0.25 s on a `LocalFileStore`, 1 driver process", "s"),
            Metric("n_seconds", "the same sweep, {size} driver processes started together", "s"),
            Metric("speedup", "{size} drivers on one store: speedup over 1", "x", near_size(0.75),
                   higher_is_better=True),
        ),
    ),
    Scenario(
        name="s3",
        script="bench_s3.py",  # starts its own moto S3 server
        sizes=(1000,),
        quick_sizes=(20,),
        original_max=0,
        original_note="no FsspecStore in 0.3.4",
        metrics=(
            Metric("us_per_task", "sequential, `FsspecStore` (moto S3), {size} trivial tasks", "us/task"),
            Metric("requests_per_task", "`FsspecStore` (moto S3), {size} tasks, first run: HTTP requests",
                   "requests/task"),
            Metric("cached_us_per_task", "fully cached re-run, `FsspecStore` (moto S3), {size} tasks", "us/task"),
            Metric("cached_requests_per_task", "fully cached re-run, {size} tasks: HTTP requests", "requests/task"),
            Metric("cached_list_requests", "fully cached re-run, {size} tasks of 1 task name: LIST requests in all",
                   "requests", at_most(4.0, "requests")),  # index, runs, claims, the damage check's listing
            Metric("damage_list_requests", "`run_damage` of all {size} runs (3 objects each): LIST requests in all",
                   "requests", at_most({20: 4.0, 1000: 6.0}, "requests")),  # 3 + one per 1000 objects
        ),
    ),
    Scenario(
        name="s3_array",
        script="bench_s3_array.py",  # starts its own moto S3 server
        sizes=(200,),
        quick_sizes=(5,),
        original_max=0,
        original_note="no FsspecStore in 0.3.4",
        metrics=(
            Metric("seconds", "{size} MB numpy array saved + loaded through `FsspecStore` (moto S3)", "s"),
            Metric("peak_ratio", "{size} MB array through S3: peak memory added / array size", "x",
                   at_most({200: 1.2}, "x")),
        ),
    ),
    Scenario(
        name="ray",
        script="bench_ray.py",  # needs Ray; the original has no Ray executor
        sizes=(1000,),
        quick_sizes=(20,),
        original_max=0,
        original_note="no Ray executor in 0.3.4",
        metrics=(
            Metric("bare_trivial_us_per_task", "Ray: {size} trivial tasks as bare `ray.remote` calls", "us/task"),
            Metric("ours_trivial_us_per_task", "Ray: {size} trivial tasks as a fluidml flow (`executor=\"ray\"`)",
                   "us/task"),
            Metric("trivial_overhead", "Ray, {size} trivial tasks: our overhead / Ray's own cost", "x",
                   at_most(2.0, "x")),
            Metric("bare_cpu_us_per_task", "Ray: 16 CPU-bound tasks of 0.25 s as bare `ray.remote` calls", "us/task"),
            Metric("ours_cpu_us_per_task", "Ray: 16 CPU-bound tasks of 0.25 s as a fluidml flow", "us/task"),
            Metric("cpu_overhead", "Ray, 16 CPU-bound tasks: our overhead / Ray's own cost", "x", at_most(2.0, "x")),
        ),
    ),
    Scenario(
        name="inspect",
        script="bench_inspect.py",  # the original has no sweep tables and no fluidml command
        sizes=(10000,),
        quick_sizes=(30,),
        original_max=0,
        original_note="no fluidml command in 0.3.4",
        metrics=(
            Metric("help_seconds", "`fluidml --help` (a fresh process)", "s", at_most(0.3, "s")),
            Metric("help_cpu_seconds", "`fluidml --help`: CPU time", "s"),
            Metric("ls_tasks_seconds", "`fluidml ls STORE`, {size} runs of one task", "s"),
            Metric("ls_seconds", "`fluidml ls STORE TASK`, {size} runs", "s", at_most(1.0, "s")),
            Metric("ls_cpu_seconds", "`fluidml ls STORE TASK`, {size} runs: CPU time", "s"),
            Metric("compare_seconds", "`fluidml compare STORE TASK --sort accuracy`, {size} runs", "s",
                   at_most(1.0, "s")),
            Metric("compare_cpu_seconds", "`fluidml compare STORE TASK --sort accuracy`, {size} runs: CPU time", "s"),
            Metric("compare_csv_seconds", "the same compare, every row as CSV", "s"),
            Metric("table_seconds", "`sweep_rows` over {size} runs (3 objects each; 2 loaded)", "s"),
            Metric("largest_object_read_mb", "largest object a sweep table over {size} runs read (MB; 2 MB models "
                   "stored)", "x", at_most(1.0, "x")),
        ),
    ),
    Scenario(
        name="slurm",
        script="bench_slurm.py",  # starts its own single-node cluster (root, Debian's slurm-wlm and munge)
        sizes=(100,),
        quick_sizes=(5,),
        original_max=0,
        original_note="no Slurm executor in 0.3.4",
        metrics=(
            Metric("bare_seconds", "Slurm: {size} bare `sbatch` jobs of `python -c pass`, submission to last one done",
                   "s"),
            Metric("ours_seconds", "Slurm: {size} trivial tasks as a fluidml flow (`executor=\"slurm\"`), run() to "
                   "its return", "s"),
            Metric("ratio", "Slurm, {size} trivial tasks: fluidml / bare `sbatch` jobs", "x", at_most(1.5, "x")),
            Metric("job_import_cpu_seconds", "Slurm: CPU a job spends importing fluidml (`python -c pass`: "
                   "see the next row)", "s"),
            Metric("bare_python_cpu_seconds", "Slurm: CPU of `python -c pass`", "s"),
        ),
    ),
    Scenario(
        name="warm_pool",
        script="bench_warm_pool.py",  # joblib's reused loky executor is the peer (the original has no pool)
        sizes=(1000,),
        quick_sizes=(50,),
        original_max=0,
        original_note="no warm pool in 0.3.4",
        metrics=(
            Metric("in_process_us_per_task", "{size} trivial tasks in this process (`num_workers=1`)", "us/task"),
            Metric("round_trip_us", "a pipe round trip to a spawned process (small message)", "us/task"),
            Metric("warm_pool_2_us_per_task", "{size} trivial tasks, second run on a `WorkerPool(2)`", "us/task"),
            Metric("warm_pool_1_us_per_task", "{size} trivial tasks, second run on a `WorkerPool(1)`", "us/task"),
            Metric("first_run_2_us_per_task", "{size} trivial tasks, first run on a `WorkerPool(2)` (start-up "
                   "included)", "us/task"),
            Metric("per_run_2_us_per_task", "{size} trivial tasks, `num_workers=2` (workers started for the run)",
                   "us/task"),
            Metric("warm_speedup", "`num_workers=2` run / second run on a `WorkerPool(2)`", "x"),
            Metric("ratio_2", "`WorkerPool(2)`, second run / (in process + round trip)", "x", at_most(1.2, "x")),
            Metric("ratio_1", "`WorkerPool(1)`, second run / (in process + round trip)", "x", at_most(1.2, "x")),
            Metric("joblib_parallel_us_per_task", "peer: joblib `Parallel(n_jobs=2)` (loky, reused), second call",
                   "us/task"),
            Metric("loky_map_us_per_task", "peer: loky's reused executor, `map` (one task per message)", "us/task"),
        ),
    ),
]
