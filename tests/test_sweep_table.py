"""Sweep tables (fluidml.sweep_table / fluidml.results.sweep_rows): exact columns and values, filters,
sorting, the objects they read, and the tables of flow.run() results and of a store written by 0.3.4."""

import datetime
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fluidml
from fluidml.exception import StoredResultDamaged, UnknownNameError
from fluidml.results import sweep_rows, sweep_table
from fluidml.storage import InMemoryStore, LocalFileStore, MongoDBStore, open_store
from sweep_pipeline import EVALUATE_ROWS, make_flow

FIXTURES = Path(__file__).resolve().parent / "fixtures"
INFO = ["run", "state", "started", "duration", "unique_name", "hash"]
#: evaluate's accuracy by (n, C): n / 100 + C
ACCURACY = {(16, 0.1): 0.26, (16, 1.0): 1.16, (32, 0.1): 0.42, (32, 1.0): 1.32}


@pytest.fixture
def grid_store(tmp_path):
    """A LocalFileStore holding one run of the sweep pipeline (run name "exp", in this process)."""
    make_flow().run(num_workers=1, run_name="exp", results_store=LocalFileStore(tmp_path / "store"), progress=False)
    return LocalFileStore(tmp_path / "store", read_only=True)


class CountingStore(LocalFileStore):
    """Records the names of the objects it loads."""

    def __init__(self, base_dir):
        super().__init__(base_dir, read_only=True)
        self.loaded = []

    def load(self, name, task_name, task_unique_config, lazy=False, **kwargs):
        self.loaded.append((task_name, name))
        return super().load(name, task_name, task_unique_config, lazy, **kwargs)

    def load_listed(self, record, name):
        self.loaded.append((record.task_name, name))
        return super().load_listed(record, name)


def test_columns_and_values_of_a_task_with_an_ancestor(grid_store):
    """evaluate's table: the info columns, the ancestors' varying keys dotted, the small objects and
    dict fields; constants apart."""
    table = sweep_rows(grid_store, "evaluate")
    assert table.columns == [*INFO, "config.Featurize.n", "config.train.C", "accuracy", "metrics.f1", "metrics.loss"]
    assert table.constants == {"config.train.seed": 42}
    rows = [{k: v for k, v in row.items() if k not in ("started", "duration")} for row in table.rows]
    assert rows == EVALUATE_ROWS
    for row in table.rows:
        assert isinstance(row["started"], datetime.datetime) and 0 <= row["duration"] < 60


def test_own_config_keys_are_short_and_large_objects_are_left_out(grid_store):
    """train's own key C is "C"; its 2 KB pickled model is not a column (not small), seed is constant."""
    table = sweep_rows(grid_store, "train")
    assert table.columns == [*INFO, "C", "config.Featurize.n"]
    assert table.constants == {"seed": 42}
    assert [(row["C"], row["config.Featurize.n"]) for row in table.rows] == [(0.1, 16), (1.0, 16), (0.1, 32), (1.0, 32)]


def test_a_table_reads_only_the_objects_it_shows(tmp_path):
    """Without a choice, only small objects are loaded; a 2 MB model is never read, even when asked
    for by name (max_object_size), and objects=[] loads nothing."""
    make_flow(model_bytes=2_000_000).run(num_workers=1, run_name="exp", results_store=LocalFileStore(tmp_path),
                                         progress=False)
    store = CountingStore(tmp_path)
    sweep_rows(store, "train")
    assert ("train", "model") not in store.loaded
    sweep_rows(store, "evaluate", objects=[])
    assert store.loaded == []
    with pytest.raises(ValueError, match=r'"model" of run exp-000 of task "train" is \d+ bytes, more than '
                                         r"max_object_size=1048576"):
        sweep_rows(store, "train", objects=["model"])
    assert store.loaded == []
    table = sweep_rows(store, "train", objects=["model"], max_object_size=None)
    assert table.columns[-1] == "model.C" and [row["model.C"] for row in table.rows] == [0.1, 1.0, 0.1, 1.0]


def test_filters_take_the_printed_names(grid_store):
    """where takes own keys short or as config.<Task>.<key>, ancestors' keys, objects and info columns;
    strings match the value's JSON text; functions filter too."""
    def runs(**kwargs):
        return [row["unique_name"] for row in sweep_rows(grid_store, "evaluate", **kwargs).rows]

    assert runs(where={"config.Featurize.n": 32}) == ["evaluate-3", "evaluate-4"]
    assert runs(where={"config.train.C": "1.0", "config.Featurize.n": "16"}) == ["evaluate-2"]
    assert runs(where={"accuracy": lambda value: value > 1}) == ["evaluate-2", "evaluate-4"]
    assert runs(where={"metrics.f1": 0.21}) == ["evaluate-3"]
    assert runs(where={"hash": "de0rz21f"}) == ["evaluate-1"]
    train = sweep_rows(grid_store, "train", where={"C": 0.1})
    assert [row["unique_name"] for row in train.rows] == ["train-1", "train-3"]
    assert "C" not in train.columns and train.constants["C"] == 0.1
    assert [row["unique_name"] for row in sweep_rows(grid_store, "train", where={"config.train.C": 1}).rows] == [
        "train-2", "train-4"]


def test_sorting(grid_store):
    """sort orders highest first, ascending lowest first, by any column."""
    best = sweep_rows(grid_store, "evaluate", sort="accuracy").rows
    assert [row["accuracy"] for row in best] == [1.32, 1.16, 0.42, 0.26]
    worst = sweep_rows(grid_store, "evaluate", sort="metrics.loss", ascending=True).rows
    assert [row["unique_name"] for row in worst] == ["evaluate-4", "evaluate-2", "evaluate-3", "evaluate-1"]
    by_run = sweep_rows(grid_store, "evaluate", sort="run", ascending=True).rows
    assert [row["run"] for row in by_run] == ["exp-000", "exp-001", "exp-002", "exp-003"]


def test_unknown_names_are_errors_that_list_what_exists(grid_store):
    """An unknown task, column or object raises UnknownNameError naming it and what there is."""
    with pytest.raises(UnknownNameError, match=r'no task "nope"; its tasks: Featurize, evaluate, select, train\.'):
        sweep_rows(grid_store, "nope")
    with pytest.raises(UnknownNameError, match=r'no column "n"; its columns: run, state, .*config\.Featurize\.n'):
        sweep_rows(grid_store, "evaluate", where={"n": 16})
    with pytest.raises(UnknownNameError, match=r'no column "acc"'):
        sweep_rows(grid_store, "evaluate", sort="acc")
    with pytest.raises(UnknownNameError, match=r'No run of task "evaluate" saved an object "acc"; objects saved: '
                                               r"accuracy, metrics\."):
        sweep_rows(grid_store, "evaluate", objects=["acc"])
    with pytest.raises(ValueError, match=r'"features" of run exp-000 of task "Featurize" is a list, not a number'):
        sweep_rows(grid_store, "Featurize", objects=["features"])


def test_failed_runs_have_their_state_and_no_results(tmp_path):
    """Failed runs are rows in state "failed"; the state filter picks them; their objects are empty."""
    make_flow(fail_C=1.0).run(num_workers=1, run_name="exp", results_store=LocalFileStore(tmp_path),
                              exit_on_error=False, progress=False)
    store = LocalFileStore(tmp_path, read_only=True)
    table = sweep_rows(store, "train", objects=["model"], max_object_size=None)
    assert [(row["unique_name"], row["state"], row["model.C"]) for row in table.rows] == [
        ("train-1", "finished", 0.1), ("train-2", "failed", None), ("train-3", "finished", 0.1),
        ("train-4", "failed", None)]
    failed = sweep_rows(store, "train", state="failed")
    assert [row["unique_name"] for row in failed.rows] == ["train-2", "train-4"]
    assert failed.constants["C"] == 1.0


def test_object_columns_that_collide_become_result_columns(tmp_path):
    """An object named like a config key or an info column is shown as result.<name>; filters take it."""
    from fluidml import Flow, TaskSpec

    def clash(C, task):
        task.save(C * 10, "C")
        task.save("odd", "state", type_="json")

    Flow([TaskSpec(task=clash, config={"C": [1, 2]}, expand="product")]).run(
        num_workers=1, run_name="x", results_store=LocalFileStore(tmp_path), progress=False)
    store = LocalFileStore(tmp_path, read_only=True)
    table = sweep_rows(store, "clash", sort="result.C")
    assert table.columns == [*INFO, "C", "result.C", "result.state"]
    assert [(row["C"], row["result.C"], row["result.state"]) for row in table.rows] == [(2, 20, "odd"), (1, 10, "odd")]
    one = sweep_rows(store, "clash", where={"result.C": 10})
    assert [row["result.C"] for row in one.rows] == [10] and one.constants == {"C": 1}


def test_sweep_table_is_a_dataframe_reachable_from_fluidml(grid_store):
    """fluidml.sweep_table gives a DataFrame with the same columns and values."""
    pandas = pytest.importorskip("pandas", reason="pandas is not installed (pip install 'fluidml[table]')")
    assert fluidml.sweep_table is sweep_table
    frame = fluidml.sweep_table(grid_store, "evaluate", sort="accuracy")
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame.columns) == sweep_rows(grid_store, "evaluate").columns
    assert frame["accuracy"].tolist() == [1.32, 1.16, 0.42, 0.26]
    assert frame["config.Featurize.n"].tolist() == [32, 16, 32, 16]
    assert str(frame["started"].dtype).startswith("datetime64")


def test_import_fluidml_does_not_import_pandas():
    """pandas (and fluidml.results) load only when a table is made."""
    code = "import sys, fluidml; print('pandas' in sys.modules, 'fluidml.results' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_tables_of_every_store_and_executor(make_store, executor_kwargs):
    """The table of evaluate has the same rows for every store (an in-memory run: from flow.run()'s
    return value) and executor; stored runs record their unique name and worker."""
    store = make_store()
    try:
        _check_every_store_and_executor(store, executor_kwargs)
    finally:
        if isinstance(store, MongoDBStore):
            store.close()  # (a client left to the garbage collector may warn that it was not closed)


def _check_every_store_and_executor(store, executor_kwargs):
    results = make_flow().run(**executor_kwargs, run_name="exp", results_store=store, return_results="all",
                              progress=False)
    source = results if isinstance(store, InMemoryStore) else store
    table = sweep_rows(source, "evaluate", sort="unique_name", ascending=True)
    got = {(row["config.Featurize.n"], row["config.train.C"]): row["accuracy"] for row in table.rows}
    assert got == ACCURACY
    assert [row["unique_name"] for row in table.rows] == ["evaluate-1", "evaluate-2", "evaluate-3", "evaluate-4"]
    assert [row["hash"] for row in table.rows] == ["de0rz21f", "3at5pkh2", "3clzm2ki", "6rgsx4sp"]
    if isinstance(store, InMemoryStore):
        assert table.columns == ["unique_name", "hash", "config.Featurize.n", "config.train.C", "accuracy",
                                 "metrics.f1", "metrics.loss"]
        return
    assert table.columns[:6] == INFO and {row["state"] for row in table.rows} == {"finished"}
    workers = {run.info["fluidml"]["worker"] for run in store.runs("evaluate")}
    expected = {"local": {"main"}, "pool": {"worker-1", "worker-2"}, "ray": {"ray"}}
    kind = "ray" if executor_kwargs.get("executor") == "ray" else ("pool" if executor_kwargs["num_workers"] > 1
                                                                   else "local")
    assert workers <= expected[kind] and workers


def test_in_memory_store_cannot_list_runs_and_says_what_to_do():
    """InMemoryStore.runs() raises with the hint to build the table from flow.run()'s return value."""
    store = InMemoryStore()
    make_flow().run(num_workers=1, results_store=store, progress=False)
    assert store.task_names() == ["Featurize", "evaluate", "select", "train"]
    with pytest.raises(NotImplementedError, match=r'sweep_table\(results, "evaluate"\) with results = flow\.run'):
        sweep_rows(store, "evaluate")


def test_table_of_a_store_written_by_the_original(tmp_path):
    """The 0.3.4 fixture: runs, states, varying configs and small objects; nothing is written to it."""
    target = tmp_path / "original_store"
    shutil.copytree(FIXTURES / "original_store", target)
    before = sorted((str(p), p.stat().st_mtime_ns) for p in target.rglob("*"))
    table = sweep_rows(open_store(target, read_only=True), "combine", sort="total", ascending=True)
    assert table.columns == ["run", "state", "started", "duration", "hash", "y", "config.source.x", "total"]
    assert [(row["run"], row["state"], row["y"], row["config.source.x"], row["total"]) for row in table.rows] == [
        ("orig-000", "finished", 3, 1, 14), ("orig-001", "finished", 4, 1, 15), ("orig-002", "finished", 3, 2, 25),
        ("orig-003", "finished", 4, 2, 26)]
    assert sorted((str(p), p.stat().st_mtime_ns) for p in target.rglob("*")) == before


def test_stored_durations_are_read_as_seconds():
    """Durations as TaskInfo stores them (ISO 8601) and as numbers become seconds; anything else None."""
    from fluidml.results import duration_seconds

    assert [duration_seconds(v) for v in ("PT0.000692S", "P1DT2H3.5S", "PT2M", "-PT1S", 3, "soon", None)] == [
        0.000692, 93603.5, 120.0, -1.0, 3.0, None, None]
    assert duration_seconds(datetime.timedelta(minutes=1)) == 60.0


def test_a_limit_loads_the_other_objects_only_for_the_rows_kept(tmp_path):
    """With limit, the sort column's object is read for every run, the others for the rows kept;
    which config columns vary is still decided over all runs."""
    make_flow().run(num_workers=1, run_name="exp", results_store=LocalFileStore(tmp_path), progress=False)
    store = CountingStore(tmp_path)
    table = sweep_rows(store, "evaluate", sort="accuracy", limit=2)
    assert (table.total, [row["unique_name"] for row in table.rows]) == (4, ["evaluate-4", "evaluate-2"])
    assert [row["config.train.C"] for row in table.rows] == [1.0, 1.0]  # varies over all four runs
    assert table.columns[-3:] == ["accuracy", "metrics.f1", "metrics.loss"]
    assert sorted(store.loaded) == [("evaluate", "accuracy")] * 4 + [("evaluate", "metrics")] * 2


def test_objects_load_from_the_listing_and_a_run_changed_since_is_read_again(tmp_path):
    """load_listed reads an object through what runs() listed; a run re-made after the listing (its
    object changed) is found and read again; an object damaged since is an error, not a value."""
    store = LocalFileStore(tmp_path / "store")
    make_flow().run(num_workers=1, results_store=store, progress=False)
    records = {record.unique_config["Featurize"]["n"] * 10 + record.unique_config["train"]["C"]: record
               for record in store.runs("evaluate")}
    assert {key: store.load_listed(record, "accuracy") for key, record in records.items()} == {
        160.1: 0.26, 161.0: 1.16, 320.1: 0.42, 321.0: 1.32}
    assert store.load_listed(records[160.1], "no-such-object") is None

    record = records[160.1]
    store.save(7.5, "accuracy", "pickle", task_name="evaluate", task_unique_config=record.unique_config)  # same size
    assert store.load_listed(record, "accuracy") == 7.5

    with open(Path(records[321.0].location) / "accuracy.p", "r+b") as file:
        file.truncate(5)
    with pytest.raises(StoredResultDamaged, match="accuracy"):
        LocalFileStore(tmp_path / "store", read_only=True).load_listed(records[321.0], "accuracy")
