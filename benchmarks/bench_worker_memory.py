"""Memory of the calling process when a task in a worker process saves a large numpy array into the
default in-memory store and a successor (also in a worker) reads it: the peak RSS the run adds
(VmHWM after clear_refs) over the array's size, beside the same flow run in the calling process.
SIZE is in MB. Each case runs in a fresh interpreter."""

import json
import subprocess
import sys

from _common import emit, parse_args

CASE = '''
import json, sys
import numpy as np
from fluidml import Flow, Task, TaskSpec

def rss_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])

def make(mb: int, task: Task):
    task.save(np.ones(mb * 2**20 // 8), "array")

def use(array, task: Task):
    task.save(float(array[:10].sum()), "head")

if __name__ == "__main__":
    mb, executor = int(sys.argv[1]), sys.argv[2]
    produce = TaskSpec(task=make, config={"mb": mb})
    consume = TaskSpec(task=use)
    consume.requires(produce)
    flow = Flow([produce, consume])
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = rss_kb("VmRSS")
    results = flow.run(executor=executor, num_workers=1 if executor == "local" else 2, progress=False,
                       return_results="all")
    assert results["use"][0].results["head"] == 10.0
    print(json.dumps({"added_mb": (rss_kb("VmHWM") - before) / 1024}))
'''


def run_case(mb: int, executor: str) -> float:
    done = subprocess.run([sys.executable, "-c", CASE, str(mb), executor], capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])["added_mb"]


def main() -> None:
    args = parse_args(__doc__, "array size in MB")
    workers = run_case(args.size, "processes")
    local = run_case(args.size, "local")
    emit({"scenario": "worker_memory", "array_mb": args.size, "num_tasks": 2, "workers_added_mb": workers,
          "local_added_mb": local, "workers_peak_ratio": workers / args.size, "local_peak_ratio": local / args.size})


if __name__ == "__main__":
    main()
