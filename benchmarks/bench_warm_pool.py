"""N trivial tasks on warm workers: the second ``flow.run(executor=pool)`` on a ``fluidml.WorkerPool``
(2 workers, and 1), against the same flow run in this process (``num_workers=1``), on workers started
for the run (``num_workers=2``, start-up included), and a measured pipe
round trip to a spawned process (a small message there and back); the target compares the pool's
cost per task with (in-process cost + one round trip). The peer in the same run: joblib's loky
executor, reused (its second call), through ``Parallel(n_jobs=2)`` (auto batching) and through the
executor's ``map`` (one task per message, as fluidml sends them). Best of several runs each."""

import multiprocessing
import time
from typing import Any, Dict, Optional

from _common import best_of, emit, parse_args, timed

import fluidml
from fluidml import Flow, Task, TaskSpec


def tiny(x: int, task: Task) -> None:
    task.save(x, "value")


def square(x: int) -> int:
    return x * x


def echo(conn: Any) -> None:
    while True:
        message = conn.recv()
        if message is None:
            return
        conn.send(message)


def round_trip_seconds(n: int) -> float:
    """Seconds per round trip of a small message to a spawned process over a duplex pipe."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe(duplex=True)
    process = context.Process(target=echo, args=(theirs,))
    process.start()
    try:
        ours.send(("warm", 0))
        ours.recv()
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for i in range(n):
                ours.send(("job", i, b"x" * 64))
                ours.recv()
            best = min(best, (time.perf_counter() - start) / n)
        return best
    finally:
        ours.send(None)
        process.join()


def joblib_seconds(n: int) -> Dict[str, Optional[float]]:
    """Second calls on joblib's reused loky executor (2 workers): Parallel, and executor.map."""
    try:
        from joblib import Parallel, delayed
        from joblib.externals.loky import get_reusable_executor
    except ImportError:
        return {"joblib_parallel": None, "loky_map": None}
    Parallel(n_jobs=2, backend="loky")(delayed(square)(x) for x in range(n))  # starts the workers
    parallel = min(timed(lambda: Parallel(n_jobs=2, backend="loky")(delayed(square)(x) for x in range(n)))[0]
                   for _ in range(3))
    executor = get_reusable_executor(max_workers=2)
    list(executor.map(square, range(n)))
    loky_map = min(timed(lambda: list(executor.map(square, range(n))))[0] for _ in range(3))
    return {"joblib_parallel": parallel, "loky_map": loky_map}


def main() -> None:
    args = parse_args(__doc__, "number of trivial tasks N")
    n = args.size
    flow = Flow([TaskSpec(task=tiny, config={"x": list(range(n))}, expand="product")])

    def in_process():
        seconds, _ = timed(flow.run, num_workers=1, progress=False)
        return {"in_process": seconds}, {}

    def per_run_workers():
        seconds, _ = timed(flow.run, num_workers=2, progress=False)
        return {"per_run_2": seconds}, {}

    result: Dict[str, Any] = best_of(in_process, args.repeats, args.budget)
    result.update(best_of(per_run_workers, min(args.repeats, 3), args.budget))
    for workers in (2, 1):
        with fluidml.WorkerPool(workers) as pool:
            first, _ = timed(flow.run, executor=pool, progress=False)

            def second_run():
                seconds, _ = timed(flow.run, executor=pool, progress=False)
                return {f"warm_{workers}": seconds}, {f"first_{workers}": first}

            result.update(best_of(second_run, args.repeats, args.budget))
    result["round_trip"] = round_trip_seconds(n)
    result.update(joblib_seconds(n))
    per_task = {key: (value * 1e6 / n if value is not None else None) for key, value in result.items()
                if key in ("in_process", "per_run_2", "warm_2", "warm_1", "first_2", "first_1", "joblib_parallel", "loky_map")}
    round_trip_us = result["round_trip"] * 1e6
    baseline = per_task["in_process"] + round_trip_us
    emit({
        "scenario": "warm_pool", "num_tasks": n,
        "in_process_us_per_task": per_task["in_process"],
        "round_trip_us": round_trip_us,
        "warm_pool_2_us_per_task": per_task["warm_2"],
        "warm_pool_1_us_per_task": per_task["warm_1"],
        "first_run_2_us_per_task": per_task["first_2"],
        "per_run_2_us_per_task": per_task["per_run_2"],
        "warm_speedup": per_task["per_run_2"] / per_task["warm_2"],
        "ratio_2": per_task["warm_2"] / baseline,
        "ratio_1": per_task["warm_1"] / baseline,
        "joblib_parallel_us_per_task": per_task["joblib_parallel"],
        "loky_map_us_per_task": per_task["loky_map"],
    })


if __name__ == "__main__":
    main()
