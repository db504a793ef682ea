"""Stores written by earlier versions of this project still open: every task is cached and every
object loads as it was saved. tests/fixtures/v04_store (fluidml 0.4.0, run layout 1, with a
``.fluidml/`` directory in each run) was made with tests/fixtures/v04_pipeline.py, and
tests/fixtures/v05_store (fluidml 0.5.0, run layout 2) with tests/fixtures/v05_pipeline.py, from the
same pipeline."""

import json

import pytest

from fixture_stores import copy_store, load_pipeline
from fluidml.storage import LocalFileStore


@pytest.fixture
def v04_store(tmp_path):
    return copy_store("v04_store", tmp_path)


@pytest.fixture(params=["v04", "v05"])
def fixture_store(request, tmp_path):
    """(the pipeline module, a copy of its store) for each committed store of this project."""
    return load_pipeline(f"{request.param}_pipeline"), copy_store(f"{request.param}_store", tmp_path)


def test_the_fixture_has_the_old_layout(v04_store):
    """The fixture is layout 1: load info and the registry in each run's .fluidml/ directory."""
    run = v04_store / "source" / "v04-000"
    assert sorted(p.name for p in (run / ".fluidml").iterdir()) == [
        ".label_load_info.p", ".log_load_info.p", ".record_load_info.p", ".saved_results.json",
        ".scaled_load_info.p"]
    assert (run / "labels" / "label.txt").read_text() == "source 1"


def test_the_v05_fixture_has_layout_2(tmp_path):
    """The 0.5.0 fixture keeps no .fluidml/ directory in runs; its info names the format and checksums."""
    run = copy_store("v05_store", tmp_path) / "source" / "v05-000"
    assert sorted(p.name for p in run.iterdir()) == [
        "config.json", "fluidml_info.json", "labels", "log.txt", "record.json", "scaled.p"]
    extra = json.loads((run / "fluidml_info.json").read_text())["fluidml"]
    assert (extra["version"], extra["format"]) == ("0.5.0", 2)
    assert sorted(extra["objects"]) == ["label", "log", "record", "scaled"]


@pytest.mark.parametrize("num_workers", [1, 2])
def test_every_task_is_cached_and_results_are_equal(fixture_store, recorder, num_workers):
    """Running the fixture's flow again executes nothing and returns what was saved, object by object."""
    pipeline, store_dir = fixture_store
    results = pipeline.make_flow().run(num_workers=num_workers, run_name="again",
                                       results_store=LocalFileStore(str(store_dir)), return_results="all",
                                       observers=[recorder])
    assert recorder.executed == []
    assert len(recorder.cached) == 7
    assert {name: [r.results for r in runs] for name, runs in results.items()} == pipeline.EXPECTED


def test_a_forced_reducer_reads_the_old_runs_objects(fixture_store, recorder):
    """Forcing the reducer runs it alone, on the old runs' objects; objects also load one by one."""
    pipeline, store_dir = fixture_store
    store = LocalFileStore(str(store_dir))
    results = pipeline.make_flow().run(num_workers=1, run_name="again", results_store=store, return_results="all",
                                       observers=[recorder], force="gather")
    assert recorder.executed == ["gather"]
    assert results["gather"][0].results == {"totals": [14, 15, 25, 26], "count": 4}
    assert store.load("log", "source", {"source": {"x": 2}}) == "started 2\ndone 2\n"
    assert store.load("pair", "combine", {"source": {"x": 1}, "combine": {"y": 4}}) == {"pair": ["1", "4"]}
