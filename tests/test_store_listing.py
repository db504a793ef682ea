"""Listing stores: ResultsStore.task_names()/runs() (RunRecord, ObjectMeta), read-only stores,
open_store, and fluidml.results' run listings (counts, finding a run, choosing runs, successors)."""

import os
import pickle

import pytest

from fluidml.exception import ResultsStoreError, UnknownNameError
from fluidml.results import delete_runs, find_run, run_hash, run_state, select_runs, successor_runs, task_counts
from fluidml.storage import (
    FsspecStore, InMemoryStore, LocalFileStore, MongoDBStore, ObjectMeta, ResultsStore, RunRecord, open_store,
)
from fluidml.storage._open import redacted
from conftest import STORE_MARKS, STORES, start_store_server
from sweep_pipeline import make_flow


#: The stores that list their runs (InMemoryStore does not: see test_sweep_table.py).
LISTING = [pytest.param(name, marks=STORE_MARKS.get(name, [])) for name in sorted(STORES) if name != "memory"]


def _grid_store(request, tmp_path, fail_C):
    start_store_server(request, request.param)
    store = STORES[request.param](tmp_path)
    make_flow(fail_C=fail_C).run(num_workers=1, run_name="exp", results_store=store, exit_on_error=False,
                                 progress=False)
    yield store
    if isinstance(store, MongoDBStore):
        store.close()  # (a client left to the garbage collector may warn that it was not closed)


@pytest.fixture(params=LISTING)
def listed_store(request, tmp_path):
    """A store of every kind that lists its runs, holding one run of the sweep pipeline with failures."""
    yield from _grid_store(request, tmp_path, fail_C=1.0)


@pytest.fixture(params=LISTING)
def grid_store(request, tmp_path):
    """A store of every kind that lists its runs, holding one run of the sweep pipeline."""
    yield from _grid_store(request, tmp_path, fail_C=-1.0)


def test_task_names_and_run_records(listed_store):
    """task_names() lists the tasks that ran; runs() gives each run's id, config, info and objects."""
    assert listed_store.task_names() == ["Featurize", "evaluate", "train"]
    runs = list(listed_store.runs("train"))
    assert all(isinstance(run, RunRecord) for run in runs)
    assert [run.run_id for run in runs] == ["exp-000", "exp-001", "exp-002", "exp-003"]
    assert [run.unique_config["train"]["C"] for run in runs] == [0.1, 1.0, 0.1, 1.0]
    assert [run_state(run) for run in runs] == ["finished", "failed", "finished", "failed"]
    assert [run.info["fluidml"]["unique_name"] for run in runs] == ["train-1", "train-2", "train-3", "train-4"]
    assert [run_hash(run) for run in runs] == ["6xakor9s", "bmntohw9", "3yy760s7", "7q7trlw4"]
    error = runs[1].info["fluidml"]["error"]
    assert error["type"] == "ValueError" and error["message"] == "C=1.0 does not converge"
    assert error["traceback"].splitlines()[-1] == "ValueError: C=1.0 does not converge"
    assert runs[0].info["fluidml"]["pid"] == os.getpid() and runs[0].info["fluidml"]["worker"] == "main"
    model = runs[0].objects["model"]
    assert model.type == "pickle" and model.size == len(pickle.dumps({"C": 0.1, "weights": b"w" * 2000}, protocol=5))
    assert dict(runs[1].objects) == {}
    evaluate = next(iter(listed_store.runs("evaluate")))
    assert set(evaluate.objects) == {"accuracy", "metrics"}
    assert evaluate.objects["accuracy"].size == len(pickle.dumps(0.26, protocol=5))


def test_file_store_lists_runs_from_its_directories(tmp_path):
    """A run directory without info (a run in progress) is a "running" run; objects get their sizes
    from the files; a directory being created (no config.json yet) is left out."""
    store = LocalFileStore(tmp_path)
    store.save(b"abc" * 100, "blob", type_="pickle", task_name="t", task_unique_config={"t": {"a": 1}})
    store.save("hello", "note", type_="text", task_name="t", task_unique_config={"t": {"a": 1}}, sub_dir="notes")
    store._register_result("blob", "t", {"t": {"a": 1}})
    store._register_result("note", "t", {"t": {"a": 1}})
    os.makedirs(tmp_path / "t" / "half-000")
    [run] = LocalFileStore(tmp_path, read_only=True).runs("t")
    # (saved outside a task, each object is listed in the run's info at once; the info has no state yet)
    assert (run.run_id, run_state(run), run.location) == ("000", "running", str(tmp_path / "t" / "000"))
    assert list(run.info) == ["fluidml"]
    assert dict(run.objects) == {"blob": ObjectMeta("pickle", os.path.getsize(tmp_path / "t" / "000" / "blob.p")),
                                 "note": ObjectMeta("text", 5)}
    assert LocalFileStore(tmp_path).task_names() == ["t"]
    assert LocalFileStore(tmp_path / "missing").task_names() == []


def test_read_only_stores_refuse_to_write(listed_store):
    """A read-only store of the same place reads everything and raises on every write."""
    if isinstance(listed_store, LocalFileStore):
        reader: ResultsStore = LocalFileStore(listed_store.base_dir, read_only=True)
    elif isinstance(listed_store, FsspecStore):
        reader = FsspecStore(listed_store._url, read_only=True, **listed_store._options)
    else:
        reader = MongoDBStore(listed_store.db, host=listed_store.host, read_only=True)
    try:
        config = next(iter(reader.runs("evaluate"))).unique_config
        assert reader.load("accuracy", "evaluate", config) == 0.26
        for write in (lambda: reader.save(1, "x", "pickle", task_name="evaluate", task_unique_config=config),
                      lambda: reader.delete("accuracy", "evaluate", config),
                      lambda: reader.delete_run("evaluate", config),
                      lambda: reader.get_context("evaluate", {"evaluate": {"new": 1}})):
            with pytest.raises(ResultsStoreError, match=r'of task "evaluate": .* read-only'):
                write()
        assert reader.load("accuracy", "evaluate", config) == 0.26
    finally:
        if isinstance(reader, MongoDBStore):
            reader.close()


def test_read_only_file_store_does_not_index_a_store_it_reads(tmp_path):
    """Loading from a store without our index (e.g. one written by 0.3.4) through a read-only store
    finds the run in memory and creates no .fluidml directory."""
    LocalFileStore(tmp_path).save(5, "v", type_="pickle", task_name="t", task_unique_config={"t": {"a": 1}})
    import shutil
    shutil.rmtree(tmp_path / ".fluidml")
    assert LocalFileStore(tmp_path, read_only=True).load("v", "t", {"t": {"a": 1}}) == 5
    assert not (tmp_path / ".fluidml").exists()


def test_base_class_defaults_name_the_store():
    """A store without the listing methods says which class lacks what."""
    class Bare(InMemoryStore):
        task_names = ResultsStore.task_names
        runs = ResultsStore.runs

    with pytest.raises(NotImplementedError, match=r"Bare cannot list its tasks: it does not implement task_names\(\)"):
        Bare().task_names()
    with pytest.raises(NotImplementedError, match=r'Bare cannot list the runs of task "t"'):
        Bare().runs("t")


def test_open_store_maps_paths_and_mongodb_uris(tmp_path):
    """Paths are LocalFileStores, mongodb:// URIs MongoDBStores (database from db= or the path);
    other URLs and misplaced options are errors that never show a password."""
    store = open_store(tmp_path, read_only=True)
    assert isinstance(store, LocalFileStore) and store.base_dir == str(tmp_path) and store.read_only
    mongo = open_store("mongodb://user:pw@db.example.org:27018/experiments?authSource=admin", collection="runs")
    assert (mongo.db, mongo.collection_name, mongo.read_only) == ("experiments", "runs", False)
    assert open_store("mongodb+srv://db.example.org", db="x").db == "x"
    with pytest.raises(ValueError, match=r"needs a database") as caught:
        open_store("mongodb://user:secret@db.example.org")
    assert "secret" not in str(caught.value)
    remote = open_store("s3://me:secret@bucket/x", read_only=True, endpoint_url="http://127.0.0.1:9")
    assert isinstance(remote, FsspecStore) and remote.read_only and "secret" not in repr(remote)
    assert isinstance(open_store("memory://fluidml-tests/open-store"), FsspecStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalFileStore)
    with pytest.raises(ValueError, match=r"db and collection apply to mongodb:// stores only"):
        open_store(tmp_path, db="x")
    assert redacted("mongodb://a:b@h1,h2/db") == "mongodb://a:***@h1,h2/db"
    assert redacted("mongodb://h/db") == "mongodb://h/db" and redacted("/a:b@c") == "/a:b@c"


def test_task_counts_and_finding_runs(listed_store):
    """Counts per state; a run is found by id, hash or a unique prefix; errors list the candidates."""
    assert task_counts(listed_store) == {"Featurize": {"finished": 2}, "evaluate": {"finished": 2},
                                         "train": {"finished": 2, "failed": 2}}
    assert find_run(listed_store, "train", "exp-002").unique_config["train"]["C"] == 0.1
    assert find_run(listed_store, "train", "3yy760s7").run_id == "exp-002"
    assert find_run(listed_store, "train", "3yy").run_id == "exp-002"
    with pytest.raises(UnknownNameError, match=r'"exp-00" fits 4 runs of task "train": exp-000 \(6xakor9s\), '):
        find_run(listed_store, "train", "exp-00")
    with pytest.raises(UnknownNameError, match=r'no run "zz" .*; its runs: exp-000, exp-001, exp-002, exp-003\.'):
        find_run(listed_store, "train", "zz")
    with pytest.raises(UnknownNameError, match=r'no task "nope"'):
        find_run(listed_store, "nope", "exp-000")


def test_selecting_runs(listed_store):
    """select_runs takes run references, or filters on config and info columns."""
    ids = lambda runs: sorted(run.run_id for run in runs)  # noqa: E731
    assert ids(select_runs(listed_store, "train", ["exp-001", "3yy", "exp-001"])) == ["exp-001", "exp-002"]
    assert ids(select_runs(listed_store, "train", state="failed")) == ["exp-001", "exp-003"]
    assert ids(select_runs(listed_store, "train", where={"config.Featurize.n": "32", "C": 0.1})) == ["exp-002"]
    with pytest.raises(UnknownNameError, match=r'no column "accuracy"'):
        select_runs(listed_store, "train", where={"accuracy": 1})


def test_successors_follow_configs_and_reduce_members(grid_store):
    """The runs built on a run: those whose config holds its config, and a reduce run that has it
    among its members; runs built on other runs of the task are left alone."""
    store = grid_store
    train_1 = find_run(store, "train", "6xakor9s")  # n=16, C=0.1
    got = sorted((run.task_name, run.info["fluidml"]["unique_name"]) for run in successor_runs(store, "train", [train_1]))
    assert got == [("evaluate", "evaluate-1"), ("select", "select")]
    featurize_32 = find_run(store, "Featurize", "e5c5efqk")  # n=32
    got = sorted(run.info["fluidml"]["unique_name"] for run in successor_runs(store, "Featurize", [featurize_32]))
    assert got == ["evaluate-3", "evaluate-4", "select", "train-3", "train-4"]
    deleted = delete_runs(store, [*successor_runs(store, "train", [train_1]), train_1])
    assert len(deleted) == 3
    assert task_counts(store) == {"Featurize": {"finished": 2}, "evaluate": {"finished": 3}, "train": {"finished": 3}}
