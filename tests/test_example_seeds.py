"""The seeds example (a group reducer per configuration) runs end to end from the command line,
and a fourth seed re-runs only that seed's tasks, the aggregates and the selection."""

import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "seeds.py"
LINE = re.compile(r"^  aggregate-(\d): PCA n_components=(16|32), C=(0\.1|1\.0): (0\.\d{4}) ± (0\.\d{4})$", re.M)


def run_cli(cwd, *args):
    proc = subprocess.run([sys.executable, str(EXAMPLE), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_one_mean_and_std_per_configuration_then_the_best(tmp_path):
    """Four configurations (PCA size x C), each as mean ± std over seeds 0-2, in group order; the
    best line repeats the configuration with the highest mean; all 39 tasks ran."""
    out = run_cli(tmp_path, "--run-name", "seeds-test")
    assert out.splitlines()[0] == "Test accuracy over seeds 0, 1, 2 (mean ± std):"
    lines = LINE.findall(out)
    assert [(n, pca, c) for n, pca, c, _, _ in lines] == [
        ("1", "16", "0.1"), ("2", "16", "1.0"), ("3", "32", "0.1"), ("4", "32", "1.0")
    ]
    assert all(float(mean) > 0.9 and 0 < float(std) < 0.05 for *_, mean, std in lines)
    best = max(lines, key=lambda line: float(line[3]))
    assert f"Best configuration: PCA n_components={best[1]}, C={best[2]} ({best[3]} ± {best[4]})" in out
    assert re.search(r"^Tasks: 39 \(39 run, 0 already executed\)$", out, re.M)
    assert len(list((tmp_path / "fluidml-seeds-results" / "aggregate").iterdir())) == 4


def test_a_fourth_seed_runs_only_what_it_touches(tmp_path):
    """--seeds 4 on the same store: the new split, its 2 PCA, 4 train and 4 evaluate tasks, the 4
    aggregates (their seed lists grew) and the selection run; the other 34 tasks are cached."""
    store = str(tmp_path / "store")
    run_cli(tmp_path, "--store", store)
    out = run_cli(tmp_path, "--store", store, "--seeds", "4")
    assert out.splitlines()[0] == "Test accuracy over seeds 0, 1, 2, 3 (mean ± std):"
    assert len(LINE.findall(out)) == 4
    assert re.search(r"^Tasks: 50 \(16 run, 34 already executed\)$", out, re.M)


def test_each_aggregate_gets_the_evaluations_of_its_configuration(tmp_path, capsys):
    """Through main(): each aggregate's seeds are 0, 1, 2 and its mean and std are those of the
    three evaluations with its PCA size and C."""
    sys.path.insert(0, str(ROOT / "examples"))  # (its worker processes import digits from there too)
    try:
        import seeds

        results = seeds.main(["--quiet", "--store", str(tmp_path / "results")])
    finally:
        sys.path.remove(str(ROOT / "examples"))
    assert capsys.readouterr().out == ""
    accuracies = {}
    for run in results["evaluate"]:
        key = (run.unique_config["Featurize"]["n_components"], run.unique_config["train"]["C"])
        accuracies.setdefault(key, []).append(run.results["accuracy"])
    summaries = [run.results["summary"] for run in results["aggregate"]]
    assert [(s["n_components"], s["C"]) for s in summaries] == [(16, 0.1), (16, 1.0), (32, 0.1), (32, 1.0)]
    for s in summaries:
        values = accuracies[(s["n_components"], s["C"])]
        assert s["seeds"] == [0, 1, 2]
        assert (s["mean"], s["std"]) == (statistics.mean(values), statistics.stdev(values))
    assert results["aggregate"][0].unique_config["Split"] == {"test_size": 0.25, "seed": [0, 1, 2]}
    assert results["select"][0].results["best"] == max(summaries, key=lambda s: s["mean"])
