"""Fault injection on a MongoDBStore (against the nx-27017 test server): a GridFS chunk or file
gone, an object's field gone, a run document whose info or registry is damaged. Each is an error
naming the task, the object and where it is, or a re-run; never a None or a shorter list."""

import logging
import pickle

import pytest
from bson import Binary

import integrity_tasks as t
from fluidml import Flow, TaskSpec
from fluidml.config import config_digest
from fluidml.exception import StoredResultDamaged
from fluidml.results import verify
from fluidml.storage import MongoDBStore
from mongo_server import mongo_db_name

pytestmark = pytest.mark.mongo

SIZE = 4 * 255 * 1024  # bytes of the object: 5 GridFS chunks of 255 KiB (its pickle is a little larger)
SRC = {"produce_bytes": {"size": SIZE}}
VALUE = bytes(range(256)) * (SIZE // 256)


@pytest.fixture
def store(mongo_server, tmp_path):
    with MongoDBStore(mongo_db_name(tmp_path), host=mongo_server.uri) as store:
        store.inline_limit = 100  # objects of SRC go to GridFS
        yield store


def chain_flow():
    produce = TaskSpec(task=t.produce_bytes, config={"size": SIZE})
    consume = TaskSpec(task=t.consume)
    consume.requires(produce)
    return Flow([produce, consume])


def run_doc(store, task_name, config):
    return store._collections().runs.find_one({"task": task_name, "digest": config_digest(config)})


def file_of(store, task_name, config, name):
    return run_doc(store, task_name, config)[f"obj:{name}"]["gridfs"]


def drop_chunk(store, file_id, n):
    """Removes chunk ``n`` of a GridFS file (nx-27017 deletes every chunk of the file on a delete
    that filters on "n" too, so the others are put back)."""
    chunks = store._collections().chunks
    kept = [doc for doc in chunks.find({"files_id": file_id}, sort=[("n", 1)]) if doc["n"] != n]
    chunks.delete_many({"files_id": file_id})
    chunks.insert_many(kept)
    assert sorted(doc["n"] for doc in chunks.find({"files_id": file_id}, {"n": 1})) == [i for i in range(5) if i != n]


def test_a_missing_gridfs_chunk_fails_the_successor_and_is_repaired(store, recorder):
    """A GridFS chunk of an upstream object is gone: the forced successor fails with
    StoredResultDamaged naming the task, the object and the GridFS file; the upstream run is marked
    not finished; the next run runs it and the successor again."""
    chain_flow().run(results_store=store)
    file_id = file_of(store, "produce_bytes", SRC, "x")
    drop_chunk(store, file_id, 1)
    where = f"{store.db}/task_result.files/{file_id}"
    with pytest.raises(StoredResultDamaged) as error:
        chain_flow().run(results_store=store, force="consume", observers=[recorder])
    assert (error.value.task_name, error.value.key, error.value.location) == ("produce_bytes", "x", where)
    assert f"{where} is missing chunk(s) 1 of 5" in str(error.value)
    assert run_doc(store, "produce_bytes", SRC)["state"] == "failed"
    again = type(recorder)()
    results = chain_flow().run(results_store=store, observers=[again], return_results="latest")
    assert again.executed == ["produce_bytes", "consume"]
    assert results["consume"][0].results == {"seen": [VALUE, "default"]}


def test_a_missing_gridfs_file_or_field_is_an_error_not_none(store):
    """An object whose GridFS file, or whose field in the run document, is gone while the run lists
    it raises on load and on get_results."""
    chain_flow().run(results_store=store)
    file_id = file_of(store, "produce_bytes", SRC, "x")
    store._collections().files.delete_one({"_id": file_id})
    with pytest.raises(StoredResultDamaged, match=f"task_result.files/{file_id} is missing"):
        store.load("x", "produce_bytes", SRC)
    chain_flow().run(results_store=store)  # repaired: produce_bytes runs again
    assert store.load("x", "produce_bytes", SRC) == VALUE
    key = {"task": "produce_bytes", "digest": config_digest(SRC)}
    store._collections().runs.update_one(key, {"$unset": {"obj:x": ""}})
    with pytest.raises(StoredResultDamaged, match="obj:x is missing, but the run lists the object as saved"):
        store.get_results("produce_bytes", SRC)
    assert store.load("never-saved", "produce_bytes", SRC) is None


@pytest.mark.parametrize("damage", ["garbage", "a list", "registry"])
def test_a_damaged_run_document_is_run_again(store, caplog, recorder, damage):
    """A run document whose info is not a pickled run info (bytes garbled, or a pickled list), or
    whose registry is not a list of names, counts as not finished: the next run runs it again
    ("results missing"), with a warning naming the document."""
    chain_flow().run(results_store=store)
    key = {"task": "produce_bytes", "digest": config_digest(SRC)}
    change = {"garbage": {"obj:fluidml_info": Binary(b"\x80\x05garbled")},
              "a list": {"obj:fluidml_info": Binary(pickle.dumps([]))},
              "registry": {"saved": "x"}}[damage]
    store._collections().runs.update_one(key, {"$set": change})
    doc_id = run_doc(store, "produce_bytes", SRC)["_id"]
    with pytest.raises(StoredResultDamaged, match=f"{store.db}/task_result/{doc_id}/"):
        store.load("fluidml_info", "produce_bytes", SRC)
    caplog.set_level(logging.INFO)
    chain_flow().run(results_store=store, observers=[recorder])
    assert recorder.executed == ["produce_bytes", "consume"]  # (consume is built on it: "upstream runs")
    assert 'Started task "produce_bytes" (results missing; config ' in caplog.text
    assert [r for r in caplog.records if r.levelno == logging.WARNING and str(doc_id) in r.getMessage()]
    assert store.is_finished("produce_bytes", SRC)


def grid():
    return Flow([TaskSpec(task=t.produce_bytes, config={"size": [SIZE, SIZE + 256, SIZE + 512]}, expand="product")])


def test_verify_lists_damage_without_changing_anything_and_repair_marks_it(store, recorder):
    """verify() checks every run (GridFS files and chunks counted, not read) and changes nothing;
    with repair=True the damaged runs are marked, and the next run runs exactly those again."""
    grid().run(results_store=store, run_name="r")
    first, second = {"produce_bytes": {"size": SIZE}}, {"produce_bytes": {"size": SIZE + 256}}
    file_id = file_of(store, "produce_bytes", first, "x")
    drop_chunk(store, file_id, 2)
    store._collections().runs.update_one({"task": "produce_bytes", "digest": config_digest(second)},
                                         {"$unset": {"obj:x": ""}})
    before = list(store._collections().runs.find({}, {"_id": 0}))
    found = verify(store)
    assert [(d.task_name, d.run_id, d.problem) for d in found] == [
        ("produce_bytes", "r-000", "is missing chunk(s) 2 of 5"),
        ("produce_bytes", "r-001", "is missing, but the run lists the object as saved")]
    assert found[0].location == f"{store.db}/task_result.files/{file_id}"
    assert str(found[0]) == f'task "produce_bytes", run r-000: is missing chunk(s) 2 of 5 ({found[0].location})'
    assert list(store._collections().runs.find({}, {"_id": 0})) == before
    assert len(verify(store, repair=True)) == 2
    assert [d.problem for d in verify(store)][:2] == ["is missing chunk(s) 2 of 5 (marked)",
                                                      "is missing chunk(s) 2 of 5"]
    grid().run(results_store=store, observers=[recorder])
    assert sorted(recorder.executed) == ["produce_bytes-1", "produce_bytes-2"]
    assert verify(store) == []


def test_an_unreachable_server_stops_the_run_leaving_every_task_not_run(recorder):
    """A server that cannot be reached stops the run at its first task, whatever exit_on_error says
    (StoreUnavailableError); no task started, and every one is listed as not run."""
    from fluidml.exception import StoreUnavailableError
    from mongo_server import free_port

    store = MongoDBStore("db", host=f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=300")
    flow = Flow([TaskSpec(task=t.produce, config={"value": [1, 2]}, expand="product")])
    with pytest.raises(StoreUnavailableError, match="is not reachable"):
        flow.run(results_store=store, exit_on_error=False, observers=[recorder])
    assert recorder.ended == []
    assert {name: state.value for name, state in recorder.summary.states.items()} == {
        "produce-1": "pending", "produce-2": "pending"}
