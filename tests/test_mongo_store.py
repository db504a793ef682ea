"""MongoDBStore against a real MongoDB wire-protocol server (nx-27017): the run documents, inline
and GridFS objects, no orphaned files, indexes, sweep counters, one client per store and process,
and failures (unreachable server, server gone mid-run). The shared store and flow tests also run
against it (the "mongo" store in conftest)."""

import math
import multiprocessing
import os
import pickle
import signal

import pytest

import pipelines as p
from fluidml import Flow, TaskSpec
from fluidml.config import config_digest, config_hash
from fluidml.exception import ResultsStoreError
from fluidml.storage import MongoDBStore, StoreContext
from mongo_server import MongoTestServer, free_port, mongo_db_name

pytestmark = pytest.mark.mongo

A1 = {"A": {"x": 1}}
A2 = {"A": {"x": 2}}
CHUNK = 255 * 1024  # GridFS default chunk size


@pytest.fixture
def store(mongo_server, tmp_path):
    with MongoDBStore(mongo_db_name(tmp_path), host=mongo_server.uri) as store:
        yield store


@pytest.fixture
def client(mongo_server):
    """A pymongo client of its own, to look at what the store wrote."""
    import pymongo

    with pymongo.MongoClient(mongo_server.uri) as client:
        yield client


def count(client, store, collection):
    """Documents in a collection, counted with an aggregation ($count)."""
    found = list(client[store.db][collection].aggregate([{"$count": "n"}]))
    return found[0]["n"] if found else 0


def gridfs_counts(client, store):
    """(files, chunks) in the store's GridFS bucket."""
    bucket = store.collection_name
    return count(client, store, f"{bucket}.files"), count(client, store, f"{bucket}.chunks")


def test_one_document_per_run_keyed_by_task_and_config_digest(store, client):
    """Objects of one run share one document that holds the task name, the config digest and hash,
    the unique config itself (for queries) and the sweep counter."""
    store.save(1, "v", type_="pickle", task_name="A", task_unique_config=A1)
    store.save({"k": "w"}, "w", type_="json", task_name="A", task_unique_config=A1)
    store.save(2, "v", type_="pickle", task_name="A", task_unique_config=A2)
    docs = list(client[store.db]["task_result"].find({"task": "A"}).sort("sweep_counter"))
    assert [d["config"] for d in docs] == [A1, A2]
    assert [d["digest"] for d in docs] == [config_digest(A1), config_digest(A2)]
    assert [d["hash"] for d in docs] == [config_hash(A1), config_hash(A2)]
    assert [d["sweep_counter"] for d in docs] == ["000", "001"]
    assert pickle.loads(docs[0]["obj:w"]) == {"k": "w"}
    assert client[store.db]["task_result"].find_one({"config.A.x": 2})["digest"] == config_digest(A2)


def test_object_names_with_dots_and_dollars_stay_apart(store):
    """Names are escaped in the document, so "a.b", "a%2Eb", "$x" and ".hidden" are four objects."""
    names = ["a.b", "a%2Eb", "$x", ".hidden"]
    for i, name in enumerate(names):
        store.save(i, name, type_=None, task_name="A", task_unique_config=A1)
    assert [store.load(name, "A", A1) for name in names] == [0, 1, 2, 3]


def test_small_objects_stay_inline_large_ones_go_to_gridfs(store, client):
    """An object that pickles to more than inline_limit bytes is a GridFS file; smaller ones are not."""
    store.inline_limit = 1000
    store.save(b"s" * 100, "small", type_=None, task_name="A", task_unique_config=A1)
    store.save(b"L" * 5000, "large", type_=None, task_name="A", task_unique_config=A1)
    doc = client[store.db]["task_result"].find_one({"task": "A"})
    assert isinstance(doc["obj:small"], bytes)
    assert doc["obj:large"]["size"] > 5000
    assert gridfs_counts(client, store)[0] == 1
    assert store.load("small", "A", A1) == b"s" * 100
    assert store.load("large", "A", A1) == b"L" * 5000
    assert store.load("large", "A", A1, lazy=True) == b"L" * 5000  # lazy has no effect, as in the original


def test_a_100_mb_numpy_array_round_trips(store, client):
    """A 100 MB array is written to GridFS in chunks and loads back equal."""
    np = pytest.importorskip("numpy", reason="numpy (in the test extra) is needed for the array test")
    array = np.arange(100 * 2**20 // 8, dtype=np.int64)
    store.save(array, "array", type_="pickle", task_name="A", task_unique_config=A1)
    files, chunks = gridfs_counts(client, store)
    assert files == 1 and chunks == math.ceil(client[store.db]["task_result.files"].find_one()["length"] / CHUNK)
    loaded = store.load("array", "A", A1)
    assert loaded.dtype == array.dtype and np.array_equal(loaded, array)


def test_overwrites_and_deletes_leave_no_gridfs_files_behind(store, client):
    """Replacing, deleting and deleting runs removes the GridFS files (and chunks) they held."""
    store.inline_limit = 1000
    big = b"x" * 3 * CHUNK
    store.save(big, "obj", type_=None, task_name="A", task_unique_config=A1)
    store.save(big + b"y", "obj", type_=None, task_name="A", task_unique_config=A1)
    assert gridfs_counts(client, store) == (1, 4)
    assert store.load("obj", "A", A1) == big + b"y"
    store.save(b"small now", "obj", type_=None, task_name="A", task_unique_config=A1)
    assert gridfs_counts(client, store) == (0, 0)
    store.save(big, "obj", type_=None, task_name="A", task_unique_config=A1)
    store.delete("obj", "A", A1)
    assert gridfs_counts(client, store) == (0, 0) and store.load("obj", "A", A1) is None
    store.save(big, "obj", type_=None, task_name="A", task_unique_config=A1)
    store.save(big, "obj", type_=None, task_name="A", task_unique_config=A2)
    store.delete_run("A", A1)
    assert gridfs_counts(client, store) == (1, 4)
    assert store.load("obj", "A", A2) == big


def test_forced_reruns_leave_no_gridfs_files_behind(store, client, recorder):
    """A flow whose tasks save large objects, forced three times, keeps one file per object."""
    store.inline_limit = 1000
    flow = Flow([TaskSpec(task=p.source, config={"value": ["a" * 5000, "b" * 5000]}, expand="product")])
    for _ in range(3):
        flow.run(results_store=store, force="all", observers=[recorder])
    assert len(recorder.executed) == 6
    assert gridfs_counts(client, store)[0] == 2


def test_index_on_task_and_digest_is_created_once(store, client, tmp_path, mongo_server):
    """The unique index exists after first use, and a second store does not add another one."""
    store.save(1, "v", type_=None, task_name="A", task_unique_config=A1)
    indexes = list(client[store.db]["task_result"].list_indexes())
    with MongoDBStore(store.db, host=mongo_server.uri) as second:
        second.save(2, "v", type_=None, task_name="A", task_unique_config=A1)
    assert list(client[store.db]["task_result"].list_indexes()) == indexes
    keyed = [i for i in indexes if list(i["key"]) == ["task", "digest"]]
    assert len(keyed) == 1 and keyed[0]["unique"]
    assert count(client, store, "task_result") == 1


def test_collections_of_two_stores_are_separate(store, mongo_server, client):
    """Stores with different collection names in one database see only their own runs and files."""
    store.inline_limit = 10
    with MongoDBStore(store.db, collection_name="other", host=mongo_server.uri) as other:
        other.inline_limit = 10
        store.save("mine" * 10, "v", type_=None, task_name="A", task_unique_config=A1)
        other.save("theirs" * 10, "v", type_=None, task_name="A", task_unique_config=A1)
        assert store.load("v", "A", A1) == "mine" * 10
        assert other.load("v", "A", A1) == "theirs" * 10
        other.delete_run("A", A1)
        assert store.load("v", "A", A1) == "mine" * 10
    assert gridfs_counts(client, store)[0] == 1
    assert count(client, store, "other.files") == 0


def test_stored_configs_list_runs_with_objects(store):
    """stored_configs() lists each run's unique config, so a larger config finds an upstream run;
    a deleted run is no longer listed."""
    b_config = {**A2, "B": {"y": 5}}
    store.save(1, "v", type_=None, task_name="A", task_unique_config=A1)
    store.save(2, "v", type_=None, task_name="A", task_unique_config=A2)
    assert sorted(c["A"]["x"] for c in store.stored_configs("A")) == [1, 2]
    assert store.find_unique_config("A", b_config) == A2
    store.delete_run("A", A2)
    assert store.stored_configs("A") == [A1]
    assert store.find_unique_config("A", b_config) is None


def test_sweep_counters_number_a_tasks_runs(store):
    """get_context gives each new run of a task the next counter; a run keeps its counter, also
    after delete_run (so a forced re-run keeps its id)."""
    assert store.get_context("A", A1) == StoreContext(run_dir=None, sweep_counter="000")
    assert store.get_context("A", A2) == StoreContext(run_dir=None, sweep_counter="001")
    assert store.get_context("B", A1).sweep_counter == "000"
    store.delete_run("A", A1)
    assert store.get_context("A", A1).sweep_counter == "000"
    assert store.get_context("A", {"A": {"x": 3}}).sweep_counter == "002"


def test_task_ids_carry_the_sweep_counter_and_survive_force(store, recorder):
    """Tasks are named <run name>-<counter>; a forced re-run keeps the run name and counter."""
    flow = Flow([TaskSpec(task=p.source, config={"value": [1, 2]}, expand="product")])
    flow.run(results_store=store, run_name="first")
    ids = sorted(store.load("fluidml_info", "source", {"source": {"value": v}})["id"] for v in (1, 2))
    assert ids == ["first-000", "first-001"]
    flow.run(results_store=store, run_name="second", force="all", observers=[recorder])
    assert len(recorder.executed) == 2
    assert sorted(store.load("fluidml_info", "source", {"source": {"value": v}})["id"] for v in (1, 2)) == ids


def _register_names(store, prefix, count):
    for i in range(count):
        store._register_result(f"{prefix}{i}", "A", A1)


def test_concurrent_registrations_are_all_kept(store):
    """Four processes adding names to one run's registry at once lose none (atomic updates)."""
    store.save(0, "v", type_=None, task_name="A", task_unique_config=A1)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_register_names, args=(store, f"p{n}-", 15)) for n in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0] * 4
    names = store.load(".saved_results", "A", A1)
    assert len(names) == 60 and set(names) == {f"p{n}-{i}" for n in range(4) for i in range(15)}


def _run_grid(store, values):
    Flow([TaskSpec(task=p.source, config={"value": values}, expand="product")]).run(results_store=store)


def test_two_processes_running_one_flow_at_once_share_the_runs(store, client):
    """Two processes run the same grid into one database at the same time: one document per run,
    each finished, with distinct sweep counters."""
    values = list(range(20))
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_run_grid, args=(store, values)) for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0]
    docs = list(client[store.db]["task_result"].find({"task": "source"}))
    assert len(docs) == 20 and {d["state"] for d in docs} == {"finished"}
    assert len({d["sweep_counter"] for d in docs}) == 20
    assert sorted(store.load("x", "source", {"source": {"value": v}}) for v in values) == values


def test_store_pickles_without_its_client(store):
    """A used store pickles without any connection; the copy connects on its own first use."""
    store.save(1, "v", type_=None, task_name="A", task_unique_config=A1)
    assert store._client is not None
    copy = pickle.loads(pickle.dumps(store))
    assert copy._client is None and copy._handles is None
    assert copy.load("v", "A", A1) == 1
    assert copy._client is not None and copy._client is not store._client
    copy.close()


def test_one_client_per_store(store):
    """Every operation of a store goes through the client it made first."""
    store.save(1, "v", type_=None, task_name="A", task_unique_config=A1)
    client = store._client
    for i in range(20):
        store.save(i, "v", type_=None, task_name="A", task_unique_config=A1)
        store.load("v", "A", A1)
    assert store._client is client


def _save_in_child(store, queue):
    import warnings

    warnings.simplefilter("error")  # e.g. pymongo's "MongoClient opened before fork"
    inherited = store._client
    store.save(os.getpid(), "pid", type_=None, task_name="A", task_unique_config=A1)
    queue.put((inherited is None or store._client is not inherited, store._pid == os.getpid()))
    store.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_processes_make_their_own_client(store, method):
    """A store used in the parent and handed to a forked or spawned process connects anew there."""
    store.save(0, "pid", type_=None, task_name="A", task_unique_config=A1)
    ctx = multiprocessing.get_context(method)
    queue = ctx.Queue()
    proc = ctx.Process(target=_save_in_child, args=(store, queue))
    proc.start()
    result = queue.get(timeout=60)
    proc.join(60)
    assert proc.exitcode == 0 and result == (True, True)
    assert store.load("pid", "A", A1) == proc.pid


def test_an_unreachable_server_fails_the_run_at_its_start(tmp_path, recorder):
    """A store whose server does not answer fails Flow.run before any task runs, naming the server."""
    port = free_port()
    store = MongoDBStore("db", host=f"mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=300")
    unreachable = f"MongoDB server at 127.0.0.1:{port} is not reachable"
    with pytest.raises(ResultsStoreError, match=unreachable) as error:
        Flow([TaskSpec(task=p.source, config={"value": 1})]).run(results_store=store, observers=[recorder])
    assert (error.value.task_name, error.value.key) == ("source", "fluidml_info")
    assert 'while loading "fluidml_info" of task "source"' in str(error.value)
    assert recorder.ended == []
    assert store._client is None  # nothing left open


def test_a_server_that_goes_away_fails_the_running_task(tmp_path, recorder):
    """The server dies (SIGKILL) while the second task runs: the run fails with an error naming the
    server, and after a restart the first task is still finished and the rest runs."""
    server = MongoTestServer(tmp_path / "data").start()
    uri = f"{server.uri}/?serverSelectionTimeoutMS=500"
    killed = tmp_path / "killed"

    def kill_server(x, task):
        if not killed.exists():
            killed.touch()
            os.kill(server.pid, signal.SIGKILL)
            server.process.wait()
        task.save(x + 1, "x")

    def flow():
        src = TaskSpec(task=p.source, config={"value": 1})
        mid = TaskSpec(task=kill_server, name="mid")
        end = TaskSpec(task=p.double, config={})
        mid.requires(src)
        end.requires(mid)
        return Flow([src, mid, end])

    store = MongoDBStore("midrun", host=uri)
    try:
        gone = f"MongoDB server at 127.0.0.1:{server.port} is not reachable"
        with pytest.raises(ResultsStoreError, match=gone) as error:
            flow().run(results_store=store, observers=[recorder])
        assert error.value.task_name == "mid"
        assert recorder.state("mid") == "failed" and recorder.state("double") == "upstream_failed"
        recorder.ended.clear()
        server = MongoTestServer(tmp_path / "data", port=server.port).start()
        assert store.is_finished("source", {"source": {"value": 1}})
        assert store.load("x", "source", {"source": {"value": 1}}) == 1
        results = flow().run(results_store=store, observers=[recorder], return_results="latest")
        assert recorder.cached == ["source"] and recorder.executed == ["mid", "double"]
        assert results["double"][0].results == {"y": 4}
    finally:
        store.close()
        server.stop()
