"""The benchmark scripts keep working (a smoke run at small sizes; no timing is asserted)."""

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: Scenarios that start a MongoDB test server: smoke-tested under the "mongo" mark.
MONGO_SCENARIOS = ["mongo"]
#: Scenarios that start a moto S3 server: smoke-tested under the "s3" mark.
S3_SCENARIOS = ["s3", "s3_array"]
#: Scenarios that start a Slurm cluster: smoke-tested under the "slurm" mark.
SLURM_SCENARIOS = ["slurm"]
#: Scenarios that time interpreter start-up (`import fluidml`, `fluidml --help`) and run no task.
START_UP_SCENARIOS = ["import", "cli_help"]


def quick_run(tmp_path, only=()):
    """The runs of ours in `benchmarks/run.py --quick` (limited to ``only`` if given)."""
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--json", str(out),
         *[f"--only={name}" for name in only]],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| scenario | original 0.3.4 | this project |" in proc.stdout
    runs = json.loads(out.read_text())["runs"]
    return [r for r in runs if r["impl"] == "ours"]


def test_quick_benchmark_run_reports_every_scenario(tmp_path):
    """`benchmarks/run.py --quick` runs each scenario with this project and reports its numbers."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from scenarios import SCENARIOS
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    names = [s.name for s in SCENARIOS if s.name not in MONGO_SCENARIOS + S3_SCENARIOS + SLURM_SCENARIOS]
    ours = quick_run(tmp_path, names)
    assert {r["scenario"] for r in ours} == set(names)
    assert all(r["status"] == "ok" for r in ours)
    assert all(r["data"]["num_tasks"] > 0 for r in ours if r["scenario"] not in START_UP_SCENARIOS)
    start_up = [r for r in ours if r["scenario"] in START_UP_SCENARIOS]  # (interpreters started, no tasks)
    assert len(start_up) == 2 and all(r["data"]["bare_seconds"] > 0 and "over_bare_seconds" in r["data"]
                                      for r in start_up)


@pytest.mark.mongo
def test_quick_mongo_benchmark_runs_against_its_own_server(tmp_path):
    """The MongoDBStore scenario starts nx-27017 itself and reports first-run and cached figures."""
    ours = quick_run(tmp_path, MONGO_SCENARIOS)
    assert [r["status"] for r in ours] == ["ok"]
    data = ours[0]["data"]
    assert data["num_tasks"] == 20 and data["us_per_task"] > 0 and data["cached_us_per_task"] > 0


@pytest.mark.s3
def test_quick_s3_benchmarks_count_requests_against_their_own_server(tmp_path):
    """The FsspecStore scenarios start moto themselves; a cached re-run lists O(task names), not per task."""
    ours = {r["scenario"]: r for r in quick_run(tmp_path, S3_SCENARIOS)}
    assert [ours[name]["status"] for name in S3_SCENARIOS] == ["ok", "ok"]
    data = ours["s3"]["data"]
    assert data["num_tasks"] == 20 and data["cached_list_requests"] <= 4 and data["damage_list_requests"] <= 4
    assert data["cached_requests"]["GET"] == 20 and data["requests_per_task"] > 1
    assert ours["s3_array"]["data"]["array_mb"] == 5.0


@pytest.mark.slurm
def test_quick_slurm_benchmark_runs_on_its_own_cluster(tmp_path):
    """The Slurm scenario starts a single-node cluster itself and reports both timings and their ratio."""
    from slurm_cluster import missing_programs

    missing = missing_programs()
    if missing:
        pytest.skip(f"a Slurm cluster needs {', '.join(missing)}, missing on this machine")
    ours = quick_run(tmp_path, SLURM_SCENARIOS)
    assert [r["status"] for r in ours] == ["ok"], ours
    data = ours[0]["data"]
    assert data["num_tasks"] == 5 and data["bare_seconds"] > 0 and data["ratio"] == data["ours_seconds"] / data["bare_seconds"]
