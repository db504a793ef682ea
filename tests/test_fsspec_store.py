"""FsspecStore on the local S3 server, in memory and on a local path: the layout (LocalFileStore's format
2), types and options, lazy loads, open(), deletes, counters, the run index, listings and damage.
(The store contract and the flow-level tests run on it too: the "s3" and "fsspec-memory" stores of
conftest.py.)"""

import gzip
import json
import os
import pickle
import zlib

import pytest

from fluidml import Flow, TaskSpec
from fluidml.exception import ResultsStoreError, StoredResultDamaged
from conftest import Recorder
from custom_types import Doubled, load_doubled, load_from_dir, save_doubled, save_to_dir
from fluidml.storage import Damage, FsspecStore, ObjectMeta, Promise, TypeInfo
from fsspec_kinds import kind, location, raw, store  # noqa: F401  (fixtures)

A1 = {"A": {"x": 1}}
A2 = {"A": {"x": 2}}


def source(x, task):
    task.save({"x": x}, "record", type_="json")
    task.save(x * 10, "scaled")


def step(record, y, task):
    task.save(record["x"] + y, "total")


def gather(total, task):
    task.save(sorted(s.value for s in total), "totals", type_="json")


def grid_flow(xs=(1, 2)):
    a = TaskSpec(task=source, name="A", config={"x": list(xs)}, expand="product")
    b = TaskSpec(task=step, name="b", config={"y": [1, 2]}, expand="product")
    c = TaskSpec(task=gather, name="c", reduce=True)
    b.requires(a)
    c.requires(b)
    return Flow([a, b, c])


# ----------------------------------------------------------------------------------- layout


def test_layout_is_local_file_store_format_2(store, raw):
    """<prefix>/<task>/<run>-<NNN>/ with config.json, the objects and fluidml_info.json, whose "fluidml"
    entry lists each object's type, dir, size and CRC-32; the index lives under .fluidml/."""
    grid_flow().run(num_workers=1, run_name="first", project_name="proj", results_store=store)
    assert raw.keys("A/first-001") == ["A/first-001/config.json", "A/first-001/fluidml_info.json",
                                       "A/first-001/record.json", "A/first-001/scaled.p"]
    assert json.loads(raw.read("A/first-001/config.json")) == A2
    assert raw.read("A/first-001/config.json").decode().startswith('{\n    "A": {')
    info = json.loads(raw.read("A/first-001/fluidml_info.json"))
    assert info["state"] == "finished" and info["id"] == "first-001" and info["project_name"] == "proj"
    record = raw.read("A/first-001/record.json")
    assert info["fluidml"]["unique_name"] == "A-2"
    assert {k: v for k, v in info["fluidml"].items() if k in ("format", "objects")} == {"format": 2, "objects": {
        "record": {"type": "json", "dir": ".", "size": len(record), "crc32": f"{zlib.crc32(record):08x}",
                   "load_kwargs": {}, "open_kwargs": {}},
        "scaled": {"type": "pickle", "dir": ".", "size": len(raw.read("A/first-001/scaled.p")),
                   "crc32": f"{zlib.crc32(raw.read('A/first-001/scaled.p')):08x}", "load_kwargs": {},
                   "open_kwargs": {}}}}
    assert [k.split("/")[0] for k in raw.keys()].count("c") == 3  # config, totals, info
    assert len(raw.keys(".fluidml/claims/b")) == 4 and len(raw.keys(".fluidml/index/b")) == 4
    assert sorted(k.rsplit("/", 1)[1] for k in raw.keys(".fluidml/index/A")) == ["first-000", "first-001"]


def test_counters_are_per_run_name_and_direct_use_counts_only(store, raw):
    """New runs are <run_name>-<NNN> with the next counter of that run name; without one just <NNN>."""
    grid_flow().run(num_workers=1, run_name="first", results_store=store)
    grid_flow(xs=(1, 2, 3)).run(num_workers=1, run_name="second", results_store=store)
    assert sorted({k.split("/")[1] for k in raw.keys("A")}) == ["first-000", "first-001", "second-000"]
    store.run_info = None  # outside a flow
    assert store.get_context("Z", A1).sweep_counter == "000"
    assert store.get_context("Z", A2).sweep_counter == "001"
    assert store.get_context("Z", A1).sweep_counter == "000"
    assert raw.keys("Z") == ["Z/000/config.json", "Z/001/config.json"]


def test_forced_tasks_keep_their_run_and_a_fresh_store_finds_everything(location, raw, recorder):
    """A forced task re-runs in its old run (old objects gone first); a new store object on the same
    URL sees every run as cached."""
    store = FsspecStore(location[0], **location[1])
    grid_flow().run(num_workers=1, run_name="first", results_store=store)
    raw.write("A/first-000/stray.txt", b"left from before")
    grid_flow().run(num_workers=1, run_name="second", results_store=store, force="A", observers=[recorder])
    assert sorted(recorder.executed) == ["A-1", "A-2"]
    assert not raw.exists("A/first-000/stray.txt")
    assert json.loads(raw.read("A/first-000/fluidml_info.json"))["run_name"] == "first"
    again = Recorder()
    results = grid_flow().run(num_workers=1, results_store=FsspecStore(location[0], **location[1]),
                              return_results="latest", observers=[again])
    assert again.executed == [] and len(again.cached) == 7
    assert results["c"][0].results == {"totals": [2, 3, 3, 4]}


# ----------------------------------------------------------------------------------- types and options


def save_to_file(obj, path):
    with open(path, "wb") as f:
        f.write(obj)


def load_from_file(path):
    with open(path, "rb") as f:
        return f.read()


def with_types(store):
    store.type_registry["doubled"] = TypeInfo(save_doubled, load_doubled, "dbl")
    store.type_registry["folder"] = TypeInfo(save_to_dir, load_from_dir, needs_path=True)
    store.type_registry["blob"] = TypeInfo(save_to_file, load_from_file, "bin", needs_path=True)
    store.type_registry["gz"] = TypeInfo(pickle.dump, pickle.load, "p.gz", is_binary=True, open_fn=gzip.open)
    return store


def test_types_kwargs_and_sub_dirs(store, raw):
    """Built-in and registered types round-trip (text, gzip through open_fn, path-based files and
    directories); serializer kwargs, sub_dir, load_kwargs and open_kwargs work as for LocalFileStore."""
    store = with_types(store)
    store.save({"b": 1, "a": 2}, "cfg", "json", "A", A1, sub_dir="configs/v1", indent=4, sort_keys=True)
    store.save("héllo", "latin", "text", "A", A1, open_kwargs={"encoding": "latin-1"})
    store.save({"n": 1.5}, "num", "json", "A", A1, load_kwargs={"parse_float": str})
    store.save(Doubled(7), "d", "doubled", "A", A1, sep="|", load_kwargs={"sep": "|"})
    store.save({"a.txt": "A", "b.txt": "B"}, "f", "folder", "A", A1)
    store.save(b"\x00" * 1000, "raw", "blob", "A", A1)
    store.save(list(range(100)), "zipped", "gz", "A", A1)
    store.save("e", "ev", "event", "A", A1)
    store.save({"state": "finished"}, "fluidml_info", "json", "A", A1)
    fresh = with_types(FsspecStore(store._url, **store._options))
    assert raw.read("A/000/configs/v1/cfg.json").decode() == '{\n    "a": 2,\n    "b": 1\n}'
    assert fresh.load("cfg", "A", A1) == {"a": 2, "b": 1}
    assert raw.read("A/000/latin.txt") == "héllo".encode("latin-1") and fresh.load("latin", "A", A1) == "héllo"
    assert fresh.load("num", "A", A1) == {"n": "1.5"} and fresh.load("num", "A", A1, parse_float=float) == {"n": 1.5}
    assert fresh.load("d", "A", A1).value == 7 and raw.read("A/000/d.dbl") == b"7|7"
    assert fresh.load("f", "A", A1) == {"a.txt": "A", "b.txt": "B"}
    assert raw.keys("A/000/f") == ["A/000/f/a.txt", "A/000/f/b.txt"]
    assert fresh.load("raw", "A", A1) == b"\x00" * 1000
    assert pickle.loads(gzip.decompress(raw.read("A/000/zipped.p.gz"))) == list(range(100))
    assert fresh.load("zipped", "A", A1) == list(range(100)) and fresh.load("ev", "A", A1) == "e"
    store.save({"c.txt": "C"}, "f", "folder", "A", A1)  # a directory object is replaced as a whole
    assert fresh.load("f", "A", A1) == {"c.txt": "C"}
    objects = json.loads(raw.read("A/000/fluidml_info.json"))["fluidml"]["objects"]
    assert objects["cfg"]["dir"] == "configs/v1" and objects["f"]["crc32"] is None and objects["f"]["size"] == 1
    assert objects["latin"]["open_kwargs"] == {"encoding": "latin-1"}


def test_kwargs_json_cannot_hold_are_kept_pickled(store, raw):
    """load_kwargs that are not JSON (a function) are kept base64-pickled and used by later loads."""
    store.save({"n": 1.5}, "num", "json", "A", A1, load_kwargs={"parse_float": str.upper})
    store.save({"state": "finished"}, "fluidml_info", "json", "A", A1)
    entry = json.loads(raw.read("A/000/fluidml_info.json"))["fluidml"]["objects"]["num"]
    assert "kwargs_pickle" in entry and "load_kwargs" not in entry
    assert FsspecStore(store._url, **store._options).load("num", "A", A1) == {"n": "1.5"}


def test_bad_names_types_and_modes_are_refused(store):
    """Names that are not file names, sub_dirs leaving the run, unknown types and "+" modes raise."""
    with pytest.raises(ValueError, match="object name 'a/b'"):
        store.save(1, "a/b", "json", "A", A1)
    with pytest.raises(ValueError, match="task name '../x'"):
        store.save(1, "v", "json", "../x", A1)
    with pytest.raises(ValueError, match="leaves the run's directory"):
        store.save(1, "v", "json", "A", A1, sub_dir="../elsewhere")
    with pytest.raises(KeyError, match=r"'yaml'.*\['event', 'json', 'pickle', 'text'\]"):
        store.save(1, "v", "yaml", "A", A1)
    with pytest.raises(ValueError, match=r"mode 'r\+'"):
        store.save(1, "v", "text", "A", A1, mode="r+")


# ----------------------------------------------------------------------------------- lazy loads, open()


def test_lazy_loads_give_promises(store, kind):
    """lazy=True gives an FsspecPromise; it pickles where other processes reach the store and says why
    not for memory://."""
    store.save([1, 2], "v", "pickle", "A", A1)
    promise = store.load("v", "A", A1, lazy=True)
    assert isinstance(promise, Promise) and promise.load() == [1, 2]
    assert store.load("nothing", "A", A1, lazy=True) is None
    with store.open(promise=promise) as f:
        assert f.load() == [1, 2]
    if kind == "memory":
        assert not store.process_safe
        with pytest.raises(TypeError, match="keeps its objects in this process"):
            pickle.dumps(promise)
    else:
        assert store.process_safe and pickle.loads(pickle.dumps(promise)).load() == [1, 2]


def test_open_streams_and_an_object_appears_when_closed(store, raw):
    """open("w") writes in pieces; the object appears when the file is closed; an exception inside the
    with block leaves nothing; open("r") reads it back."""
    f = store.open("log", "A", A1, mode="w", type_="text")
    assert f.write("one\n") == 4
    f.writelines(["two\n", "three\n"])
    assert not raw.exists("A/000/log.txt")
    f.close()
    assert f.closed and raw.read("A/000/log.txt") == b"one\ntwo\nthree\n"
    with pytest.raises(RuntimeError):
        with store.open("broken", "A", A1, mode="w", type_="text") as f:
            f.write("half")
            raise RuntimeError("the task failed mid-write")
    assert not raw.exists("A/000/broken.txt") and store.load("broken", "A", A1) is None
    with store.open("log", "A", A1, mode="r") as f:
        assert f.readline() == "one\n" and f.read() == "two\nthree\n"
    with store.open("blob", "A", A1, mode="w", type_="pickle") as f:
        assert "b" in f.mode
        f.save({"k": 1})
    assert store.load("blob", "A", A1) == {"k": 1}
    with pytest.raises(FileNotFoundError, match='no saved object "nothing"'):
        store.open("nothing", "A", A1, mode="r")
    with pytest.raises(ValueError, match="missing: mode"):
        store.open("log", "A", A1)


def test_append_works_where_the_file_system_can_and_is_refused_elsewhere(store, kind):
    """mode "a" appends on local paths and memory://; on object storage it is a ResultsStoreError that
    names the object and suggests "w" (DECISIONS E4)."""
    store.save("one\n", "log", "text", "A", A1)
    if kind == "s3":
        with pytest.raises(ResultsStoreError, match=r'"log" of task "A" cannot be appended to.*mode "w"'):
            store.open("log", "A", A1, mode="a")
        with pytest.raises(ResultsStoreError, match='mode "w"'):
            store.save("two\n", "log", "text", "A", A1, mode="a")
        return
    with store.open("log", "A", A1, mode="a") as f:
        f.write("two\n")
    store.save("three\n", "log", "text", "A", A1, mode="a")
    assert store.load("log", "A", A1) == "one\ntwo\nthree\n"
    store.save({"state": "finished"}, "fluidml_info", "json", "A", A1)
    assert store.run_damage("A", A1, deep=True) == []  # size and CRC-32 follow the appends


def streamer(task):
    with task.open("stream", mode="w", type_="text") as f:
        for i in range(3):
            f.write(f"line {i}\n")


def stream_reader(stream: Promise, task):
    with task.open(promise=stream, mode="r") as f:
        task.save([line.strip() for line in f], "lines", type_="json")


def test_task_open_registers_the_object_for_successors(store):
    """An object written through Task.open is a result that successors receive (here lazily)."""
    w = TaskSpec(task=streamer)
    r = TaskSpec(task=stream_reader)
    r.requires(w)
    results = Flow([w, r]).run(num_workers=1, results_store=store, return_results="all")
    assert results["streamer"][0].results == {"stream": "line 0\nline 1\nline 2\n"}
    assert results["stream_reader"][0].results == {"lines": ["line 0", "line 1", "line 2"]}


# ----------------------------------------------------------------------------------- deletes


def test_delete_and_delete_run_leave_nothing_behind(store, raw):
    """delete() removes one object and its entry; delete_run() removes the run's objects, claim and
    marker; the config then gets the next counter, or its old one when that is asked for."""
    grid_flow().run(num_workers=1, run_name="r", results_store=store)
    store.delete("scaled", "A", A1)
    assert not raw.exists("A/r-000/scaled.p") and store.load("scaled", "A", A1) is None
    assert list(json.loads(raw.read("A/r-000/fluidml_info.json"))["fluidml"]["objects"]) == ["record"]
    store.delete_run("A", A1)
    store.delete_run("A", A1)
    assert raw.keys("A/r-000") == [] and len(raw.keys(".fluidml/claims/A")) == 1
    assert [k.rsplit("/", 1)[1] for k in raw.keys(".fluidml/index/A")] == ["r-001"]
    assert store.load("record", "A", A1) is None and store.load("record", "A", A2) == {"x": 2}
    store.run_info = {"run_name": "r", "sweep_counter": "000"}
    assert store.get_context("A", A1).sweep_counter == "000"


# ----------------------------------------------------------------------------------- index, listings, damage


def test_a_run_deleted_by_another_process_is_made_whole_before_it_is_written(location, raw):
    """A store object that knew a run which another one deleted makes it again (config.json, claim,
    marker) when it gets the run's context to write it, and the other store object then finds it."""
    url, options = location
    one, two = FsspecStore(url, **options), FsspecStore(url, **options)
    one.save({"state": "failed"}, "fluidml_info", "json", "A", A1)
    two.delete_run("A", A1)
    assert raw.keys() == []
    assert one.get_context("A", A1).sweep_counter == "000"
    assert raw.keys() == sorted(["A/000/config.json", raw.keys(".fluidml/claims")[0], raw.keys(".fluidml/index")[0]])
    one.save(2, "v", "json", "A", A1)
    one.save({"state": "finished"}, "fluidml_info", "json", "A", A1)
    assert two.load("v", "A", A1) == 2 and two.is_finished("A", A1)


def test_runs_without_markers_are_adopted_and_stale_markers_dropped(location, raw, recorder):
    """Run directories the index does not know (its markers and claims deleted) are found from their
    config.json; a marker whose directory is gone is dropped, and its config runs again."""
    url, options = location
    grid_flow().run(num_workers=1, run_name="r", results_store=FsspecStore(url, **options))
    for key in (".fluidml/index/A", ".fluidml/claims/A", "A/r-001", "b/r-000"):
        raw.remove_tree(key)
    grid_flow().run(num_workers=1, run_name="s", results_store=FsspecStore(url, **options), observers=[recorder])
    assert sorted(recorder.executed) == ["A-2", "b-1", "b-3", "b-4", "c"]  # (b-3, b-4, c: "upstream runs: A")
    assert sorted(k.rsplit("/", 1)[1] for k in raw.keys(".fluidml/index/A")) == ["r-000", "s-000"]
    assert sorted(k.rsplit("/", 1)[1] for k in raw.keys(".fluidml/index/b")) == ["r-001", "r-002", "r-003", "s-000"]
    assert len(raw.keys(".fluidml/claims/b")) == 4


def test_runs_and_task_names_list_what_is_stored(store):
    """task_names() and runs() describe every run: id, config, info and object types and sizes."""
    grid_flow().run(num_workers=1, run_name="r", results_store=store)
    assert store.task_names() == ["A", "b", "c"]
    runs = list(store.runs("A"))
    assert [(r.run_id, r.unique_config) for r in runs] == [("r-000", A1), ("r-001", A2)]
    assert runs[0].info["state"] == "finished" and runs[0].location == store.url + "/A/r-000"
    assert runs[0].objects == {"record": ObjectMeta("json", 8), "scaled": ObjectMeta("pickle", runs[0].objects[
        "scaled"].size)} and runs[0].objects["scaled"].size > 0
    assert sorted(c["A"]["x"] for c in store.stored_configs("A")) == [1, 2]
    assert store.find_unique_config("A", {"A": {"x": 2}, "b": {"y": 1}}) == A2


def test_damage_is_found_and_damaged_objects_do_not_load(store, raw):
    """A listed object that is missing, truncated or changed in place is reported by run_damage (the
    last only with deep=True), and loading it raises StoredResultDamaged naming task, object and URL."""
    grid_flow().run(num_workers=1, run_name="r", results_store=store)
    assert store.run_damage("A", A1, deep=True) == []
    raw.remove("A/r-000/scaled.p")
    record = raw.read("A/r-001/record.json")
    raw.write("A/r-001/record.json", record[:-2])
    total = raw.read("b/r-000/total.p")
    raw.write("b/r-000/total.p", total[:-2] + bytes([total[-2] ^ 1]) + total[-1:])
    [missing] = store.run_damage("A", A1)
    assert missing == Damage("A", "r-000", store.url + "/A/r-000/scaled.p", 'object "scaled" is missing')
    [short] = store.run_damage("A", A2)
    assert short.problem == f'object "record" has {len(record) - 2} bytes, but its run recorded {len(record)}'
    b11 = {"A": {"x": 1}, "b": {"y": 1}}
    assert store.run_damage("b", b11) == []
    assert "CRC-32" in store.run_damage("b", b11, deep=True)[0].problem
    with pytest.raises(StoredResultDamaged, match=r'"scaled" of task "A" .*A/r-000/scaled.p is missing') as info:
        FsspecStore(store._url, **store._options).load("scaled", "A", A1)
    assert (info.value.task_name, info.value.key, info.value.location) == ("A", "scaled", store.url + "/A/r-000/scaled.p")
    with pytest.raises(StoredResultDamaged, match="bytes, but its run recorded"):
        store.load("record", "A", A2)
    assert store.run_damage("A", {"A": {"x": 9}}) == []  # no run: nothing to report


def test_a_corrupted_info_warns_and_the_task_runs_again(store, raw, caplog, recorder):
    """A broken fluidml_info.json is named in a warning and its task runs again; the rest stays cached."""
    grid_flow().run(num_workers=1, run_name="r", results_store=store)
    raw.write("A/r-000/fluidml_info.json", b'{"state": "fini')
    with caplog.at_level("WARNING"):
        grid_flow().run(num_workers=1, results_store=store, observers=[recorder])
    assert recorder.executed == ["A-1", "b-1", "b-2", "c"]  # (and what is built on it: "upstream runs")
    assert any("A/r-000/fluidml_info.json" in r.getMessage() for r in caplog.records)
    assert json.loads(raw.read("A/r-000/fluidml_info.json"))["state"] == "finished"


def test_repr_and_pickling_keep_credentials_private(location, kind):
    """repr and url never show credentials; a pickled copy (what workers get) works on the same data."""
    url, options = location
    store = FsspecStore(url, **options)
    store.save(1, "v", "json", "A", A1)
    store.save({"state": "finished"}, "fluidml_info", "json", "A", A1)
    if kind == "s3":
        assert repr(store) == f"FsspecStore({url!r}, endpoint_url={options['endpoint_url']!r})"
        assert options["secret"] not in repr(store) and options["key"] not in repr(store)
    if kind != "memory":
        copy = pickle.loads(pickle.dumps(store))
        copy.save(2, "w", "json", "A", A1)
        assert copy.load("v", "A", A1) == 1 and store.load("w", "A", A1) == 2
    assert FsspecStore("s3://user:pw@bucket/p?sig=secret", anon=True).url == "s3://bucket/p"


def test_local_paths_without_hard_links_still_create_exclusively(tmp_path, monkeypatch):
    """Where the file system refuses hard links, a run is still made with an exclusive create."""
    import errno

    def no_links(source, target):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    store = FsspecStore(str(tmp_path / "store"))
    assert [store.get_context("A", config).sweep_counter for config in (A1, A2, A1)] == ["000", "001", "000"]
    assert json.loads((tmp_path / "store" / "A" / "001" / "config.json").read_text()) == A2
