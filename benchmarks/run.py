"""Runs every benchmark scenario under the original fluidml 0.3.4 and under this project, each run in
its own subprocess with a time limit, and prints machine info and one markdown table comparing them.

    python benchmarks/run.py --original /tmp/orig/bin/python [--quick] [--json results.json]
"""

import argparse
import datetime
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from _common import BUDGET, REPEATS
from scenarios import SCENARIOS, Metric, Scenario, format_value

HERE = Path(__file__).resolve().parent
IMPLS = {"original": "original 0.3.4", "ours": "this project"}
ERROR_NAME = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit))\b")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original", default=os.environ.get("FLUIDML_ORIGINAL_PYTHON"),
                        help="python of a venv with fluidml==0.3.4 (default: $FLUIDML_ORIGINAL_PYTHON); "
                             "without it only this project is run")
    parser.add_argument("--ours", default=sys.executable, help="python with this project installed")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a few seconds")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per scenario run")
    parser.add_argument("--only", action="append", choices=[s.name for s in SCENARIOS],
                        help="run only this scenario (repeatable)")
    parser.add_argument("--json", type=Path, help="also write all results to this JSON file")
    return parser.parse_args()


def clean_env() -> Dict[str, str]:
    """The environment without PYTHONPATH, so each interpreter imports its own fluidml."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def probe(python: str) -> Dict[str, str]:
    """Python version, fluidml version and fluidml's location under an interpreter."""
    code = ("import sys, importlib.metadata as m, fluidml; "
            "print(sys.version.split()[0], m.version('fluidml'), fluidml.__file__)")
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, env=clean_env(), timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        return {"error": str(error)}
    if done.returncode != 0:
        return {"error": last_line(done.stderr)}
    version, fluidml_version, location = done.stdout.split(maxsplit=2)
    return {"python": version, "fluidml": fluidml_version, "location": location.strip()}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def revision() -> str:
    """The git revision of this checkout ("+ changes" if the tree is dirty), or "unknown"."""
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty=+changes"], cwd=HERE,
                              capture_output=True, text=True, timeout=30)
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


def machine_info(pythons: Dict[str, str]) -> Dict:
    return {
        "revision": revision(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "interpreters": {impl: {"path": py, **probe(py)} for impl, py in pythons.items()},
    }


def run_script(python: str, script: str, size: int, timeout: float) -> Dict:
    """Runs one scenario script in a fresh process group and temporary directory."""
    with tempfile.TemporaryDirectory(prefix="fluidml-bench-") as workdir:
        start = time.perf_counter()
        proc = subprocess.Popen([python, str(HERE / script), str(size)], cwd=workdir, env=clean_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return {"status": "timeout", "note": f"> {timeout:g} s"}
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        names = [m.group(1) for m in map(ERROR_NAME.match, stderr.splitlines()) if m]
        note = names[-1] if names else (f"signal {-proc.returncode}" if proc.returncode < 0
                                        else f"exit code {proc.returncode}")
        return {"status": "crashed", "note": note, "stderr_tail": stderr[-2000:], "wall_seconds": wall}
    try:
        return {"status": "ok", "data": json.loads(last_line(stdout)), "wall_seconds": wall}
    except ValueError:
        return {"status": "crashed", "note": "no JSON result line", "stdout_tail": stdout[-2000:]}


def collect(scenarios: List[Scenario], pythons: Dict[str, str], quick: bool, timeout: float) -> Dict:
    """Outcomes keyed by (scenario name, size, impl). After a crash or timeout, larger sizes of the
    same scenario are not run for that implementation."""
    outcomes = {}
    for scenario in scenarios:
        failed: Dict[str, str] = {}
        for size in scenario.quick_sizes if quick else scenario.sizes:
            for impl in IMPLS:
                if impl not in pythons:
                    outcome = {"status": "not run", "note": "no --original"}
                elif impl == "original" and scenario.original_max is not None and size > scenario.original_max:
                    outcome = {"status": "not run", "note": scenario.original_note}
                elif impl in failed:
                    outcome = {"status": "not run", "note": failed[impl]}
                else:
                    print(f"[{scenario.name} {size}] {IMPLS[impl]} ...", end=" ", file=sys.stderr, flush=True)
                    outcome = run_script(pythons[impl], scenario.script, size, timeout)
                    print(outcome["status"], outcome.get("note", f"{outcome.get('wall_seconds', 0):.1f} s"),
                          file=sys.stderr, flush=True)
                    if outcome["status"] != "ok":
                        failed[impl] = f"{outcome['status']} at {size}"
                outcomes[scenario.name, size, impl] = outcome
    return outcomes


def value_of(outcome: Dict, metric: Metric) -> Optional[float]:
    return outcome["data"].get(metric.key) if outcome["status"] == "ok" else None


def cell(outcome: Dict, metric: Metric) -> str:
    value = value_of(outcome, metric)
    if value is not None:
        return format_value(value, metric.unit)
    return f"{outcome['status']} ({outcome.get('note', 'no value')})"


def ratio(original: Optional[float], ours: Optional[float], higher_is_better: bool = False) -> str:
    """original / ours, as "87x faster" or "1.5x slower" (ours / original where higher is better)."""
    if not original or not ours:
        return "—"
    factor = ours / original if higher_is_better else original / ours
    if factor >= 1:
        return f"{factor:.0f}x faster" if factor >= 10 else f"{factor:.1f}x faster"
    return f"{1 / factor:.1f}x slower"


def table_rows(scenarios: List[Scenario], outcomes: Dict, quick: bool) -> List[Dict[str, str]]:
    rows = []
    for scenario in scenarios:
        sizes = scenario.quick_sizes if quick else scenario.sizes
        for metric in scenario.metrics:
            ours_values = {size: value_of(outcomes[scenario.name, size, "ours"], metric) for size in sizes}
            for size in sizes:
                original = outcomes[scenario.name, size, "original"]
                target, met = metric.target(size, ours_values[size], ours_values) if metric.target else ("—", None)
                rows.append({
                    "scenario": metric.label.format(size=size),
                    "original 0.3.4": cell(original, metric),
                    "this project": cell(outcomes[scenario.name, size, "ours"], metric),
                    "ratio (original/ours)": ratio(value_of(original, metric), ours_values[size],
                                                   metric.higher_is_better),
                    "target": target,
                    "met?": {True: "yes", False: "no", None: "—"}[met],
                })
    return rows


def markdown(rows: List[Dict[str, str]]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row[column] for column in header) + " |" for row in rows]
    return "\n".join(lines)


def describe(info: Dict, args: argparse.Namespace) -> str:
    lines = [f"- CPU: {info['cpu']} ({info['cores']} cores), {info['platform']}", f"- date: {info['date']}"]
    for impl, title in IMPLS.items():
        interp = info["interpreters"].get(impl)
        if interp is None:
            lines.append(f"- {title}: not run (give --original PATH or set FLUIDML_ORIGINAL_PYTHON)")
        elif "error" in interp:
            lines.append(f"- {title}: {interp['path']} (probe failed: {interp['error']})")
        else:
            lines.append(f"- {title}: {interp['path']} (Python {interp['python']}, "
                         f"fluidml {interp['fluidml']} from {interp['location']})")
    lines.append(f"- this project's checkout: git {info['revision']}")
    lines.append(f"- sizes: {'quick' if args.quick else 'full'}; limit {args.timeout:g} s per run; each "
                 f"figure is the best of up to {REPEATS} repeats within {BUDGET:g} s, in a fresh process")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    pythons = {"ours": args.ours}
    if args.original:
        pythons = {"original": args.original, **pythons}
    scenarios = [s for s in SCENARIOS if not args.only or s.name in args.only]
    info = machine_info(pythons)
    outcomes = collect(scenarios, pythons, args.quick, args.timeout)
    rows = table_rows(scenarios, outcomes, args.quick)
    print(describe(info, args) + "\n\n" + markdown(rows))
    if args.json:
        runs = [{"scenario": name, "size": size, "impl": impl, **outcome}
                for (name, size, impl), outcome in outcomes.items()]
        args.json.write_text(json.dumps({"machine": info, "quick": args.quick, "timeout": args.timeout,
                                         "runs": runs, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
