"""Start-up cost of ``from fluidml import Flow, Task, TaskSpec``: the median wall time of N fresh
interpreters running it, minus the median of N running ``python -c pass`` (interleaved). Byte code
is written and used as in an installed package (PYTHONDONTWRITEBYTECODE is dropped; one warm-up)."""

import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List

from _common import emit, parse_args

STATEMENT = "from fluidml import Flow, Task, TaskSpec"


def child_env() -> Dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def start_up(argv: List[str], runs: int) -> Dict[str, float]:
    """Median seconds of ``python <argv>`` and of ``python -c pass``, and the difference."""
    env = child_env()
    subprocess.run([sys.executable, *argv], env=env, check=True, capture_output=True)  # writes byte code
    ours: List[float] = []
    bare: List[float] = []
    for _ in range(runs):
        for command, times in ((argv, ours), (["-c", "pass"], bare)):
            start = time.perf_counter()
            subprocess.run([sys.executable, *command], env=env, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
    median, bare_median = statistics.median(ours), statistics.median(bare)
    return {"seconds": median, "bare_seconds": bare_median, "over_bare_seconds": median - bare_median}


def main() -> None:
    args = parse_args(__doc__, "number of fresh interpreters N")
    emit({"scenario": "import", "n": args.size, **start_up(["-c", STATEMENT], args.size)})


if __name__ == "__main__":
    main()
