"""The code-aware cache end to end, with real edits: the test writes a task module, runs a flow from it,
edits the module's text and imports it again under a fresh name (workers get it by value). Every
case asserts flow.plan()'s reasons, on every store, and what a run then really executes."""

import importlib.util
import itertools
import logging
import os
import shutil
import sys
from pathlib import Path

import cloudpickle
import pytest

from conftest import Recorder
from fluidml import Flow, TaskSpec
from fluidml.exception import RunConfigError, TaskSpecError
from fluidml.storage import FsspecStore, InMemoryStore, LocalFileStore, MongoDBStore
from fluidml.task import PROTECTED_NAMES

PIPELINE = '''
"""A pipeline the test writes, edits and imports again."""
from fluidml import Task

OFFSET = 1


def scale(value):
    return value * 10


def split(n, task):
    """Makes the data."""
    task.save(list(range(n)), "data")


class Train(Task):
    def __init__(self, lr):
        super().__init__()
        self.lr = lr

    def run(self, data):
        # one number per value
        self.save([scale(v) * self.lr + OFFSET for v in data], "model")


def report(model, task):
    task.save(sum(model), "total")
'''
RUN_EDITED = PIPELINE.replace("+ OFFSET for v in data", "+ OFFSET + 1 for v in data")
ALL = ["Train-1", "Train-2", "report-1", "report-2", "split"]
CACHED = {name: "cached" for name in ALL}


@pytest.fixture
def pipeline(tmp_path):
    """Imports a version of the pipeline's text under a fresh module name (sent to workers by value)."""
    loaded = []
    numbers = itertools.count()

    def load(text: str = PIPELINE):
        name = f"cc_pipeline_{os.getpid()}_{next(numbers)}"
        path = tmp_path / "modules" / f"{name}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        cloudpickle.register_pickle_by_value(module)
        loaded.append(module)
        return module

    yield load
    for module in loaded:
        cloudpickle.unregister_pickle_by_value(module)
        sys.modules.pop(module.__name__, None)


def make_flow(module, version=None, with_report=True):
    split = TaskSpec(task=module.split, config={"n": 3})
    train = TaskSpec(task=module.Train, config={"lr": [1, 2]}, expand="product", version=version)
    train.requires(split)
    specs = [split, train]
    if with_report:
        report = TaskSpec(task=module.report)
        report.requires(train)
        specs.append(report)
    return Flow(specs)


def reasons(flow, store, **kwargs):
    return {entry.unique_name: entry.reason for entry in flow.plan(results_store=store, **kwargs)}


def run(flow, store, executor_kwargs=None, **kwargs):
    """Runs the flow (in this process unless told otherwise); returns (sorted names of the tasks that
    really ran, report totals)."""
    recorder = Recorder()
    results = flow.run(results_store=store, observers=[recorder], return_results="all",
                       **(executor_kwargs or {"num_workers": 1}), **kwargs)
    totals = [r.results["total"] for r in results.get("report", [])]
    return sorted(recorder.executed), totals


def test_editing_run_reruns_that_task_and_its_successors_with_cache_code(make_store, executor_kwargs, pipeline):
    """After an edit of Train.run(), cache="config" keeps every result; cache="code" runs exactly the
    Train tasks (code changed) and the tasks downstream of them (upstream runs), then nothing."""
    store = make_store()
    assert run(make_flow(pipeline()), store, executor_kwargs, cache="code") == (ALL, [33, 63])
    flow = make_flow(pipeline(RUN_EDITED))
    assert reasons(flow, store) == CACHED
    assert reasons(flow, store, cache="code") == {
        "split": "cached", "Train-1": "code changed: Train.run", "Train-2": "code changed: Train.run",
        "report-1": "upstream runs: Train", "report-2": "upstream runs: Train"}
    assert run(flow, store, executor_kwargs) == ([], [33, 63])
    assert run(flow, store, executor_kwargs, cache="code") == (["Train-1", "Train-2", "report-1", "report-2"], [36, 66])
    assert reasons(flow, store, cache="code") == CACHED
    assert run(flow, store, executor_kwargs, cache="code") == ([], [36, 66])


def test_editing_a_helper_reruns_the_tasks_that_use_it(make_store, pipeline):
    """A same-module helper is part of the code of the task calling it: the reason names it."""
    store = make_store()
    run(make_flow(pipeline()), store, cache="code")
    flow = make_flow(pipeline(PIPELINE.replace("return value * 10", "return value * 100")))
    assert reasons(flow, store, cache="code") == {
        "split": "cached", "Train-1": "code changed: scale", "Train-2": "code changed: scale",
        "report-1": "upstream runs: Train", "report-2": "upstream runs: Train"}
    assert run(flow, store, cache="code") == (["Train-1", "Train-2", "report-1", "report-2"], [303, 603])


def test_editing_only_comments_and_docstrings_reruns_nothing(make_store, executor_kwargs, pipeline):
    """Comments, docstrings, blank lines and formatting are not code changes."""
    store = make_store()
    run(make_flow(pipeline()), store, executor_kwargs, cache="code")
    text = (PIPELINE.replace("# one number per value", "# scaled values, shifted by OFFSET")
            .replace('"""Makes the data."""', '"""Makes the data: the numbers 0..n-1."""')
            .replace("def report(model, task):\n", 'def report(model, task):\n    """Adds it up."""\n\n')
            .replace('task.save(sum(model), "total")', "task.save(sum(model),  'total')"))
    flow = make_flow(pipeline(text))
    assert reasons(flow, store, cache="code") == CACHED
    assert run(flow, store, executor_kwargs, cache="code") == ([], [33, 63])


def test_bumping_version_reruns_that_task_with_either_setting(make_store, executor_kwargs, pipeline):
    """version= counts under cache="config" too; with it, Train's code hash no longer counts; bumping it
    runs Train and its successors."""
    store = make_store()
    module = pipeline()
    run(make_flow(module), store, executor_kwargs)
    assert reasons(make_flow(module, version="1"), store) == {
        **CACHED, "Train-1": "version none → 1", "Train-2": "version none → 1",
        "report-1": "upstream runs: Train", "report-2": "upstream runs: Train"}
    run(make_flow(module, version="1"), store, executor_kwargs, cache="code")
    edited = make_flow(pipeline(RUN_EDITED), version="1")
    assert reasons(edited, store, cache="code") == CACHED  # the pinned version replaces the code hash
    bumped = make_flow(pipeline(RUN_EDITED), version="2")
    expected = {**CACHED, "Train-1": "version 1 → 2", "Train-2": "version 1 → 2",
                "report-1": "upstream runs: Train", "report-2": "upstream runs: Train"}
    assert reasons(bumped, store) == expected
    assert reasons(bumped, store, cache="code") == expected
    assert run(bumped, store, executor_kwargs, cache="code") == (["Train-1", "Train-2", "report-1", "report-2"],
                                                                 [36, 66])
    assert reasons(bumped, store, cache="code") == reasons(bumped, store) == CACHED


def test_runs_stored_without_code_versions_run_again_with_cache_code(make_store, pipeline):
    """Runs made with cache="config" record no code version: cache="code" runs them again and says so."""
    store = make_store()
    flow = make_flow(pipeline())
    run(flow, store)
    assert reasons(flow, store, cache="code") == {name: "code version not recorded" for name in ALL}
    assert run(flow, store, cache="code")[0] == ALL
    assert reasons(flow, store, cache="code") == CACHED


def test_a_successor_left_behind_by_an_interrupted_run_runs_next_time(make_store, pipeline):
    """Each run records its ancestors' code: when Train was re-run for new code but its successors were
    not (the run stopped in between), the next run still runs them."""
    store = make_store()
    run(make_flow(pipeline()), store, cache="code")
    module = pipeline(RUN_EDITED)
    assert run(make_flow(module, with_report=False), store, cache="code")[0] == ["Train-1", "Train-2"]
    flow = make_flow(module)
    assert reasons(flow, store, cache="code") == {
        **CACHED, "report-1": "code changed: Train.run", "report-2": "code changed: Train.run"}
    assert run(flow, store, cache="code") == (["report-1", "report-2"], [36, 66])


def test_force_keeps_its_meaning(make_store, pipeline):
    """force="Train" re-runs Train only (successors need "Train+"), whatever the cache setting."""
    store = make_store()
    module = pipeline()
    run(make_flow(module), store, cache="code")
    forced = {**CACHED, "Train-1": "forced", "Train-2": "forced"}
    assert reasons(make_flow(module), store, force="Train", cache="code") == forced
    assert reasons(make_flow(module), store, force="Train+") == {**forced, "report-1": "forced", "report-2": "forced"}
    assert run(make_flow(module), store, force="Train", cache="code")[0] == ["Train-1", "Train-2"]
    edited = make_flow(pipeline(RUN_EDITED))  # forced with changed code: its successors' records tell
    assert reasons(edited, store, force="Train", cache="code") == {
        **forced, "report-1": "code changed: Train.run", "report-2": "code changed: Train.run"}


def test_failed_killed_and_interrupted_runs_say_how_they_ended(make_store, pipeline):
    """A task that failed, was killed, or whose run was left running (its driver died) runs again; its
    successors run with it."""
    store = make_store()
    failing = pipeline(PIPELINE.replace('task.save(sum(model), "total")', 'raise ValueError("no total")'))
    make_flow(failing).run(results_store=store, exit_on_error=False, num_workers=1)
    assert reasons(make_flow(failing), store) == {**CACHED, "report-1": "failed last time",
                                                  "report-2": "failed last time"}
    killed = pipeline(PIPELINE.replace('task.save(sum(model), "total")', "raise KeyboardInterrupt"))
    with pytest.raises(KeyboardInterrupt):
        make_flow(killed).run(results_store=store, num_workers=1)
    assert reasons(make_flow(killed), store) == {**CACHED, "report-1": "killed last time",
                                                 "report-2": "failed last time"}
    flow = make_flow(pipeline())
    split = next(task for task in flow._tasks if task.name == "split")
    info = store.load("fluidml_info", "split", split.unique_config)
    store.save({**info, "state": "running"}, "fluidml_info", type_="json", task_name="split",
               task_unique_config=split.unique_config)
    assert reasons(flow, store) == {"split": "interrupted last time", "Train-1": "upstream runs: split",
                                    "Train-2": "upstream runs: split", "report-1": "killed last time",
                                    "report-2": "failed last time"}
    assert run(flow, store) == (ALL, [33, 63])


def snapshot(store):
    """Everything a store holds, to compare before and after a plan."""
    if isinstance(store, LocalFileStore):
        base = Path(store.base_dir)
        return {str(p.relative_to(base)): (p.stat().st_size, p.stat().st_mtime_ns) for p in base.rglob("*")}
    if isinstance(store, InMemoryStore):
        return {key: dict(run) for key, run in store._runs.items()}
    if isinstance(store, FsspecStore):
        import fsspec

        fs, root = fsspec.core.url_to_fs(store._url, **store._options)
        fs.invalidate_cache()
        return {path: (info["size"], fs.cat_file(path)) for path, info in fs.find(root, detail=True).items()}
    assert isinstance(store, MongoDBStore)
    import pymongo

    with pymongo.MongoClient(store.host) as client:
        database = client[store.db]
        return {name: sorted(map(repr, database[name].find({}))) for name in database.list_collection_names()}


def test_plan_writes_nothing(make_store, pipeline):
    """flow.plan() makes no run and deletes none, even when it plans to force or re-run everything."""
    store = make_store()
    run(make_flow(pipeline()), store, cache="code")
    before = snapshot(store)
    flow = make_flow(pipeline(RUN_EDITED))
    assert reasons(flow, store, force="all") == {name: "forced" for name in ALL}
    assert set(reasons(flow, store, cache="code").values()) == {"cached", "code changed: Train.run",
                                                                "upstream runs: Train"}
    assert make_flow(pipeline(RUN_EDITED)).plan(cache="code")[0].reason == "new config"
    assert snapshot(store) == before


def test_each_run_records_the_code_and_pinned_versions_of_itself_and_its_ancestors(make_store, executor_kwargs,
                                                                                   pipeline):
    """The stored info's "fluidml" dict holds "code" (cache="code") and "pinned", for the task and every
    ancestor; the plan's entries carry the config hash."""
    store = make_store()
    module = pipeline()
    flow = make_flow(module, version="3")
    flow.run(results_store=store, cache="code", **executor_kwargs)
    report = next(task for task in flow._tasks if task.unique_name == "report-2")
    recorded = store.load("fluidml_info", "report", report.unique_config)["fluidml"]
    assert recorded["pinned"] == {"Train": "3"}
    assert sorted(recorded["code"]) == ["report", "split"]
    assert sorted(recorded["code"]["report"]) == ["report"] and sorted(recorded["code"]["split"]) == ["split"]
    entry = flow.plan(results_store=store, cache="code")[4]
    assert entry == ("report-2", "report", report.unique_config_hash, False, "cached")


def test_the_run_logs_its_plan_per_task_name(pipeline, caplog):
    """At the start of a run, one line per task name says how many are cached, how many run, and why;
    each started task says why it runs."""
    store = InMemoryStore()
    run(make_flow(pipeline()), store, cache="code")
    caplog.set_level(logging.INFO, logger="fluidml")
    run(make_flow(pipeline(RUN_EDITED)), store, cache="code")
    messages = [record.getMessage() for record in caplog.records]
    assert [m for m in messages if ": " in m and " to run" in m] == [
        "split: 1 cached, 0 to run", "Train: 0 cached, 2 to run (code changed: Train.run)",
        "report: 0 cached, 2 to run (upstream runs: Train)"]
    assert any(m.startswith('Started task "report-1" (upstream runs: Train; config ') for m in messages)


class DamagedStore(LocalFileStore):
    """A file store whose cheap check reports Train-1's run as damaged (as #8's run_damage would)."""

    def run_damage(self, task_name, task_unique_config, deep=False):
        from types import SimpleNamespace

        if task_name == "Train" and task_unique_config["Train"] == {"lr": 1}:
            return [SimpleNamespace(task_name="Train", location=f"{self.base_dir}/Train/x-000/model.p",
                                    problem="model.p is missing")]
        return []


def test_damaged_results_run_again_with_one_warning(tmp_path, pipeline, caplog):
    """A run the store finds damaged is "results missing"; the run warns once naming the file."""
    store = DamagedStore(str(tmp_path / "store"))
    module = pipeline()
    run(make_flow(module), store)
    assert reasons(make_flow(module), store) == {**CACHED, "Train-1": "results missing",
                                                 "report-1": "upstream runs: Train"}
    caplog.clear()  # (flow.plan() above warned too)
    with caplog.at_level(logging.WARNING, logger="fluidml"):
        assert run(make_flow(module), store)[0] == ["Train-1", "report-1"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f'Task "Train-1": {store.base_dir}/Train/x-000/model.p model.p is missing. Its run counts '
                        f"as not finished and runs again."]


def test_the_store_written_by_fluidml_0_3_4_is_cached_with_the_default(tmp_path):
    """The original's store plans as cached by config; with cache="code" it has no code versions."""
    target = tmp_path / "original_store"
    shutil.copytree(Path(__file__).parent / "fixtures" / "original_store", target)
    spec = importlib.util.spec_from_file_location("original_pipeline", Path(__file__).parent / "fixtures"
                                                  / "original_pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    store = LocalFileStore(str(target))
    plan = module.make_flow().plan(results_store=store)
    assert len(plan) == 7 and {entry.reason for entry in plan} == {"cached"}
    assert {entry.reason for entry in module.make_flow().plan(results_store=store, cache="code")} == {
        "code version not recorded"}


def test_bad_cache_and_version_values_are_explained(pipeline):
    """cache takes "config" or "code"; version= is a non-empty string; "version" stays a valid config key."""
    flow = make_flow(pipeline())
    with pytest.raises(RunConfigError, match=r"cache='content' is not valid; use one of \['config', 'code'\]"):
        flow.run(cache="content")
    with pytest.raises(RunConfigError, match="cache="):
        flow.plan(cache=None)
    with pytest.raises(TaskSpecError, match='Task "split": version must be a non-empty string'):
        TaskSpec(task=pipeline().split, version=["1"])
    assert TaskSpec(task=pipeline().split, version=2).version == "2"
    assert "version" not in PROTECTED_NAMES


DRIVER = '''
import json
import sys

from fluidml import Flow, RunObserver, TaskSpec, configure_logging
from fluidml.storage import LocalFileStore

import pipeline


class Executed(RunObserver):
    def __init__(self):
        self.names = []

    def task_ended(self, task, outcome, finished, total):
        if not outcome.cached:
            self.names.append(task.unique_name)


if __name__ == "__main__":
    configure_logging("INFO", rich_logging=False, rich_traceback=False)
    split = TaskSpec(task=pipeline.split, config={"n": 3})
    train = TaskSpec(task=pipeline.Train, config={"lr": [1, 2]}, expand="product")
    report = TaskSpec(task=pipeline.report)
    train.requires(split)
    report.requires(train)
    executed = Executed()
    Flow([split, train, report]).run(results_store=LocalFileStore(sys.argv[1]), cache=sys.argv[2],
                                     num_workers=int(sys.argv[3]), observers=[executed])
    print(json.dumps(sorted(executed.names)))
'''


def test_a_driver_script_sees_its_task_module_edited_in_place(tmp_path):
    """As a user works: a script imports its task module by name and runs; the module file is edited in
    place; the next run of the script with cache="code" runs exactly the edited task and its successors
    (worker processes import the edited module too), and logs why."""
    import json
    import subprocess

    (tmp_path / "pipeline.py").write_text(PIPELINE)
    (tmp_path / "driver.py").write_text(DRIVER)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # (a .pyc of an edit in the same second could be stale)

    def script(cache, workers=1):
        proc = subprocess.run([sys.executable, "driver.py", str(tmp_path / "store"), cache, str(workers)],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.splitlines()[-1]), proc.stderr

    assert script("code")[0] == ALL
    (tmp_path / "pipeline.py").write_text(RUN_EDITED)
    assert script("config")[0] == []
    executed, log = script("code", workers=2)
    assert executed == ["Train-1", "Train-2", "report-1", "report-2"]
    assert "Train: 0 cached, 2 to run (code changed: Train.run)" in log
    assert "report: 0 cached, 2 to run (upstream runs: Train)" in log
    (tmp_path / "pipeline.py").write_text(RUN_EDITED.replace("# one number per value", "# a new comment"))
    assert script("code")[0] == []


def test_a_code_change_reruns_in_place(tmp_path, pipeline):
    """A changed task re-runs in its run directory (same name and counter), its old objects replaced; no
    run directory is added."""
    store = LocalFileStore(str(tmp_path / "store"))
    run(make_flow(pipeline()), store, cache="code", run_name="first")
    layout = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "store").glob("*/*-*"))
    assert run(make_flow(pipeline(RUN_EDITED)), store, cache="code", run_name="second")[1] == [36, 66]
    assert sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "store").glob("*/*-*")) == layout
    assert "store/Train/first-000" in layout and "store/report/first-001" in layout


def test_identity_has_one_home_and_imports_run_one_way():
    """task.py does not import task_spec.py (task_spec.py imports task.py), and identity.py, which both
    use, imports no other part of fluidml (imports for type checkers only do not count)."""
    import ast

    def imported(module):
        tree = ast.parse((Path(__file__).parents[1] / "src" / "fluidml" / f"{module}.py").read_text())
        return {node.module for node in tree.body if isinstance(node, ast.ImportFrom)} | {
            alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}

    assert "fluidml.task" in imported("task_spec") and "fluidml.identity" in imported("task_spec")
    assert "fluidml.task_spec" not in imported("task") and "fluidml.identity" in imported("task")
    assert [name for name in imported("identity") if name.startswith("fluidml")] == []
