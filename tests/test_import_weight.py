"""`import fluidml` stays light: defining specs, and a sequential run with the in-memory store, load
none of the heavy or optional libraries, nor the stores and executors they do not use (checked in
a fresh interpreter, by what is in ``sys.modules``)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

SRC = str(pathlib.Path(__file__).resolve().parents[1] / "src")

#: Libraries that only some runs need: none of them may load with the statement or a plain run.
HEAVY = ("pydantic", "rich", "networkx", "bokeh", "grandalf", "pymongo", "ray", "pandas", "typer", "click",
         "fsspec", "s3fs", "boto3", "botocore", "psutil", "certifi")
#: fluidml modules a sequential in-memory run does not use.
UNUSED = ("fluidml.storage.files", "fluidml.storage.mongo", "fluidml.storage.fsspec_store", "fluidml.executors.ray",
          "fluidml.executors.slurm", "fluidml.executors.processes", "fluidml.executors.worker",
          "fluidml.visualization", "fluidml.cli", "fluidml.results", "fluidml._task_models")

IMPORT = "from fluidml import Flow, Task, TaskSpec, Requests\n"
SEQUENTIAL_RUN = IMPORT + '''
def double(x: int, task: Task):
    task.save(2 * x, "doubled")

def total(doubled, task: Task):
    task.save(sum(s.value for s in doubled), "total")

produce = TaskSpec(task=double, config={"x": [1, 2, 3]}, expand="product")
consume = TaskSpec(task=total, reduce=True)
consume.requires(produce)
flow = Flow([produce, consume])
flow.run(num_workers=1, progress=False, return_results=None)
assert [task.state.value for task in flow._tasks] == ["finished"] * 4, [task.state for task in flow._tasks]
'''


def modules_after(code: str) -> list:
    """The names in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def loaded_after(code: str) -> list:
    """The modules ``code`` loads beyond those a bare interpreter of this machine starts with (a
    ``.pth`` file of the environment may import e.g. ``certifi`` at start-up, before any code runs)."""
    at_start = set(modules_after(""))
    return [m for m in modules_after(code) if m not in at_start]


def heavy_in(modules: list) -> list:
    return [m for m in modules if m.split(".")[0] in HEAVY or any(m == u or m.startswith(u + ".") for u in UNUSED)]


def test_defining_specs_imports_no_heavy_module():
    modules = loaded_after(IMPORT)
    assert "fluidml.flow" in modules and "fluidml.task_spec" in modules
    assert heavy_in(modules) == []


#: What a run with the in-memory store still loads, and why: the run returns ``TaskResults``
#: (documented pydantic models). ``flow.task_spec_graph`` (networkx) is built on first access.
RUN_NEEDS = ("pydantic",)


def test_sequential_in_memory_run_imports_no_other_heavy_module():
    modules = loaded_after(SEQUENTIAL_RUN)
    assert "fluidml.runner" in modules and "fluidml.storage.memory" in modules
    assert heavy_in([m for m in modules if m.split(".")[0] not in RUN_NEEDS and m != "fluidml._task_models"]) == []
    assert "fluidml.storage.files" not in modules and "rich" not in modules


def test_lazy_public_names_resolve():
    code = '''
import fluidml, fluidml.task, fluidml.storage
from fluidml.storage import LocalFileStore, MongoDBStore, open_store
from fluidml.task import TaskInfo
assert fluidml.LocalFileStore is LocalFileStore if hasattr(fluidml, "LocalFileStore") else True
print(fluidml.RayExecutor.__name__, fluidml.SlurmExecutor.__name__, fluidml.storage.LocalFileStore.__name__,
      fluidml.storage.FsspecStore.__name__, MongoDBStore.__name__, open_store.__name__,
      list(TaskInfo.model_fields), fluidml.task.TaskResults.__module__, TaskInfo.__module__,
      "Flow" in dir(fluidml), "TaskInfo" in dir(fluidml.task), "LocalFileStore" in dir(fluidml.storage))
'''
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "RayExecutor", "SlurmExecutor", "LocalFileStore", "FsspecStore", "MongoDBStore", "open_store",
        "['project_name',", "'run_name',", "'state',", "'started',", "'ended',", "'duration',", "'run_history',",
        "'sweep_counter',", "'unique_config_hash',", "'id']", "fluidml.task", "fluidml.task", "True", "True", "True",
    ]


def test_unknown_names_still_raise_attribute_error():
    import fluidml
    import fluidml.storage
    import fluidml.task

    for module in (fluidml, fluidml.storage, fluidml.task):
        with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
            getattr(module, "NoSuchName")
