"""Helpers shared by the scenario scripts: arguments, best-of-N timing and the JSON result line."""

import argparse
import gc
import json
import time
from typing import Any, Callable, Dict, Tuple

REPEATS = 5  # most trials per run; the best is kept
BUDGET = 2.0  # seconds of trials after which no more are started

Trial = Callable[[], Tuple[Dict[str, float], Dict[str, Any]]]


def parse_args(description: str, size_help: str) -> argparse.Namespace:
    """The scenario size (positional) plus how often to repeat short runs."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("size", type=int, help=size_help)
    parser.add_argument("--repeats", type=int, default=REPEATS, help="most trials to run; the best is kept")
    parser.add_argument("--budget", type=float, default=BUDGET,
                        help="stop repeating once the trials took this many seconds in all")
    return parser.parse_args()


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Tuple[float, Any]:
    """(seconds fn took, its return value), timed with time.perf_counter."""
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - start, value


def best_of(trial: Trial, repeats: int, budget: float) -> Dict[str, Any]:
    """Runs ``trial`` (returning timings in seconds and other facts) up to ``repeats`` times, stopping
    early once ``budget`` seconds are spent. Gives each timing's minimum, the last facts and "repeats"."""
    best: Dict[str, float] = {}
    spent, count, facts = 0.0, 0, {}
    while count < max(repeats, 1) and (count == 0 or spent < budget):
        gc.collect()  # garbage of the previous trial is not collected inside this one's timings
        timings, facts = trial()
        for key, seconds in timings.items():
            best[key] = min(seconds, best.get(key, seconds))
        spent += sum(timings.values())
        count += 1
    return {**best, **facts, "repeats": count}


def emit(result: Dict[str, Any]) -> None:
    """Prints the result as the last stdout line: the runner reads exactly this line."""
    print(json.dumps(result), flush=True)
