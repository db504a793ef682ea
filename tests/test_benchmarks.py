"""The benchmark scripts keep working (a smoke run at small sizes; no timing is asserted)."""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_quick_benchmark_run_reports_every_scenario(tmp_path):
    """`benchmarks/run.py --quick` runs each scenario with this project and reports its numbers."""
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| scenario | original 0.3.4 | this project |" in proc.stdout
    runs = json.loads(out.read_text())["runs"]
    ours = [r for r in runs if r["impl"] == "ours"]
    assert {r["scenario"] for r in ours} >= {"build", "sequential", "chain", "filestore", "filestore_array"}
    assert all(r["status"] == "ok" for r in ours)
    assert all(r["data"]["num_tasks"] > 0 for r in ours)
