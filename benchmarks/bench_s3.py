"""FsspecStore on a local S3 server (moto in server mode, started by the script on a free 127.0.0.1 port,
through the real s3fs client): N independent trivial tasks run sequentially into a fresh prefix, then
the same flow again, fully cached, by a new store object (as a new process would). Reports the time
per task of each and the HTTP requests each made, counted from the server's request log by kind, and
the requests of checking all N runs for damage (``run_damage``, as a planner does on a cached re-run)."""

import sys
import tempfile
from pathlib import Path

from fluidml import Flow, Task, TaskSpec
from fluidml.storage import FsspecStore

from _common import best_of, emit, parse_args, timed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from s3_server import S3TestServer  # noqa: E402  (the tests' server helper)


def tiny(x: int, task: Task):
    task.save(x, "value")


def main() -> None:
    args = parse_args(__doc__, "number of tasks N")
    trials = iter(range(1000))
    with tempfile.TemporaryDirectory(prefix="fluidml-bench-s3-") as work:
        with S3TestServer(Path(work) / "requests.log") as server:
            server.make_bucket("bench")

            def trial():
                url = f"s3://bench/trial-{next(trials)}"
                flow = Flow([TaskSpec(task=tiny, config={"x": list(range(args.size))}, expand="product")])
                mark = server.log_size()
                first, _ = timed(flow.run, num_workers=1, run_name="bench", results_store=FsspecStore(url, **server.options()))
                first_requests = server.requests(mark)
                mark = server.log_size()
                cached, _ = timed(flow.run, num_workers=1, run_name="bench",
                                  results_store=FsspecStore(url, **server.options()))
                cached_requests = server.requests(mark)
                checker = FsspecStore(url, **server.options())
                mark = server.log_size()
                damaged = [d for x in range(args.size) for d in checker.run_damage("tiny", {"tiny": {"x": x}})]
                assert damaged == []
                damage_requests = server.requests(mark)
                return {"seconds": first, "cached_seconds": cached}, {
                    "num_tasks": flow.num_tasks, "first_requests": first_requests, "cached_requests": cached_requests,
                    "damage_requests": damage_requests}

            result = best_of(trial, args.repeats, args.budget)
    n = result["num_tasks"]
    result["us_per_task"] = result["seconds"] / n * 1e6
    result["cached_us_per_task"] = result["cached_seconds"] / n * 1e6
    result["requests_per_task"] = sum(result["first_requests"].values()) / n
    result["cached_requests_per_task"] = sum(result["cached_requests"].values()) / n
    result["cached_list_requests"] = result["cached_requests"].get("LIST", 0)
    result["damage_list_requests"] = result["damage_requests"].get("LIST", 0)
    emit({"scenario": "s3", "n": args.size, **result})


if __name__ == "__main__":
    main()
