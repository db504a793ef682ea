"""The digits grid search repeated over seeds, with one reducer per configuration.

    load -> split (seed: 0, 1, 2) -> PCA features -> train -> evaluate
         -> aggregate (reduce="Split.seed": one task per PCA size and C) -> selection (reduce=True)

Each seed splits the data differently, so every configuration is trained and evaluated 3 times.
The group reducer `aggregate` gets one task per (n_components, C), each receiving the 3
evaluations of its configuration, and reports their mean ± std; the selection picks the
configuration with the best mean. The tasks are those of examples/digits.py.

Results go to a LocalFileStore in ./fluidml-seeds-results (or --store DIR, or $FLUIDML_SEEDS_STORE).
Run it again with --seeds 4: only the new seed's tasks, the four aggregates and the selection run.

    python examples/seeds.py [--seeds N] [--run-name NAME] [--store DIR] [--verbose | --quiet]
"""

import argparse
import os
import statistics
from typing import List

import fluidml
from fluidml import Flow, TaskSpec
from fluidml.storage import LocalFileStore, Sweep

from digits import SEED, Featurize, KeepSummary, Split, evaluate, load_data, train


def aggregate(accuracy: List[Sweep], task):
    """One task per configuration: its accuracies over the seeds, as mean ± std (sample std)."""
    values = [sweep.value for sweep in accuracy]
    config = task.unique_config  # kept keys are single values, the reduced seeds a list
    task.save({
        "n_components": config["Featurize"]["n_components"],
        "C": config["train"]["C"],
        "seeds": [sweep.config["Split"]["seed"] for sweep in accuracy],
        "mean": statistics.mean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }, "summary")


def select(summary: List[Sweep], task):
    """The configuration with the best mean accuracy over its seeds."""
    task.save(max((sweep.value for sweep in summary), key=lambda s: s["mean"]), "best")


def make_flow(seeds: int = 3) -> Flow:
    load = TaskSpec(task=load_data, name="load")
    split = TaskSpec(task=Split, config={"test_size": 0.25, "seed": list(range(seeds))}, expand="product")
    featurize = TaskSpec(task=Featurize, config={"n_components": [16, 32]}, expand="product")
    training = TaskSpec(task=train, config={"C": [0.1, 1.0], "max_iter": 2000, "seed": SEED}, expand="product")
    evaluation = TaskSpec(task=evaluate)
    # Only Split's seed varies (train's is fixed), so reduce="seed" would name the same key.
    aggregation = TaskSpec(task=aggregate, reduce="Split.seed")
    selection = TaskSpec(task=select, reduce=True)

    split.requires(load)
    featurize.requires(split)
    training.requires(split, featurize)
    evaluation.requires(split, featurize, training)
    aggregation.requires(evaluation)
    selection.requires(aggregation)
    return Flow([load, split, featurize, training, evaluation, aggregation, selection])


DEFAULT_STORE = "fluidml-seeds-results"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per configuration (default: 3)")
    parser.add_argument("--run-name", default=None, help="name of this run (random if not given)")
    parser.add_argument("--store", default=None,
                        help=f"results directory (default: $FLUIDML_SEEDS_STORE or ./{DEFAULT_STORE})")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--verbose", action="store_true", help="log every task")
    output.add_argument("--quiet", action="store_true", help="print nothing")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.verbose:
        fluidml.configure_logging()

    flow = make_flow(args.seeds)
    report = KeepSummary()
    store = LocalFileStore(args.store or os.environ.get("FLUIDML_SEEDS_STORE") or DEFAULT_STORE)
    results = flow.run(run_name=args.run_name, results_store=store, return_results="all", observers=[report])

    if not args.quiet:
        print(f"Test accuracy over seeds {', '.join(map(str, range(args.seeds)))} (mean ± std):")
        for run in results["aggregate"]:
            s = run.results["summary"]
            print(f"  {run.task_unique_name}: PCA n_components={s['n_components']}, C={s['C']}: "
                  f"{s['mean']:.4f} ± {s['std']:.4f}")
        best = results["select"][0].results["best"]
        print(f"Best configuration: PCA n_components={best['n_components']}, C={best['C']} "
              f"({best['mean']:.4f} ± {best['std']:.4f})")
        summary = report.summary
        print(f"Tasks: {summary.total} ({summary.total - summary.cached} run, {summary.cached} already executed)")
    return results


if __name__ == "__main__":
    main()
