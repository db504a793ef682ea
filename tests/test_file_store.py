"""LocalFileStore against a real directory: the layout, types, save options, loads, open(), deletes,
contexts and the run index."""

import json
import logging
import os
import pickle
import zlib
from typing import List

import pytest

from fluidml import Flow, TaskSpec
from fluidml.storage import File, FilePromise, LazySweep, LocalFileStore, Promise, StoreContext, TypeInfo
from custom_types import Doubled, load_doubled, load_from_dir, save_doubled, save_to_dir

A1 = {"A": {"x": 1}}
A2 = {"A": {"x": 2}}


@pytest.fixture
def store(tmp_path):
    return LocalFileStore(str(tmp_path / "store"))


def listing(path):
    return sorted(os.listdir(path))


# ----------------------------------------------------------------------------------- tasks used below


def source(x, task):
    task.save({"x": x}, "record", type_="json")
    task.save(x * 10, "scaled")


def step(record, y, task):
    task.save(record["x"] + y, "total", type_="pickle")


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


def test_layout_is_the_originals(store, tmp_path):
    """<base>/<task>/<run_name>-<NNN>/ with config.json, the objects and fluidml_info.json, which lists
    the objects with their type, directory, size and checksum (run layout format 2)."""
    grid_flow().run(num_workers=1, run_name="first", project_name="proj", results_store=store)
    base = tmp_path / "store"
    assert listing(base) == [".fluidml", "A", "b", "c"]
    assert listing(base / "A") == ["first-000", "first-001"]
    assert listing(base / "b") == ["first-000", "first-001", "first-002", "first-003"]
    assert listing(base / "c") == ["first-000"]
    run = base / "A" / "first-001"
    assert listing(run) == ["config.json", "fluidml_info.json", "record.json", "scaled.p"]
    assert json.loads((run / "config.json").read_text()) == A2
    assert (run / "config.json").read_text().startswith('{\n    "A": {')  # indent 4, as the original
    info = json.loads((run / "fluidml_info.json").read_text())
    assert info["state"] == "finished" and info["project_name"] == "proj" and info["run_name"] == "first"
    assert info["sweep_counter"] == "001" and info["id"] == "first-001"
    assert info["run_history"] == {"A": "first-001"}
    record, scaled = (run / "record.json").read_bytes(), (run / "scaled.p").read_bytes()
    assert info["fluidml"]["format"] == 2
    assert info["fluidml"]["objects"] == {
        "record": {"type": "json", "dir": ".", "size": len(record), "crc32": f"{zlib.crc32(record):08x}",
                   "load_kwargs": {}, "open_kwargs": {}},
        "scaled": {"type": "pickle", "dir": ".", "size": len(scaled), "crc32": f"{zlib.crc32(scaled):08x}",
                   "load_kwargs": {}, "open_kwargs": {}},
    }
    assert list(info["fluidml"]["objects"]) == ["record", "scaled"]  # the order they were saved in
    assert json.loads(record) == {"x": 2}
    assert json.loads((base / "c" / "first-000" / "totals.json").read_text()) == [2, 3, 3, 4]


def test_sweep_counters_are_per_run_name(store, tmp_path):
    """A later run with a new grid value adds <run_name>-000 next to the first run's directories."""
    grid_flow().run(num_workers=1, run_name="first", results_store=store)
    grid_flow(xs=(1, 2, 3)).run(num_workers=1, run_name="second", results_store=store)
    base = tmp_path / "store"
    assert listing(base / "A") == ["first-000", "first-001", "second-000"]
    assert listing(base / "b") == ["first-000", "first-001", "first-002", "first-003", "second-000", "second-001"]
    assert listing(base / "c") == ["first-000", "second-000"]  # its merged config changed
    assert json.loads((base / "A" / "second-000" / "config.json").read_text()) == {"A": {"x": 3}}


def test_run_names_that_share_a_prefix_count_separately(store, tmp_path):
    """Counters match the run name exactly (the original also counted "run2-000" for run "run")."""
    store.run_info = {"run_name": "run2"}
    store.get_context("A", A1)
    store.run_info = {"run_name": "run"}
    assert store.get_context("A", A2).sweep_counter == "000"
    assert listing(tmp_path / "store" / "A") == ["run-000", "run2-000"]


def test_cached_and_forced_tasks_keep_their_run_dirs(store, tmp_path, recorder):
    """A cached task is not re-run; a forced one re-runs in its old directory, under its old run name."""
    grid_flow().run(num_workers=1, run_name="first", results_store=store)
    info_path = tmp_path / "store" / "A" / "first-000" / "fluidml_info.json"
    started = json.loads(info_path.read_text())["started"]
    (tmp_path / "store" / "A" / "first-000" / "stray.txt").write_text("left from before")
    grid_flow().run(num_workers=1, run_name="second", results_store=store, force="A", observers=[recorder])
    assert sorted(recorder.executed) == ["A-1", "A-2"]
    assert sorted(recorder.cached) == ["b-1", "b-2", "b-3", "b-4", "c"]
    assert listing(tmp_path / "store" / "A") == ["first-000", "first-001"]
    assert not (tmp_path / "store" / "A" / "first-000" / "stray.txt").exists()  # the run was deleted first
    info = json.loads(info_path.read_text())
    assert info["run_name"] == "first" and info["id"] == "first-000" and info["started"] != started


def test_a_failed_run_is_run_again_in_its_directory(store, tmp_path, recorder):
    """A run whose info says failed runs again next time, in the same directory."""
    def flaky(task, fail):
        task.save(1, "v")
        if fail:
            raise RuntimeError("boom")

    spec = TaskSpec(task=flaky, config={"_fail": True}, config_ignore_prefix="_")
    Flow([spec]).run(num_workers=1, run_name="one", results_store=store, exit_on_error=False)
    assert json.loads((tmp_path / "store" / "flaky" / "one-000" / "fluidml_info.json").read_text())["state"] == "failed"
    spec = TaskSpec(task=flaky, config={"_fail": False}, config_ignore_prefix="_")
    Flow([spec]).run(num_workers=1, run_name="two", results_store=store, observers=[recorder])
    assert recorder.executed == ["flaky"]
    assert listing(tmp_path / "store" / "flaky") == ["one-000"]
    assert store.is_finished("flaky", {"flaky": {}})


def test_direct_use_names_runs_by_counter(store, tmp_path):
    """Outside a flow (no run_info) a run directory is just the counter, as the original."""
    expected = StoreContext(run_dir=str(tmp_path / "store" / "A" / "000"), sweep_counter="000")
    assert store.get_context("A", A1) == expected
    assert store.get_context("A", A2).sweep_counter == "001"
    assert store.get_context("A", A1).sweep_counter == "000"  # an existing run: the same directory
    assert os.path.isdir(tmp_path / "store" / "A" / "001")


# ----------------------------------------------------------------------------------- types and save options


def test_builtin_types_and_the_pickle_default(store, tmp_path):
    """json, pickle, text and event round-trip; without a type, save pickles."""
    store.save({"a": [1]}, "j", "json", "A", A1)
    store.save({1, 2}, "p", "pickle", "A", A1)
    store.save("hello", "t", "text", "A", A1)
    store.save("e", "ev", "event", "A", A1)
    store.save((1, "x"), "default", task_name="A", task_unique_config=A1)
    assert store.load("j", "A", A1) == {"a": [1]}
    assert store.load("p", "A", A1) == {1, 2}
    assert store.load("t", "A", A1) == "hello"
    assert store.load("ev", "A", A1) == "e"
    assert store.load("default", "A", A1) == (1, "x")
    run = tmp_path / "store" / "A" / "000"
    assert {"j.json", "p.p", "t.txt", "ev", "default.p"} <= set(os.listdir(run))


def test_unknown_type_lists_the_registered_ones(store):
    """An unregistered type is a KeyError naming the type and the known ones."""
    with pytest.raises(KeyError, match=r"'yaml'.*\['event', 'json', 'pickle', 'text'\]"):
        store.save(1, "v", "yaml", "A", A1)


class MyStore(LocalFileStore):
    def __init__(self, base_dir):
        super().__init__(base_dir)
        self.type_registry["doubled"] = TypeInfo(save_doubled, load_doubled, "dbl")
        self._type_registry["folder"] = TypeInfo(save_to_dir, load_from_dir, needs_path=True)  # the docs' name


def test_custom_types_registered_by_a_subclass(tmp_path):
    """A subclass registers TypeInfos (file-based and path-based); serializer kwargs reach save_fn."""
    store = MyStore(str(tmp_path / "s"))
    store.save(Doubled(7), "d", "doubled", "A", A1, sep="|", load_kwargs={"sep": "|"})
    store.save({"a.txt": "A", "b.txt": "B"}, "f", "folder", "A", A1)
    assert (tmp_path / "s" / "A" / "000" / "d.dbl").read_text() == "7|7"
    assert store.load("d", "A", A1).value == 7
    assert store.load("f", "A", A1) == {"a.txt": "A", "b.txt": "B"}
    store.save({"c.txt": "C"}, "f", "folder", "A", A1)  # a directory object is replaced as a whole
    assert store.load("f", "A", A1) == {"c.txt": "C"}
    assert [n for n in os.listdir(tmp_path / "s" / "A" / "000") if n.startswith(".~")] == []


def test_save_options_sub_dir_mode_open_and_load_kwargs(store, tmp_path):
    """sub_dir, mode, open_kwargs (kept for loads) and load_kwargs; serializer kwargs such as indent."""
    store.save({"b": 1, "a": 2}, "cfg", "json", "A", A1, sub_dir="configs/v1", indent=4, sort_keys=True)
    path = tmp_path / "store" / "A" / "000" / "configs" / "v1" / "cfg.json"
    assert path.read_text() == '{\n    "a": 2,\n    "b": 1\n}'
    assert store.load("cfg", "A", A1) == {"a": 2, "b": 1}
    store.save("héllo", "latin", "text", "A", A1, open_kwargs={"encoding": "latin-1"})
    assert (tmp_path / "store" / "A" / "000" / "latin.txt").read_bytes() == "héllo".encode("latin-1")
    assert store.load("latin", "A", A1) == "héllo"
    store.save({"n": 1.5}, "num", "json", "A", A1, load_kwargs={"parse_float": str})
    assert store.load("num", "A", A1) == {"n": "1.5"}
    assert store.load("num", "A", A1, parse_float=float) == {"n": 1.5}  # the call's kwargs win
    store.save("more", "latin", "text", "A", A1, mode="a", open_kwargs={"encoding": "latin-1"})
    assert store.load("latin", "A", A1) == "héllomore"


def test_bad_names_and_sub_dirs_are_refused(store):
    """Names that are not file names and sub_dirs leaving the run directory raise ValueError."""
    with pytest.raises(ValueError, match="object name 'a/b'"):
        store.save(1, "a/b", "json", "A", A1)
    with pytest.raises(ValueError, match="task name '../x'"):
        store.save(1, "v", "json", "../x", A1)
    with pytest.raises(ValueError, match="leaves the run directory"):
        store.save(1, "v", "json", "A", A1, sub_dir="../../elsewhere")


# ----------------------------------------------------------------------------------- loads


def test_load_is_exact_and_misses_are_none(store):
    """Loads find the run of the exact config; anything else is None."""
    store.save(1, "v", "json", "A", A1)
    assert store.load("v", "A", A1) == 1
    assert store.load("v", "A", {**A1, "B": {}}) is None
    assert store.load("v", "A", A2) is None
    assert store.load("w", "A", A1) is None
    assert store.load("v", "other", A1) is None


def test_lazy_load_gives_a_file_promise(store):
    """lazy=True returns a FilePromise that loads on demand; a missing object is None."""
    store.save([1, 2], "v", "pickle", "A", A1)
    promise = store.load("v", "A", A1, lazy=True)
    assert isinstance(promise, FilePromise) and isinstance(promise, Promise)
    assert promise.load() == [1, 2]
    assert store.load("nothing", "A", A1, lazy=True) is None
    with File.from_promise(promise) as file:
        assert file.load() == [1, 2]
    assert pickle.loads(pickle.dumps(promise)).load() == [1, 2]


def lazy_consumer(scaled: Promise, task):
    task.save((type(scaled).__name__, scaled.load()), "seen")


def lazy_reducer(scaled: "list[LazySweep]", task):
    task.save([(type(s).__name__, type(s.value).__name__, s.value.load()) for s in scaled], "seen")


def lazy_reducer_typing(scaled: List[LazySweep], task):
    task.save(sorted(s.value.load() for s in scaled), "seen")


def test_successors_annotated_lazy_get_file_promises(store):
    """Promise, list[LazySweep] (also as a string) and List[LazySweep] inputs arrive as FilePromises."""
    src = TaskSpec(task=source, config={"x": [1, 2]}, expand="product")
    one = TaskSpec(task=lazy_consumer, name="one")
    many = TaskSpec(task=lazy_reducer, reduce=True)
    many2 = TaskSpec(task=lazy_reducer_typing, reduce=True)
    one.requires(src)
    many.requires(src)
    many2.requires(src)
    results = Flow([src, one, many, many2]).run(num_workers=1, results_store=store, return_results="all")
    assert [r.results["seen"] for r in results["one"]] == [("FilePromise", 10), ("FilePromise", 20)]
    assert results["lazy_reducer"][0].results["seen"] == [("LazySweep", "FilePromise", 10),
                                                         ("LazySweep", "FilePromise", 20)]
    assert results["lazy_reducer_typing"][0].results["seen"] == [10, 20]


def test_cross_task_load_uses_the_index_configs(store, tmp_path):
    """A fresh store finds an upstream run from a larger config through stored_configs (the index)."""
    grid_flow().run(num_workers=1, run_name="r", results_store=store)
    fresh = LocalFileStore(str(tmp_path / "store"))
    config = {"A": {"x": 2}, "b": {"y": 1}}
    assert sorted(c["A"]["x"] for c in fresh.stored_configs("A")) == [1, 2]
    assert fresh.find_unique_config("A", config) == A2
    assert fresh.load("record", "A", fresh.find_unique_config("A", config)) == {"x": 2}


def test_get_results_and_is_finished(store):
    """get_results reads the registry; is_finished the stored state."""
    grid_flow().run(num_workers=1, results_store=store)
    assert store.get_results("A", A1) == {"record": {"x": 1}, "scaled": 10}
    assert store.is_finished("A", A1)
    assert not store.is_finished("A", {"A": {"x": 9}})
    assert store.get_results("A", {"A": {"x": 9}}) is None


# ----------------------------------------------------------------------------------- open()


def test_open_writes_appends_and_reads_incrementally(store, tmp_path):
    """open("w") then open("a") write a text object in pieces; open("r") reads it; File methods return
    what files return."""
    with store.open("log", "A", A1, mode="w", type_="text") as f:
        assert f.write("one\n") == 4
        assert f.writable() and not f.readable()
    f = store.open("log", "A", A1, mode="a")
    f.writelines(["two\n", "three\n"])
    f.flush()
    f.close()
    assert f.closed
    assert store.load("log", "A", A1) == "one\ntwo\nthree\n"
    with store.open("log", "A", A1, mode="r") as f:
        assert f.readline() == "one\n"
        assert f.tell() == 4
        assert f.read() == "two\nthree\n"
        f.seek(0)
        assert list(f) == ["one\n", "two\n", "three\n"]
        f.seek(0)
        assert f.read(3) == "one" and f.seekable()
        f.seek(0)
        assert f.readlines() == ["one\n", "two\n", "three\n"]
    assert (tmp_path / "store" / "A" / "000" / "log.txt").exists()


def test_open_binary_types_in_binary_mode_and_save_load(store):
    """A binary type opened with "w" gets "wb"; File.save/File.load use the type's functions."""
    with store.open("blob", "A", A1, mode="w", type_="pickle") as f:
        assert "b" in f.mode
        f.save({"k": 1})
    with store.open("blob", "A", A1, mode="r") as f:
        assert f.load() == {"k": 1}
    with store.open("raw", "A", A1, mode="w", type_="pickle") as f:
        f.truncate(0)
        assert f.write(pickle.dumps([1])) > 0


def test_open_with_a_promise_and_missing_objects(store):
    """open(promise=...) opens the promised file; reading a missing object is FileNotFoundError."""
    store.save("text", "t", "text", "A", A1)
    promise = store.load("t", "A", A1, lazy=True)
    with store.open(promise=promise) as f:
        assert f.read() == "text"
    with store.open(promise=promise, mode="a") as f:
        f.write("!")
    assert store.load("t", "A", A1) == "text!"
    with pytest.raises(FileNotFoundError, match='no saved object "nothing"'):
        store.open("nothing", "A", A1, mode="r")
    with pytest.raises(ValueError, match="missing: mode"):
        store.open("t", "A", A1)


def streamer(task):
    with task.open("stream", mode="w", type_="text") as f:
        for i in range(3):
            f.write(f"line {i}\n")


def stream_reader(stream: Promise, task):
    with task.open(promise=stream, mode="r") as f:
        task.save([line.strip() for line in f], "lines", type_="json")
    task.save(stream.load(), "whole", type_="text")


def test_task_open_registers_the_object_for_successors(store):
    """An object written through Task.open is a result: successors get it (here lazily) and so does
    get_results."""
    w = TaskSpec(task=streamer)
    r = TaskSpec(task=stream_reader)
    r.requires(w)
    results = Flow([w, r]).run(num_workers=1, results_store=store, return_results="all")
    assert results["streamer"][0].results == {"stream": "line 0\nline 1\nline 2\n"}
    assert results["stream_reader"][0].results == {"lines": ["line 0", "line 1", "line 2"],
                                                   "whole": "line 0\nline 1\nline 2\n"}


# ----------------------------------------------------------------------------------- deletes, contexts


def test_delete_removes_the_file_and_its_load_info(store, tmp_path):
    """delete() removes one object (file or directory) and its load info; the rest stays."""
    store.save(1, "v", "json", "A", A1, sub_dir="sub")
    store.save(2, "w", "json", "A", A1)
    store.delete("v", "A", A1)
    store.delete("v", "A", A1)
    run = tmp_path / "store" / "A" / "000"
    assert listing(run / "sub") == []
    assert not (run / ".fluidml" / ".v_load_info.p").exists()
    assert store.load("v", "A", A1) is None and store.load("w", "A", A1) == 2
    store.delete("v", "A", A2)  # no such run: nothing happens


def test_delete_run_removes_the_directory(store, tmp_path):
    """delete_run() removes the run's directory; the config, made again, gets its old directory name
    back, and a new config the next counter (counters only grow: no config gets another's name)."""
    store.save(1, "v", "json", "A", A1)
    store.save(2, "v", "json", "A", A2)
    store.delete_run("A", A1)
    store.delete_run("A", A1)
    assert listing(tmp_path / "store" / "A") == ["001"]
    assert store.load("v", "A", A1) is None and store.load("v", "A", A2) == 2
    assert store.get_context("A", {"A": {"x": 3}}).sweep_counter == "002"
    assert store.get_context("A", A1).sweep_counter == "000"
    assert LocalFileStore(str(tmp_path / "store")).get_context("A", A1).sweep_counter == "000"
    assert store.load("v", "A", A1) is None  # an empty run: nothing of the deleted one is back
    assert listing(tmp_path / "store" / ".fluidml" / "trash") == []


def test_get_context_through_a_task(store):
    """Task.get_store_context gives the run's existing directory and counter."""
    def where(task):
        context = task.get_store_context()
        task.save([os.path.isdir(context.run_dir), os.path.basename(context.run_dir), context.sweep_counter],
                  "where", type_="json")

    results = Flow([TaskSpec(task=where)]).run(num_workers=1, run_name="ctx", results_store=store,
                                               return_results="latest")
    assert results["where"][0].results["where"] == [True, "ctx-000", "000"]


# ----------------------------------------------------------------------------------- the index


def test_lookups_use_the_index_not_the_config_files(store, tmp_path):
    """Once indexed, runs are found without reading config.json (they could even be unreadable)."""
    grid_flow().run(num_workers=1, results_store=store)
    for run in (tmp_path / "store" / "b").iterdir():
        (run / "config.json").write_text("not json")
    fresh = LocalFileStore(str(tmp_path / "store"))
    assert fresh.load("total", "b", {"A": {"x": 2}, "b": {"y": 2}}) == 4
    assert fresh.is_finished("b", {"A": {"x": 1}, "b": {"y": 1}})


def test_a_missing_index_is_rebuilt_from_config_files(store, tmp_path, recorder):
    """Without .fluidml/ (deleted, or a store from the original) runs are found from config.json."""
    grid_flow().run(num_workers=1, run_name="r", results_store=store)
    import shutil

    shutil.rmtree(tmp_path / "store" / ".fluidml")
    fresh = LocalFileStore(str(tmp_path / "store"))
    grid_flow().run(num_workers=1, results_store=fresh, observers=[recorder])
    assert recorder.executed == [] and len(recorder.cached) == 7
    lines = (tmp_path / "store" / ".fluidml" / "index" / "A.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)[1] for line in lines) == ["r-000", "r-001"]


def test_a_stale_index_entry_is_dropped(store, tmp_path):
    """A run directory removed by hand is not found; its config, made again, gets its directory name back."""
    store.save(1, "v", "json", "A", A1)
    import shutil

    shutil.rmtree(tmp_path / "store" / "A" / "000")
    fresh = LocalFileStore(str(tmp_path / "store"))
    assert fresh.load("v", "A", A1) is None
    assert store.load("v", "A", A1) is None  # the store that had it cached
    assert store.get_context("A", A1).sweep_counter == "000"
    assert store.load("v", "A", A1) is None


def test_runs_made_by_another_store_object_are_seen(tmp_path):
    """Two store objects on one directory (as two processes) see each other's runs."""
    one = LocalFileStore(str(tmp_path / "s"))
    two = LocalFileStore(str(tmp_path / "s"))
    assert two.load("v", "A", A1) is None
    one.save(1, "v", "json", "A", A1)
    assert two.load("v", "A", A1) == 1
    two.delete_run("A", A1)
    assert one.load("v", "A", A1) is None
    two.save(2, "v", "json", "A", A1)
    assert one.load("v", "A", A1) == 2


def test_a_corrupted_config_file_is_skipped_with_a_warning(store, tmp_path, caplog):
    """A broken config.json (when the index is rebuilt) is named in a warning; other runs load."""
    store.save(1, "v", "json", "A", A1)
    store.save(2, "v", "json", "A", A2)
    (tmp_path / "store" / "A" / "000" / "config.json").write_text("{broken")
    os.remove(tmp_path / "store" / ".fluidml" / "index" / "A.jsonl")
    fresh = LocalFileStore(str(tmp_path / "store"))
    with caplog.at_level(logging.WARNING):
        assert fresh.load("v", "A", A2) == 2
        assert fresh.load("v", "A", A1) is None
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert str(tmp_path / "store" / "A" / "000" / "config.json") in record.getMessage()


def test_a_corrupted_info_file_warns_and_the_task_runs_again(store, tmp_path, caplog, recorder):
    """A broken fluidml_info.json is named in a warning; that task runs again with what is built on it
    (its successors' inputs change), the others stay cached."""
    grid_flow().run(num_workers=1, run_name="r", results_store=store)
    broken = tmp_path / "store" / "A" / "r-000" / "fluidml_info.json"
    broken.write_text('{"state": "fini')
    with caplog.at_level(logging.WARNING):
        grid_flow().run(num_workers=1, results_store=store, observers=[recorder])
    assert recorder.executed == ["A-1", "b-1", "b-2", "c"]
    assert sorted(recorder.cached) == ["A-2", "b-3", "b-4"]
    assert any(str(broken) in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert json.loads(broken.read_text())["state"] == "finished"


def test_the_store_pickles_without_its_lock(store):
    """A store crosses process boundaries: its copy has no open lock file and works on the same data."""
    store.save(1, "v", "json", "A", A1)
    store.run_info = {"run_name": "x"}
    copy = pickle.loads(pickle.dumps(store))
    assert copy.run_info is None and copy._index._lock_fd is None
    assert copy.load("v", "A", A1) == 1
    copy.save(2, "w", "json", "A", A1)
    assert store.load("w", "A", A1) == 2
