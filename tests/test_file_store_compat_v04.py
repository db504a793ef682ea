"""A store written by fluidml 0.4.0 of this project (run layout 1, with a ``.fluidml/`` directory in
each run) still opens: every task is cached and every object loads as it was saved. The store under
tests/fixtures/v04_store was made with tests/fixtures/v04_pipeline.py (see there)."""

import pytest

from fixture_stores import copy_store, load_pipeline
from fluidml.storage import LocalFileStore


@pytest.fixture
def v04_store(tmp_path):
    return copy_store("v04_store", tmp_path)


def test_the_fixture_has_the_old_layout(v04_store):
    """The fixture is layout 1: load info and the registry in each run's .fluidml/ directory."""
    run = v04_store / "source" / "v04-000"
    assert sorted(p.name for p in (run / ".fluidml").iterdir()) == [
        ".label_load_info.p", ".log_load_info.p", ".record_load_info.p", ".saved_results.json",
        ".scaled_load_info.p"]
    assert (run / "labels" / "label.txt").read_text() == "source 1"


@pytest.mark.parametrize("num_workers", [1, 2])
def test_every_task_is_cached_and_results_are_equal(v04_store, recorder, num_workers):
    """Running the fixture's flow again executes nothing and returns what was saved, object by object."""
    pipeline = load_pipeline("v04_pipeline")
    results = pipeline.make_flow().run(num_workers=num_workers, run_name="again",
                                       results_store=LocalFileStore(str(v04_store)), return_results="all",
                                       observers=[recorder])
    assert recorder.executed == []
    assert len(recorder.cached) == 7
    assert {name: [r.results for r in runs] for name, runs in results.items()} == pipeline.EXPECTED


def test_a_forced_reducer_reads_the_old_runs_objects(v04_store, recorder):
    """Forcing the reducer runs it alone, on the old runs' objects; objects also load one by one."""
    pipeline = load_pipeline("v04_pipeline")
    store = LocalFileStore(str(v04_store))
    results = pipeline.make_flow().run(num_workers=1, run_name="again", results_store=store, return_results="all",
                                       observers=[recorder], force="gather")
    assert recorder.executed == ["gather"]
    assert results["gather"][0].results == {"totals": [14, 15, 25, 26], "count": 4}
    assert store.load("log", "source", {"source": {"x": 2}}) == "started 2\ndone 2\n"
    assert store.load("pair", "combine", {"source": {"x": 1}, "combine": {"y": 4}}) == {"pair": ["1", "4"]}
