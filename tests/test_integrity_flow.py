"""Integrity at the level of flows, on every store and executor: every attempt starts clean (a
failed or crashed attempt's objects never reach the finished run or its successors), and an
upstream object found damaged while a successor loads it fails that successor with
StoredResultDamaged and is run again by the next run."""

import pytest

import integrity_tasks as t
from conftest import STORE_MARKS, STORES
from fluidml import Flow, TaskSpec
from fluidml.config import config_digest
from fluidml.exception import StoredResultDamaged
from fluidml.storage import LocalFileStore

FIXED = {"attempt_plain": {"value": 1}}


def attempt_flow(fail):
    attempt = TaskSpec(task=t.attempt_plain, config={"value": 1, "_fail": fail}, config_ignore_prefix="_")
    consume = TaskSpec(task=t.consume)
    consume.requires(attempt)
    return Flow([attempt, consume])


def test_a_failed_attempt_leaves_nothing_in_the_finished_run(make_store, executor_kwargs, recorder):
    """A task that failed after saving "extra", then fixed: its finished run holds only what the
    successful attempt saved, and the successor gets its parameter's default, not the old "extra"."""
    store = make_store()
    attempt_flow(fail=True).run(results_store=store, exit_on_error=False, **executor_kwargs)
    assert store.load("extra", "attempt_plain", FIXED) == "from the failed attempt"
    results = attempt_flow(fail=False).run(results_store=store, return_results="all", observers=[recorder],
                                           **executor_kwargs)
    assert sorted(recorder.executed) == ["attempt_plain", "consume"]
    assert results["attempt_plain"][0].results == {"x": 1}
    assert results["consume"][0].results == {"seen": [1, "default"]}
    assert store.load("extra", "attempt_plain", FIXED) is None


@pytest.fixture(params=[pytest.param(name, marks=STORE_MARKS.get(name, [])) for name in ("file", "mongo")])
def persistent_store(request, tmp_path):
    """A factory of stores that keep results outside the process (file, MongoDB)."""
    if request.param == "mongo":
        request.getfixturevalue("mongo_server")
    return lambda: STORES[request.param](tmp_path)


def crashed_attempt(store, task_name, config, saves):
    """What an attempt that died before writing its info leaves: its objects, no info."""
    store.begin_attempt(task_name, config)
    for name, value in saves.items():
        store.save(value, name, type_="pickle", task_name=task_name, task_unique_config=config)
        store._register_result(name, task_name, config)


def test_a_crashed_attempt_is_not_listed_in_the_next_one(persistent_store, executor_kwargs):
    """Objects of an attempt that died before its info are not listed in the run that succeeds."""
    crashed_attempt(persistent_store(), "attempt_plain", FIXED, {"extra": "crashed", "x": 0})
    store = persistent_store()
    results = attempt_flow(fail=False).run(results_store=store, return_results="all", **executor_kwargs)
    assert results["attempt_plain"][0].results == {"x": 1}
    assert results["consume"][0].results == {"seen": [1, "default"]}
    assert store.load(".saved_results", "attempt_plain", FIXED) == ["x"]


def change_in_place(store, task_name, config, name):
    """Damages a saved object without changing what its run lists: a byte of its file flipped (file
    store), or its bytes in the run document replaced (MongoDB)."""
    if isinstance(store, LocalFileStore):
        path = store.load(name, task_name, config, lazy=True).path
        with open(path, "r+b") as file:
            file.seek(-3, 2)
            byte = file.read(1)
            file.seek(-3, 2)
            file.write(bytes([byte[0] ^ 0x40]))
        return path
    from bson import Binary

    store._collections().runs.update_one({"task": task_name, "digest": config_digest(config)},
                                         {"$set": {f"obj:{name}": Binary(b"\x80\x05not a pickle")}})
    return f"{store.db}/{store.collection_name}/"


def chain_flow():
    produce = TaskSpec(task=t.produce, config={"value": 5})
    consume = TaskSpec(task=t.consume)
    consume.requires(produce)
    return Flow([produce, consume])


def test_a_damaged_upstream_object_fails_its_successor_and_is_run_again(persistent_store, executor_kwargs,
                                                                          recorder):
    """A successor that loads a damaged upstream object fails with StoredResultDamaged naming the
    upstream task, the object and where it is; the upstream run is marked not finished, so the
    next run runs it again, then the successor; the results equal a clean run's."""
    store = persistent_store()
    chain_flow().run(results_store=store, **executor_kwargs)
    where = change_in_place(store, "produce", {"produce": {"value": 5}}, "x")
    with pytest.raises(StoredResultDamaged) as error:
        chain_flow().run(results_store=store, force="consume", observers=[recorder], **executor_kwargs)
    assert (error.value.task_name, error.value.key) == ("produce", "x")
    assert error.value.location.startswith(where)
    assert recorder.state("consume") == "failed"
    assert not store.is_finished("produce", {"produce": {"value": 5}})
    again = type(recorder)()
    results = chain_flow().run(results_store=store, observers=[again], return_results="latest", **executor_kwargs)
    assert again.executed == ["produce", "consume"]
    assert results["consume"][0].results == {"seen": [5, "default"]}
