"""Tasks of the group-reduce tests (module-level, so every executor can import them)."""

from typing import List

from fluidml.storage import Sweep


def prepare(offset, task):
    """Saves its offset as "base"."""
    task.save(offset, "base")


def train(lr, seed, task, base=0):
    """Saves a score made of its config (and its predecessor's base): base + 10 * lr + seed."""
    task.save(base + 10 * lr + seed, "score")


def aggregate(score: List[Sweep], task):
    """Group reducer: saves the (score, seed) pairs it got, in order, and their mean."""
    task.save([(sweep.value, sweep.config["train"]["seed"]) for sweep in score], "pairs")
    task.save(sum(sweep.value for sweep in score) / len(score), "mean")


def select(mean: List[Sweep], task):
    """Full reducer: saves the learning rate whose mean is best, with that mean."""
    best = max(mean, key=lambda sweep: sweep.value)
    task.save({"lr": best.config["train"]["lr"], "mean": best.value}, "best")


def report(mean, task):
    """A normal successor of a group reducer: saves the mean it got with its group's lr, and the
    seeds of its group's "pairs", loaded from the reducer's run that its own config contains."""
    task.save((task.unique_config["train"]["lr"], mean), "line")
    task.save([seed for _, seed in task.load("pairs", task_name="aggregate")], "seeds")
