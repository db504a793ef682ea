"""The digits grid-search example runs end to end, from the command line and through main()."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digits.py"


def load_example():
    spec = importlib.util.spec_from_file_location("digits_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_prints_best_configuration_and_accuracy():
    """`python examples/digits.py` prints the best PCA size and C with an accuracy above 0.9."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--run-name", "cli-test"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^Best configuration: PCA n_components=(16|32), C=(0\.1|1\.0)$", proc.stdout, re.M)
    accuracy = re.search(r"^Best test accuracy: ([0-9.]+)$", proc.stdout, re.M)
    assert accuracy and float(accuracy.group(1)) > 0.9
    assert re.search(r"^Tasks: 13 \(13 run, 0 already executed\)$", proc.stdout, re.M)


def test_main_returns_results_of_model_selection(capsys):
    """main() returns the results; the selected accuracy is the best of the four evaluations."""
    results = load_example().main(["--quiet", "--run-name", "main-test"])
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
