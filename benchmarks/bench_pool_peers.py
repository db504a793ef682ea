"""Whole-process cost of N trivial tasks on 2 workers, start-up included: a fresh interpreter runs
the work with fluidml (flow.run(num_workers=2)), with joblib's loky backend, and with a raw spawn
``multiprocessing.Pool(2)``; each case is timed from starting the interpreter to its exit,
interleaved, best of 3. A peer that is not installed is reported as null."""

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional

from _common import emit, parse_args

FLUIDML = '''
from fluidml import Flow, Task, TaskSpec

def tiny(x: int, task: Task):
    task.save(x, "value")

if __name__ == "__main__":
    flow = Flow([TaskSpec(task=tiny, config={"x": list(range({n}))}, expand="product")])
    flow.run(num_workers=2, run_name="bench")
'''

JOBLIB = '''
from joblib import Parallel, delayed

def tiny(x):
    return x

if __name__ == "__main__":
    Parallel(n_jobs=2, backend="loky")(delayed(tiny)(x) for x in range({n}))
'''

MULTIPROCESSING = '''
import multiprocessing

def tiny(x):
    return x

if __name__ == "__main__":
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(tiny, range({n}), chunksize=1)
'''

CASES = {"fluidml": FLUIDML, "joblib": JOBLIB, "multiprocessing": MULTIPROCESSING}
PROBES = {"fluidml": "import fluidml", "joblib": "import joblib", "multiprocessing": "pass"}


def run_once(script: Path) -> Optional[float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{script.name} failed:\n{done.stderr[-2000:]}")
    return seconds


def available(module_probe: str) -> bool:
    return subprocess.run([sys.executable, "-c", module_probe], capture_output=True).returncode == 0


def main() -> None:
    args = parse_args(__doc__, "number of tasks N")
    best: Dict[str, Optional[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        scripts = {}
        for name, text in CASES.items():
            if available(PROBES[name]):
                scripts[name] = Path(tmp) / f"peer_{name}.py"
                scripts[name].write_text(text.replace("{n}", str(args.size)))
            else:
                best[name] = None
        for _ in range(min(args.repeats, 3)):
            for name, script in scripts.items():
                seconds = run_once(script)
                best[name] = min(seconds, best.get(name) or seconds)
    result = {f"{name}_seconds": value for name, value in best.items()}
    ours, joblib, raw = best.get("fluidml"), best.get("joblib"), best.get("multiprocessing")
    result["vs_joblib"] = ours / joblib if ours and joblib else None
    result["vs_multiprocessing"] = ours / raw if ours and raw else None
    emit({"scenario": "pool_peers", "n": args.size, "num_tasks": args.size, **result})


if __name__ == "__main__":
    main()
