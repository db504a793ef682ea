"""CPU-bound tasks on W workers: 4 * W tasks of about 0.5 s each, run by fluidml and by a plain
multiprocessing.Pool (spawn) in the same process, interleaved, best of 3 each. Reports the speedup
over serial work of both, and fluidml's speedup relative to the pool's (1.0 = as good as the pool).
W=1 is a smoke run with tasks of 0.05 s."""

import multiprocessing

from fluidml import Flow, Task, TaskSpec

from _common import emit, parse_args, timed

TASK_SECONDS = 0.5


def spin(loops: int) -> int:
    total = 0
    for i in range(loops):
        total += i * i
    return total


def calibrate(task_seconds: float) -> int:
    """The loop count that makes spin() last about ``task_seconds`` here."""
    loops = 100_000
    while True:
        seconds, _ = timed(spin, loops)
        if seconds > 0.05:
            return int(loops * task_seconds / seconds)
        loops *= 2


def burn(loops: int, index: int, task: Task):
    task.save(spin(loops), "total")


def main() -> None:
    args = parse_args(__doc__, "number of workers W")
    workers = args.size
    loops = calibrate(TASK_SECONDS if workers > 1 else 0.05)
    num_tasks = 4 * workers
    serial, _ = timed(lambda: [spin(loops) for _ in range(2)])
    serial *= num_tasks / 2  # the serial time of all the work, from two measured calls

    def pool_run() -> None:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            pool.map(spin, [loops] * num_tasks)

    def flow_run() -> None:
        flow = Flow([TaskSpec(task=burn, config={"loops": loops, "index": list(range(num_tasks))},
                              expand="product")])
        flow.run(num_workers=workers, run_name="bench")

    pool_seconds = ours_seconds = float("inf")
    repeats = min(args.repeats, 3)
    for _ in range(repeats):  # interleaved, best of each: both see the same machine
        pool_seconds = min(pool_seconds, timed(pool_run)[0])
        ours_seconds = min(ours_seconds, timed(flow_run)[0])
    emit({"scenario": "cpu", "n": workers, "num_tasks": num_tasks, "serial_seconds": serial,
          "pool_seconds": pool_seconds, "seconds": ours_seconds, "pool_speedup": serial / pool_seconds,
          "speedup": serial / ours_seconds, "relative_to_pool": pool_seconds / ours_seconds, "repeats": repeats})

if __name__ == "__main__":
    main()
