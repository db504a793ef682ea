"""Copies read both ways: a LocalFileStore copied up (to the S3 server, to memory://) reads as an
FsspecStore, and an FsspecStore's prefix copied to disk reads as a LocalFileStore.

The stores copied up are the one the original fluidml 0.3.4 wrote (tests/fixtures/original_store) and
one written by today's LocalFileStore (older layout: .fluidml/.saved_results.json and load-info files).
The way down needs a LocalFileStore that reads format 2 (DECISIONS §4, being implemented on another
branch); until that lands it is reported as an expected failure, and then it passes unchanged."""

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from conftest import Recorder
from fluidml import Flow, TaskSpec
from fluidml.storage import FsspecStore, LocalFileStore
from fsspec_kinds import Raw, kind, location, raw, store  # noqa: F401  (fixtures)

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load_pipeline():
    spec = importlib.util.spec_from_file_location("original_pipeline", FIXTURES / "original_pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upload(directory: Path, raw: Raw) -> None:
    """Copies a directory tree into the store's location, file by file (as `aws s3 sync` would)."""
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            raw.write(path.relative_to(directory).as_posix(), path.read_bytes())


def download(raw: Raw, directory: Path) -> None:
    """Copies every object of the store's location to a directory (as `aws s3 sync` would)."""
    for key in raw.keys():
        target = directory / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(raw.read(key))


def test_the_original_store_copied_up_reads_as_executed(store, raw, recorder):
    """The store written by fluidml 0.3.4, copied up: every task is already executed, the objects load,
    and a new grid value adds runs next to the original's."""
    upload(FIXTURES / "original_store", raw)
    results = load_pipeline().make_flow().run(num_workers=1, results_store=store, return_results="all",
                                              observers=[recorder])
    assert recorder.executed == [] and len(recorder.cached) == 7
    assert results["gather"][0].results == {"totals": [14, 15, 25, 26]}
    assert [r.results["note"] for r in results["combine"]] == ["x=1 y=3", "x=1 y=4", "x=2 y=3", "x=2 y=4"]
    more = Recorder()
    load_pipeline().make_flow(xs=(1, 2, 5)).run(num_workers=1, run_name="more", results_store=store, observers=[more])
    assert sorted(more.executed) == ["combine-5", "combine-6", "gather", "source-3"]
    assert sorted({k.split("/")[1] for k in raw.keys("source")}) == ["more-000", "orig-000", "orig-001"]


def grid_flow(xs=(1, 2)):
    pipeline = load_pipeline()
    return pipeline.make_flow(xs=xs)


def test_a_local_file_store_copied_up_reads_as_an_fsspec_store(tmp_path, store, raw, recorder):
    """Runs a LocalFileStore wrote (today's layout) are cached, and their objects load, lazily too."""
    local = tmp_path / "local"
    first = grid_flow().run(num_workers=1, run_name="disk", results_store=LocalFileStore(str(local)),
                            return_results="all")
    shutil.rmtree(local / ".fluidml")  # the LocalFileStore's own lock and index do not travel
    upload(local, raw)
    second = grid_flow().run(num_workers=1, results_store=store, return_results="all", observers=[recorder])
    assert recorder.executed == [] and len(recorder.cached) == 7
    assert {k: [r.results for r in v] for k, v in first.items()} == {k: [r.results for r in v] for k, v in second.items()}
    assert store.load("note", "combine", second["combine"][0].unique_config, lazy=True).load() == "x=1 y=3"
    assert [run.run_id for run in store.runs("combine")] == ["disk-000", "disk-001", "disk-002", "disk-003"]


def local_store_reads_format_2(tmp_path: Path) -> bool:
    """Whether this checkout's LocalFileStore loads an object of a run written in format 2."""
    probe = FsspecStore(str(tmp_path / "probe"))
    probe.save([1], "v", "pickle", "A", {"A": {}})
    probe.save({"state": "finished"}, "fluidml_info", "json", "A", {"A": {}})
    try:
        return LocalFileStore(str(tmp_path / "probe")).load("v", "A", {"A": {}}) == [1]
    except Exception:
        return False


def test_an_fsspec_store_copied_to_disk_reads_as_a_local_file_store(tmp_path, store, raw):
    """A prefix copied down (config.json, objects, format-2 info; the index markers ignored) is a
    LocalFileStore whose runs are cached and whose objects load."""
    if not local_store_reads_format_2(tmp_path):
        pytest.xfail("LocalFileStore does not read format 2 yet (DECISIONS §4: lands with the integrity branch)")
    first = grid_flow().run(num_workers=1, run_name="bucket", results_store=store, return_results="all")
    local = tmp_path / "copy"
    download(raw, local)
    recorder = Recorder()
    second = grid_flow().run(num_workers=1, results_store=LocalFileStore(str(local)), return_results="all",
                             observers=[recorder])
    assert recorder.executed == [] and len(recorder.cached) == 7
    assert {k: [r.results for r in v] for k, v in first.items()} == {k: [r.results for r in v] for k, v in second.items()}
    assert sorted(os.listdir(local / "combine")) == ["bucket-000", "bucket-001", "bucket-002", "bucket-003"]
