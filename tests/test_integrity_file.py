"""Fault injection on a LocalFileStore: each kind of damage a finished store can suffer (a file
deleted, truncated or changed in place, an info or registry of the wrong shape, a config.json gone,
a run of the older layout damaged), and what happens next: which error names what, which tasks run
again, and that the final results equal those of a clean run."""

import json
import logging
import os
from pathlib import Path

import pytest

import integrity_tasks as t
from fixture_stores import copy_store, load_pipeline
from fluidml import Flow, TaskSpec
from fluidml.exception import StoredResultDamaged
from fluidml.storage import LocalFileStore
from fluidml.storage._integrity import ALWAYS_VERIFIED

POOL_OR_LOCAL = [pytest.param({"num_workers": 1}, id="local"), pytest.param({"num_workers": 2}, id="pool")]
SRC = {"produce": {"value": 2}}


def grid_flow(values=(1, 2, 3)):
    """produce (a grid) -> total (reduce)."""
    produce = TaskSpec(task=t.produce, config={"value": list(values)}, expand="product")
    total = TaskSpec(task=t.total, reduce=True)
    total.requires(produce)
    return Flow([produce, total])


def run_dir(base, task, run_id):
    return Path(base) / task / run_id


def info(base, task, run_id):
    return json.loads((run_dir(base, task, run_id) / "fluidml_info.json").read_text())


def started(caplog, name):
    """The reason logged when the task ``name`` started, or None if it did not start."""
    prefix = f'Started task "{name}" ('
    found = [r.getMessage() for r in caplog.records if r.getMessage().startswith(prefix)]
    return found[-1][len(prefix):-1].split("; config ")[0] if found else None


@pytest.fixture
def base(tmp_path):
    return tmp_path / "store"


@pytest.fixture
def clean_total(tmp_path):
    """The reducer's results of a clean run."""
    results = grid_flow().run(num_workers=1, results_store=LocalFileStore(str(tmp_path / "clean")),
                              return_results="latest")
    return results["total"][0].results


# ----------------------------------------------------------------------------------- store level


def test_a_deleted_object_raises_naming_task_object_and_file(base):
    """A listed object whose file is gone is never None: load, lazy load, get_results and is_finished
    tell, the error names the task, object and file, and the run is marked not finished."""
    store = LocalFileStore(str(base))
    grid_flow().run(num_workers=1, run_name="r", results_store=store)
    path = run_dir(base, "produce", "r-001") / "x.p"
    path.unlink()
    with pytest.raises(StoredResultDamaged) as error:
        store.load("x", "produce", SRC)
    assert (error.value.task_name, error.value.key, error.value.location) == ("produce", "x", str(path))
    assert error.value.config_hash is not None
    assert f'Task "produce" (config {error.value.config_hash}): the saved object "x" cannot be read: {path} is ' \
           f'missing. The run is marked not finished: the next flow.run runs "produce" again.' == str(error.value)
    marked = info(base, "produce", "r-001")
    assert marked["state"] == "failed"
    assert marked["fluidml"]["damage"] == {"location": str(path), "problem": "is missing"}
    assert not store.is_finished("produce", SRC)
    with pytest.raises(StoredResultDamaged, match="x.p is missing"):
        store.load("x", "produce", SRC, lazy=True)
    with pytest.raises(StoredResultDamaged, match="x.p is missing"):
        store.get_results("produce", SRC)
    assert store.load("never-saved", "produce", SRC) is None  # a name the run never saved is still None


def test_a_promise_of_an_object_deleted_later_raises(base):
    """A FilePromise whose file disappears before it loads raises instead of returning None."""
    store = LocalFileStore(str(base))
    store.save([1, 2], "x", "pickle", "produce", SRC)
    promise = store.load("x", "produce", SRC, lazy=True)
    os.remove(promise.path)
    with pytest.raises(StoredResultDamaged, match=f'"x".*{promise.path} is missing'):
        promise.load()


def test_truncated_and_changed_objects_are_told_apart_from_load_errors(base):
    """A truncated file has the wrong size; a file changed in place (same size) the wrong checksum
    (checked on every load up to 256 KiB, and on larger objects with verify=True)."""
    store = LocalFileStore(str(base))
    store.save(list(range(100)), "small", "pickle", "produce", SRC)
    big = b"a" * (ALWAYS_VERIFIED + 1)
    store.save(big, "big", "pickle", "produce", SRC)
    run = Path(store.get_context("produce", SRC).run_dir)
    data = (run / "small.p").read_bytes()
    (run / "small.p").write_bytes(data[:-5])
    with pytest.raises(StoredResultDamaged, match=f"small.p has {len(data) - 5} bytes, {len(data)} were saved"):
        store.load("small", "produce", SRC)
    store.save(list(range(100)), "small", "pickle", "produce", SRC)
    (run / "small.p").write_bytes(data[:20] + bytes([data[20] ^ 1]) + data[21:])
    with pytest.raises(StoredResultDamaged, match=r"small.p does not hold what was saved \(crc32 [0-9a-f]{8}, "
                                                  r"saved [0-9a-f]{8}\)"):
        store.load("small", "produce", SRC)
    raw = bytearray((run / "big.p").read_bytes())
    raw[-100] ^= 1
    (run / "big.p").write_bytes(bytes(raw))
    checking = LocalFileStore(str(base), verify=True)
    with pytest.raises(StoredResultDamaged, match="big.p does not hold what was saved"):
        checking.load("big", "produce", SRC)
    with pytest.raises(StoredResultDamaged, match="big.p does not hold what was saved"):
        checking.load("big", "produce", SRC, lazy=True).load()


def test_a_load_function_that_fails_on_an_intact_file_raises_its_own_error(base):
    """When the bytes are as saved, a failing load is the load function's error, not damage."""
    store = LocalFileStore(str(base))
    store.save({"a": 1}, "j", "json", "produce", SRC)
    with pytest.raises(TypeError):
        store.load("j", "produce", SRC, no_such_argument=1)
    assert store.load("j", "produce", SRC) == {"a": 1}


@pytest.mark.parametrize("content", ["[]", '"finished"', '{"state": "fini', '{"state": 3}'])
def test_an_info_of_the_wrong_shape_is_damage_and_the_task_runs_again(base, caplog, recorder, content):
    """An info that is not a run info (valid JSON of the wrong shape, or broken JSON) raises
    StoredResultDamaged naming the file; a flow runs the task again ("results missing")."""
    store = LocalFileStore(str(base))
    grid_flow().run(num_workers=1, run_name="r", results_store=store)
    path = run_dir(base, "produce", "r-000") / "fluidml_info.json"
    path.write_text(content)
    with pytest.raises(StoredResultDamaged, match=f"its run info cannot be read: {path} is not"):
        store.load("fluidml_info", "produce", {"produce": {"value": 1}})
    assert not store.is_finished("produce", {"produce": {"value": 1}})
    caplog.set_level(logging.INFO)
    results = grid_flow().run(num_workers=1, run_name="s", results_store=store, observers=[recorder],
                              return_results="latest")
    assert recorder.executed == ["produce-1", "total"]  # (and what is built on it: "upstream runs")
    assert started(caplog, "produce-1") == "results missing"
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and str(path) in r.getMessage()]
    assert info(base, "produce", "r-000")["state"] == "finished"  # re-run in its directory
    assert results["total"][0].results == {"total": 6, "count": 3}


@pytest.mark.parametrize("options", POOL_OR_LOCAL)
def test_a_deleted_object_reruns_its_producer_before_a_forced_reducer(base, caplog, recorder, clean_total,
                                                                         options):
    """The issue's first case: an object's file deleted, then force on the reducer. The producer is
    found damaged while planning and runs again ("results missing", a warning names the file), so
    the reducer gets all three sweeps."""
    store = LocalFileStore(str(base))
    grid_flow().run(num_workers=1, run_name="r", results_store=store)
    path = run_dir(base, "produce", "r-001") / "x.p"
    path.unlink()
    caplog.set_level(logging.INFO)
    results = grid_flow().run(results_store=store, force="total", observers=[recorder], return_results="latest",
                              **options)
    assert sorted(recorder.executed) == ["produce-2", "total"]
    assert started(caplog, "produce-2") == "results missing"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f'Task "produce-2": {path} is missing. Its run counts as not finished and runs again.']
    assert results["total"][0].results == clean_total
    assert path.exists() and sorted(os.listdir(base / "produce")) == ["r-000", "r-001", "r-002"]


@pytest.mark.parametrize("options", POOL_OR_LOCAL)
def test_a_successor_that_loads_a_changed_object_fails_and_the_next_run_repairs(base, recorder, clean_total,
                                                                                  options):
    """An object changed in place (its size unchanged, so planning cannot see it) fails the forced
    reducer with StoredResultDamaged naming the producer, the object and the file; the producer's run
    is marked not finished, so the next run runs it (and the failed reducer) again."""
    store = LocalFileStore(str(base))
    grid_flow().run(num_workers=1, run_name="r", results_store=store)
    path = run_dir(base, "produce", "r-002") / "x.p"
    data = path.read_bytes()
    path.write_bytes(data[:-3] + bytes([data[-3] ^ 0x40]) + data[-2:])
    with pytest.raises(StoredResultDamaged) as error:
        grid_flow().run(results_store=store, force="total", observers=[recorder], **options)
    assert (error.value.task_name, error.value.key, error.value.location) == ("produce", "x", str(path))
    assert recorder.state("total") == "failed"
    assert recorder.summary.failures[0][1].startswith('StoredResultDamaged: Task "produce" (config')
    assert info(base, "produce", "r-002")["state"] == "failed"
    again = type(recorder)()
    results = grid_flow().run(results_store=store, observers=[again], return_results="latest", **options)
    assert sorted(again.executed) == ["produce-3", "total"]
    assert results["total"][0].results == clean_total


def test_a_truncated_object_reruns_its_producer(base, recorder, clean_total):
    """A truncated result is found while planning (its size): its producer runs again, so no
    successor ever loads it."""
    store = LocalFileStore(str(base))
    grid_flow().run(num_workers=1, run_name="r", results_store=store)
    path = run_dir(base, "produce", "r-000") / "x.p"
    path.write_bytes(path.read_bytes()[:4])
    results = grid_flow().run(num_workers=1, results_store=store, force="total", observers=[recorder],
                              return_results="latest")
    assert sorted(recorder.executed) == ["produce-1", "total"]
    assert results["total"][0].results == clean_total


def test_a_deleted_config_file_is_found_by_verify_and_repaired_in_its_directory(base, recorder):
    """A finished run whose config.json is gone is still found through the index (planning does
    not read config files); verify reports it, and once repaired the run runs again, in its
    directory, and its config.json is back."""
    from fluidml.results import verify

    store = LocalFileStore(str(base))
    grid_flow().run(num_workers=1, run_name="r", results_store=store)
    config = run_dir(base, "produce", "r-000") / "config.json"
    config.unlink()
    [damage] = verify(store, repair=True)
    assert (damage.location, damage.problem) == (str(config), "is missing or unreadable")
    grid_flow().run(num_workers=1, results_store=store, observers=[recorder])
    assert recorder.executed == ["produce-1", "total"]
    assert json.loads(config.read_text()) == {"produce": {"value": 1}}


def test_temporary_files_of_dead_writers_are_removed_when_the_run_starts_again(base, recorder):
    """A temporary file left by a writer that died (its pid is gone) is removed when the run starts
    again; a finished run keeps no leftovers."""
    store = LocalFileStore(str(base))
    spec = TaskSpec(task=t.attempt, config={"value": 1, "_fail": True}, config_ignore_prefix="_")
    Flow([spec]).run(num_workers=1, run_name="r", results_store=store, exit_on_error=False)
    run = run_dir(base, "attempt", "r-000")
    leftover = run / ".~4194303-7.x.p"  # beyond the largest pid Linux hands out
    leftover.write_bytes(b"half of an object")
    spec = TaskSpec(task=t.attempt, config={"value": 1, "_fail": False}, config_ignore_prefix="_")
    Flow([spec]).run(num_workers=1, results_store=store, observers=[recorder])
    assert recorder.executed == ["attempt"]
    assert sorted(os.listdir(run)) == ["config.json", "fluidml_info.json", "log.txt", "x.p"]


def test_an_attempt_that_failed_leaves_nothing_behind(base):
    """A failed attempt's objects (and its lines in a log written with open(mode="a")) are gone once
    the task succeeds: the finished run holds exactly what its successful attempt saved."""
    store = LocalFileStore(str(base))
    failing = TaskSpec(task=t.attempt, config={"value": 1, "_fail": True}, config_ignore_prefix="_")
    Flow([failing]).run(num_workers=1, run_name="r", results_store=store, exit_on_error=False)
    assert store.load("extra", "attempt", {"attempt": {"value": 1}}) == "from the failed attempt"
    fixed = TaskSpec(task=t.attempt, config={"value": 1, "_fail": False}, config_ignore_prefix="_")
    consumer = TaskSpec(task=t.consume)
    consumer.requires(fixed)
    results = Flow([fixed, consumer]).run(num_workers=1, results_store=store, return_results="all")
    assert results["attempt"][0].results == {"log": "attempt fail=False\n", "x": 1}
    assert results["consume"][0].results == {"seen": [1, "default"]}
    assert sorted(os.listdir(run_dir(base, "attempt", "r-000"))) == ["config.json", "fluidml_info.json", "log.txt",
                                                                     "x.p"]


# ----------------------------------------------------------------------------------- the older layout


@pytest.fixture
def v04_store(tmp_path):
    return copy_store("v04_store", tmp_path)


def v04_flow():
    return load_pipeline("v04_pipeline")


@pytest.mark.parametrize("damage, culprit", [
    ("truncate the load info", "source/v04-001/.fluidml/.scaled_load_info.p"),
    ("truncate the registry", "source/v04-001/.fluidml/.saved_results.json"),
    ("delete the object", "source/v04-001/scaled.p"),
])
def test_damage_in_a_run_of_the_older_layout_reruns_it(v04_store, caplog, recorder, damage, culprit):
    """Runs written by 0.4.0 (registry and load-info files) are checked too: a truncated load info or
    registry, or a deleted object, makes the run damaged; it runs again (converted to format 2) and
    the forced reducer gets every sweep."""
    path = v04_store / culprit
    if damage == "delete the object":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[:7])
    pipeline = v04_flow()
    caplog.set_level(logging.WARNING)
    results = pipeline.make_flow().run(num_workers=1, results_store=LocalFileStore(str(v04_store)), force="gather",
                                       observers=[recorder], return_results="latest")
    assert sorted(recorder.executed) == ["combine-3", "combine-4", "gather", "source-2"]
    assert any(str(path) in r.getMessage() for r in caplog.records)
    assert results["gather"][0].results == pipeline.EXPECTED["gather"][0]
    rerun = v04_store / "source" / "v04-001"
    assert not (rerun / ".fluidml").exists()
    assert list(json.loads((rerun / "fluidml_info.json").read_text())["fluidml"]["objects"]) == [
        "record", "scaled", "label", "log"]


def test_a_truncated_pickle_of_the_older_layout_fails_its_successor_and_is_repaired(v04_store, recorder):
    """Without recorded sizes, a truncated object of the older layout is found when it loads: the
    successor fails naming it, the producer's run is marked, and the next run repairs both."""
    path = v04_store / "combine" / "v04-002" / "total.p"
    path.write_bytes(path.read_bytes()[:-2])
    pipeline = v04_flow()
    store = LocalFileStore(str(v04_store))
    with pytest.raises(StoredResultDamaged, match=f"{path} cannot be decoded"):
        pipeline.make_flow().run(num_workers=1, results_store=store, force="gather", observers=[recorder])
    results = pipeline.make_flow().run(num_workers=1, results_store=store, return_results="latest")
    assert results["gather"][0].results == pipeline.EXPECTED["gather"][0]


def deletes_upstream_object(x, task):
    """Deletes the object "x" of its (finished) predecessor's run."""
    task.delete("x", task_name="produce", task_unique_config={"produce": task.unique_config["produce"]})
    task.save(x, "copy")


def test_deleting_an_object_of_a_finished_run_rewrites_its_info(base, recorder):
    """Task.delete of another task's object changes that finished run: its info no longer lists the
    object, and the run stays finished and undamaged."""
    store = LocalFileStore(str(base))
    produce = TaskSpec(task=t.produce, config={"value": 3})
    deleter = TaskSpec(task=deletes_upstream_object)
    deleter.requires(produce)
    Flow([produce, deleter]).run(num_workers=1, run_name="r", results_store=store)
    objects = info(base, "produce", "r-000")["fluidml"]["objects"]
    assert objects == {} and not (run_dir(base, "produce", "r-000") / "x.p").exists()
    assert store.is_finished("produce", {"produce": {"value": 3}})
    assert store.load("x", "produce", {"produce": {"value": 3}}) is None
    Flow([produce, deleter]).run(num_workers=1, results_store=store, observers=[recorder])
    assert recorder.executed == []
