"""The digits grid-search example runs end to end, from the command line and through main()."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ray_cluster import driver_environment

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digits.py"


def load_example():
    spec = importlib.util.spec_from_file_location("digits_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(cwd, *args, env=None):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_cli_prints_best_configuration_and_accuracy(tmp_path):
    """`python examples/digits.py` prints the best PCA size and C with an accuracy above 0.9, and keeps
    its results in ./fluidml-results."""
    out = run_cli(tmp_path, "--run-name", "cli-test")
    assert re.search(r"^Best configuration: PCA n_components=(16|32), C=(0\.1|1\.0)$", out, re.M)
    accuracy = re.search(r"^Best test accuracy: ([0-9.]+)$", out, re.M)
    assert accuracy and float(accuracy.group(1)) > 0.9
    assert re.search(r"^Tasks: 13 \(13 run, 0 already executed\)$", out, re.M)
    assert sorted(os.listdir(tmp_path / "fluidml-results" / "train")) == [f"cli-test-00{i}" for i in range(4)]


def test_second_run_executes_nothing_and_prints_the_same_result(tmp_path):
    """Run again on the same store (here chosen by --store, then by $FLUIDML_DIGITS_STORE), the
    example finds all 13 tasks already executed and prints the same best configuration and accuracy."""
    store = tmp_path / "results"
    first = run_cli(tmp_path, "--store", str(store))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    second = run_cli(elsewhere, env={**os.environ, "FLUIDML_DIGITS_STORE": str(store)})
    assert re.search(r"^Tasks: 13 \(0 run, 13 already executed\)$", second, re.M)
    assert first.splitlines()[:2] == second.splitlines()[:2]
    assert os.listdir(elsewhere) == []


@pytest.mark.ray
def test_the_same_example_runs_on_ray(tmp_path, ray_home):
    """`--ray` runs the same grid search as Ray tasks on a local Ray runtime, with the same result;
    the example's functions, defined in the script, travel to Ray's workers by value."""
    pytest.importorskip("ray", reason="Ray is not installed here (pip install 'fluidml[ray]')")
    local = run_cli(tmp_path, "--store", str(tmp_path / "local"))
    on_ray = run_cli(tmp_path, "--ray", "--store", str(tmp_path / "ray"), env=driver_environment(ray_home))
    assert re.search(r"^Tasks: 13 \(13 run, 0 already executed\)$", on_ray, re.M)
    assert local.splitlines()[:2] == on_ray.splitlines()[:2]


def test_main_returns_results_of_model_selection(capsys, tmp_path):
    """main() returns the results; the selected accuracy is the best of the four evaluations."""
    results = load_example().main(["--quiet", "--run-name", "main-test", "--store", str(tmp_path / "results")])
    assert capsys.readouterr().out == ""

    evaluations = results["evaluate"]
    assert len(evaluations) == 4  # 2 PCA sizes x 2 values of C
    accuracies = [run.results["accuracy"] for run in evaluations]

    [selection] = results["ModelSelection"]
    best = selection.results
    assert best["best_accuracy"] == max(accuracies)
    assert best["best_accuracy"] > 0.9
    assert best["best_config"] in [
        {"n_components": run.unique_config["Featurize"]["n_components"], "C": run.unique_config["train"]["C"]}
        for run in evaluations
        if run.results["accuracy"] == best["best_accuracy"]
    ]
