"""A store written by the original fluidml 0.3.4 opens: its finished tasks are recognised and its objects
load. The store under tests/fixtures/original_store was made by the original with
tests/fixtures/original_pipeline.py (see there to regenerate it)."""

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fluidml.storage import LocalFileStore

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ORIGINAL_PYTHON = os.environ.get("FLUIDML_ORIGINAL_PYTHON", "/tmp/orig/bin/python")


def load_pipeline():
    spec = importlib.util.spec_from_file_location("original_pipeline", FIXTURES / "original_pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def original_store(tmp_path):
    """A copy of the committed store the original wrote (tests must not change the fixture)."""
    target = tmp_path / "original_store"
    shutil.copytree(FIXTURES / "original_store", target)
    return target


def test_the_original_store_has_no_index_of_ours(original_store):
    """The fixture is the original's layout: run dirs with config.json, info and load info, no index."""
    assert not (original_store / ".fluidml").exists()
    assert sorted(os.listdir(original_store / "combine")) == ["orig-000", "orig-001", "orig-002", "orig-003"]
    assert (original_store / "combine" / "orig-000" / ".fluidml" / ".note_load_info.p").exists()


def test_flow_sees_the_original_runs_as_executed(original_store, recorder):
    """Running the same flow on the original's store executes nothing and returns the stored results."""
    flow = load_pipeline().make_flow()
    results = flow.run(num_workers=1, run_name="ours", results_store=LocalFileStore(str(original_store)),
                       return_results="all", observers=[recorder])
    assert recorder.executed == []
    assert len(recorder.cached) == 7
    assert results["gather"][0].results == {"totals": [14, 15, 25, 26]}
    assert [r.results["record"] for r in results["source"]] == [{"x": 1}, {"x": 2}]
    assert [r.results["note"] for r in results["combine"]] == ["x=1 y=3", "x=1 y=4", "x=2 y=3", "x=2 y=4"]
    # the runs keep the original's names, and no new run directory was made
    assert sorted(os.listdir(original_store / "combine")) == ["orig-000", "orig-001", "orig-002", "orig-003"]
    assert [t.run_name for t in flow._tasks] == ["orig"] * 7


def test_a_new_grid_value_adds_runs_next_to_the_original_ones(original_store, recorder):
    """A new config gets a new run directory with the new run name; the original's runs stay cached."""
    flow = load_pipeline().make_flow(xs=(1, 2, 5))
    flow.run(num_workers=1, run_name="more", results_store=LocalFileStore(str(original_store)), observers=[recorder])
    assert sorted(recorder.executed) == ["combine-5", "combine-6", "gather", "source-3"]
    assert sorted(os.listdir(original_store / "source")) == ["more-000", "orig-000", "orig-001"]
    assert sorted(os.listdir(original_store / "gather")) == ["more-000", "orig-000"]
    config = json.loads((original_store / "source" / "more-000" / "config.json").read_text())
    assert config == {"source": {"x": 5}}


@pytest.mark.skipif(not os.path.exists(ORIGINAL_PYTHON), reason=f"the original fluidml is not at {ORIGINAL_PYTHON}")
def test_a_freshly_generated_original_store_opens_too(tmp_path, recorder):
    """Regenerating the store with the installed original gives a store this project reads the same way."""
    target = tmp_path / "fresh"
    subprocess.run([ORIGINAL_PYTHON, str(FIXTURES / "original_pipeline.py"), str(target)], check=True,
                   capture_output=True, timeout=120, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    results = load_pipeline().make_flow().run(num_workers=1, results_store=LocalFileStore(str(target)),
                                              return_results="latest", observers=[recorder])
    assert recorder.executed == []
    assert results["gather"][0].results == {"totals": [14, 15, 25, 26]}
