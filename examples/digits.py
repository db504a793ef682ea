"""Grid search on scikit-learn's digits data set with fluidml.

    load -> split -> PCA features -> train -> evaluate -> model selection

PCA sizes and the regularisation strength C are grids: fluidml expands them into one task per
combination, and the reduce task at the end sees every evaluation and keeps the best.

Results go to a LocalFileStore in ./fluidml-results (or --store DIR, or $FLUIDML_DIGITS_STORE), so a
second run finds every task already executed and prints the same result without training anything.

    python examples/digits.py [--run-name NAME] [--store DIR] [--ray [ADDRESS]] [--verbose | --quiet]

With --ray the tasks run as Ray tasks: on a new local Ray runtime, or on the cluster at ADDRESS
(e.g. 127.0.0.1:6379 or ray://head:10001; the store must then be on a path every node shares).
"""

import argparse
import os
from typing import List

from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

import fluidml
from fluidml import Flow, Task, TaskSpec
from fluidml.storage import LocalFileStore, Sweep

SEED = 42


# Function tasks receive config values and predecessor results as keyword arguments,
# plus `task` for saving results.
def load_data(task):
    X, y = load_digits(return_X_y=True)
    task.save(X / 16.0, "X")  # pixel intensities 0..16 -> 0..1
    task.save(y, "y")


# Class tasks take their config in __init__ and predecessor results in run().
class Split(Task):
    def __init__(self, test_size: float, seed: int):
        super().__init__()
        self.test_size = test_size
        self.seed = seed

    def run(self, X, y):
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=self.test_size, random_state=self.seed, stratify=y
        )
        self.save((X_train, y_train), "train_set")
        self.save((X_test, y_test), "test_set")


class Featurize(Task):
    def __init__(self, n_components: int):
        super().__init__()
        self.n_components = n_components

    def run(self, train_set):
        X_train, _ = train_set
        self.save(PCA(n_components=self.n_components).fit(X_train), "pca")


def train(train_set, pca, C: float, max_iter: int, seed: int, task):
    X_train, y_train = train_set
    model = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    task.save(model.fit(pca.transform(X_train), y_train), "model")


def evaluate(test_set, pca, model, task):
    X_test, y_test = test_set
    task.save(float(model.score(pca.transform(X_test), y_test)), "accuracy")


class ModelSelection(Task):
    # A reduce task gets one Sweep per upstream run: the saved value and the run's full config.
    def run(self, accuracy: List[Sweep]):
        best = max(accuracy, key=lambda sweep: sweep.value)
        self.save(
            {"n_components": best.config["Featurize"]["n_components"], "C": best.config["train"]["C"]},
            "best_config",
        )
        self.save(best.value, "best_accuracy")


def make_flow() -> Flow:
    load = TaskSpec(task=load_data, name="load")
    split = TaskSpec(task=Split, config={"test_size": 0.25, "seed": SEED})
    featurize = TaskSpec(task=Featurize, config={"n_components": [16, 32]}, expand="product")
    training = TaskSpec(
        task=train, config={"C": [0.1, 1.0], "max_iter": 2000, "seed": SEED}, expand="product"
    )
    evaluation = TaskSpec(task=evaluate)
    selection = TaskSpec(task=ModelSelection, reduce=True)

    # Only direct predecessors pass results into a task, so every consumer of the
    # split data requires `split` itself.
    split.requires(load)
    featurize.requires(split)
    training.requires(split, featurize)
    evaluation.requires(split, featurize, training)
    selection.requires(evaluation)
    return Flow([load, split, featurize, training, evaluation, selection])


DEFAULT_STORE = "fluidml-results"


def build_store(location=None):
    """The results store: a directory that keeps results between runs."""
    return LocalFileStore(location or os.environ.get("FLUIDML_DIGITS_STORE") or DEFAULT_STORE)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-name", default=None, help="name of this run (random if not given)")
    parser.add_argument("--store", default=None,
                        help=f"results directory (default: $FLUIDML_DIGITS_STORE or ./{DEFAULT_STORE})")
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help='run on Ray (pip install "fluidml[ray]"): a local runtime, or the cluster at ADDRESS')
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--verbose", action="store_true", help="log every task")
    output.add_argument("--quiet", action="store_true", help="print nothing")
    return parser.parse_args(argv)


class KeepSummary(fluidml.RunObserver):
    """Keeps the run's summary: how many tasks ran and how many were already in the store."""

    def run_ended(self, summary):
        self.summary = summary


def main(argv=None):
    args = parse_args(argv)
    if args.verbose:
        fluidml.configure_logging()

    flow = make_flow()
    report = KeepSummary()
    executor = fluidml.RayExecutor(address=args.ray or None) if args.ray is not None else None
    results = flow.run(
        run_name=args.run_name, results_store=build_store(args.store), return_results="all", observers=[report],
        executor=executor,
    )

    if not args.quiet:
        best = results["ModelSelection"][0].results
        config = best["best_config"]
        summary = report.summary
        print(f"Best configuration: PCA n_components={config['n_components']}, C={config['C']}")
        print(f"Best test accuracy: {best['best_accuracy']:.4f}")
        print(f"Tasks: {summary.total} ({summary.total - summary.cached} run, {summary.cached} already executed)")
    return results


if __name__ == "__main__":
    main()
