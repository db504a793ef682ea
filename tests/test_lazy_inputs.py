"""Lazy inputs: which annotations ask for them, and what tasks receive from each kind of store."""

import subprocess
import sys
import textwrap
from typing import List, Optional

import pipelines as p
from fluidml import Flow, TaskSpec
from fluidml.runner import lazy_inputs
from fluidml.storage import InMemoryStore, LazySweep, Promise, Sweep
from fluidml.task import Task


class StoredPromise(Promise):
    """A handle to a value in a dict store."""

    def __init__(self, value):
        self.value = value

    def load(self, **kwargs):
        return self.value


class LazyStore(InMemoryStore):
    """An in-memory store that hands out promises when asked for lazy values (as file stores do)."""

    def load(self, name, task_name, task_unique_config, lazy=False, **kwargs):
        value = super().load(name, task_name, task_unique_config)
        return StoredPromise(value) if lazy and value is not None else value


def annotated(x: Promise, y: Optional[Promise], z: List[LazySweep], w: "list[LazySweep]", v, s: "Promise", task):
    pass


class Annotated(Task):
    def run(self, a: list[LazySweep], b: List[Sweep], c: Optional[int]):
        pass


def test_lazy_annotations_are_recognised():
    """Promise, Optional[Promise], List[LazySweep], list[LazySweep] and string forms ask for lazy values."""
    flow = Flow([TaskSpec(task=annotated), TaskSpec(task=Annotated)])
    tasks = {t.name: t for t in flow._tasks}
    assert lazy_inputs(tasks["annotated"]) == {"x", "y", "z", "w", "s"}
    assert lazy_inputs(tasks["Annotated"]) == {"a"}


def test_in_memory_lazy_inputs_arrive_as_values():
    """The in-memory store has nothing to defer: a Promise-annotated input is the value itself."""
    src = TaskSpec(task=p.source, config={"value": 5})
    lazy = TaskSpec(task=p.lazy_input)
    lazy.requires(src)
    results = Flow([src, lazy]).run(num_workers=1)
    assert results["lazy_input"][0].results == {"seen": 5}


def reduce_lazily(x: List[LazySweep], task):
    task.save([(type(s).__name__, s.value.load(), dict(s.config)) for s in x], "loaded")


def test_a_store_with_promises_gives_lazy_sweeps():
    """With a store that returns promises, lazy inputs are promises and a reducer gets LazySweeps."""
    src = TaskSpec(task=p.source, config={"value": [1, 2]}, expand="product")
    red = TaskSpec(task=reduce_lazily, reduce=True)
    opt = TaskSpec(task=p.optional_lazy)
    red.requires(src)
    opt.requires(src)
    results = Flow([src, red, opt]).run(results_store=LazyStore(), return_results="all", num_workers=1)
    assert results["reduce_lazily"][0].results["loaded"] == [
        ("LazySweep", 1, {"source": {"value": 1}}), ("LazySweep", 2, {"source": {"value": 2}})
    ]
    assert all(isinstance(r.results["seen"], StoredPromise) for r in results["optional_lazy"])


def test_tasks_defined_in_main_work(tmp_path):
    """A Task subclass and a function defined in a script's __main__ run as tasks."""
    script = tmp_path / "pipeline.py"
    script.write_text(textwrap.dedent("""
        from fluidml import Flow, Task, TaskSpec

        class Double(Task):
            def __init__(self, x):
                super().__init__()
                self.x = x

            def run(self):
                self.save(2 * self.x, "y")

        def report(y, task):
            task.save(f"got {y}", "text")

        if __name__ == "__main__":
            double = TaskSpec(task=Double, config={"x": [1, 2]}, expand="product")
            rep = TaskSpec(task=report)
            rep.requires(double)
            results = Flow([double, rep]).run(num_workers=2)
            print([r.results["text"] for r in results["report"]])
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['got 2', 'got 4']"
