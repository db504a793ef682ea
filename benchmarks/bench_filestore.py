"""LocalFileStore, sequential: N independent trivial tasks (a product grid) that each save a tiny value,
run with flow.run(num_workers=1) into a fresh store directory; then the same flow again on the same
store, where every task is already executed (the fully cached re-run).

In the same trial, for comparison:
- ``joblib.Memory`` caching the same N calls of a trivial function into a fresh directory, then the
  same N calls again (all cached); skipped where joblib is not installed;
- the same two fluidml runs with ``LocalFileStore(verify=True)`` (checksums checked on every load),
  where the store has that option;
- the filesystem floor: the files one such task leaves in the current layout (a run directory with
  config.json, the object and fluidml_info.json, each written to a temporary name and renamed) made
  with plain os calls, no fluidml. On a busy disk that floor moves a lot; compare within one run."""

import inspect
import os
import shutil
import tempfile
import time
from typing import Any, Dict, Optional

from fluidml import Flow, Task, TaskSpec
from fluidml.storage import LocalFileStore

from _common import best_of, emit, parse_args, timed

try:
    import joblib
except ImportError:  # e.g. the original's venv
    joblib = None

VERIFY = "verify" in inspect.signature(LocalFileStore.__init__).parameters


def tiny(x: int, task: Task):
    task.save(x, "value", type_="pickle")  # the original needs a type


def plain(x: int) -> int:
    return x


def fluidml_runs(size: int, **store_options: Any) -> Dict[str, float]:
    base_dir = tempfile.mkdtemp(prefix="fluidml-bench-store-", dir=".")
    try:
        flow = Flow([TaskSpec(task=tiny, config={"x": list(range(size))}, expand="product")])
        first, _ = timed(flow.run, num_workers=1, run_name="bench",
                         results_store=LocalFileStore(base_dir, **store_options))
        flow = Flow([TaskSpec(task=tiny, config={"x": list(range(size))}, expand="product")])
        cached, _ = timed(flow.run, num_workers=1, run_name="again",
                          results_store=LocalFileStore(base_dir, **store_options))
        return {"first": first, "cached": cached}
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)


def joblib_runs(size: int) -> Optional[Dict[str, float]]:
    if joblib is None:
        return None
    base_dir = tempfile.mkdtemp(prefix="fluidml-bench-joblib-", dir=".")
    try:
        cached_plain = joblib.Memory(base_dir, verbose=0).cache(plain)
        start = time.perf_counter()
        for x in range(size):
            cached_plain(x)
        first = time.perf_counter() - start
        cached_plain = joblib.Memory(base_dir, verbose=0).cache(plain)
        start = time.perf_counter()
        for x in range(size):
            cached_plain(x)
        return {"first": first, "cached": time.perf_counter() - start}
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)


def floor_trial(size: int) -> float:
    base_dir = tempfile.mkdtemp(prefix="fluidml-bench-floor-", dir=".")
    try:
        start = time.perf_counter()
        for i in range(size):
            run = os.path.join(base_dir, f"bench-{i:03d}")
            os.mkdir(run)
            for name in ("config.json", "value.p", "fluidml_info.json"):
                temp = os.path.join(run, ".~tmp")
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                os.write(fd, b"{}")
                os.close(fd)
                os.replace(temp, os.path.join(run, name))
        return time.perf_counter() - start
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)


def main() -> None:
    args = parse_args(__doc__, "number of tasks N")

    def trial():
        timings = {}
        ours = fluidml_runs(args.size)
        timings.update(seconds=ours["first"], cached_seconds=ours["cached"])
        other = joblib_runs(args.size)
        if other is not None:
            timings.update(joblib_seconds=other["first"], joblib_cached_seconds=other["cached"])
        if VERIFY:
            verified = fluidml_runs(args.size, verify=True)
            timings.update(verify_seconds=verified["first"], verify_cached_seconds=verified["cached"])
        timings["floor_seconds"] = floor_trial(args.size)
        return timings, {"num_tasks": args.size}

    result = best_of(trial, args.repeats, args.budget * 3)  # a trial takes ~1 s: a few, against disk noise
    n = result["num_tasks"]
    for key in ("", "cached_", "joblib_", "joblib_cached_", "verify_", "verify_cached_", "floor_"):
        if f"{key}seconds" in result:
            result[f"{key}us_per_task"] = result[f"{key}seconds"] / n * 1e6
    if "joblib_seconds" in result:
        result["first_vs_joblib"] = result["seconds"] / result["joblib_seconds"]
        result["cached_speedup_vs_joblib"] = result["joblib_cached_seconds"] / result["cached_seconds"]
    if "verify_seconds" in result:
        result["verify_cost"] = result["verify_seconds"] / result["seconds"] - 1
        result["verify_cached_cost"] = result["verify_cached_seconds"] / result["cached_seconds"] - 1
    emit({"scenario": "filestore", "n": args.size, **result})


if __name__ == "__main__":
    main()
