"""fluidml.results.verify on a LocalFileStore: it finds every kind of damage without loading an
object, changes nothing unless asked to repair, and repaired runs are exactly those the next run
runs again."""

import json
import os
from pathlib import Path

import pytest

import integrity_tasks as t
from fixture_stores import copy_store
from fluidml import Flow, TaskSpec
from fluidml.results import verify
from fluidml.storage import InMemoryStore, LocalFileStore


def grid_flow():
    produce = TaskSpec(task=t.produce, config={"value": [1, 2, 3, 4, 5]}, expand="product")
    total = TaskSpec(task=t.total, reduce=True)
    total.requires(produce)
    return Flow([produce, total])


def snapshot(base: Path):
    """Every file under base with its bytes and modification time."""
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(base.rglob("*")) if p.is_file()}


@pytest.fixture
def damaged(tmp_path):
    """A finished store with five kinds of damage, one in each run of "produce"."""
    base = tmp_path / "store"
    grid_flow().run(num_workers=1, run_name="r", results_store=LocalFileStore(str(base)))
    runs = base / "produce"
    (runs / "r-000" / "x.p").unlink()
    x = runs / "r-001" / "x.p"
    x.write_bytes(x.read_bytes()[:-1])
    x = runs / "r-002" / "x.p"
    data = x.read_bytes()
    x.write_bytes(data[:-2] + bytes([data[-2] ^ 1]) + data[-1:])
    (runs / "r-003" / "config.json").write_text(json.dumps({"produce": {"value": 99}}))
    (runs / "r-004" / "fluidml_info.json").write_text("[]")
    return base


def test_verify_finds_each_damage_and_changes_nothing(damaged):
    """One Damage per damaged run, naming the task, run, file and problem; the store is unchanged."""
    before = snapshot(damaged)
    found = verify(LocalFileStore(str(damaged)))
    runs = damaged / "produce"
    assert [(d.task_name, d.run_id, d.location) for d in found] == [
        ("produce", "r-000", str(runs / "r-000" / "x.p")),
        ("produce", "r-001", str(runs / "r-001" / "x.p")),
        ("produce", "r-002", str(runs / "r-002" / "x.p")),
        ("produce", "r-003", str(runs / "r-003" / "config.json")),
        ("produce", "r-004", str(runs / "r-004" / "fluidml_info.json")),
    ]
    problems = [d.problem for d in found]
    assert problems[0] == "is missing"
    assert problems[1].endswith("were saved") and problems[1].startswith("has ")
    assert problems[2].startswith("does not hold what was saved (crc32 ")
    assert problems[3] == "holds another config than its run was made for"
    assert problems[4].startswith("is not a run info: it holds list")
    assert str(found[0]) == f'task "produce", run r-000: is missing ({runs / "r-000" / "x.p"})'
    assert snapshot(damaged) == before
    assert verify(LocalFileStore(str(damaged)), tasks=["total"]) == []


def test_repair_marks_the_damaged_runs_and_the_next_run_redoes_exactly_those(damaged, recorder, tmp_path):
    """verify(repair=True) marks each damaged run not finished; the next flow run runs those again
    (and the forced reducer), and its results equal a clean run's; verify then finds nothing."""
    store = LocalFileStore(str(damaged))
    assert len(verify(store, repair=True)) == 5
    info = json.loads((damaged / "produce" / "r-000" / "fluidml_info.json").read_text())
    assert info["state"] == "failed" and info["fluidml"]["damage"]["problem"] == "is missing"
    results = grid_flow().run(num_workers=1, results_store=store, force="total", observers=[recorder],
                              return_results="latest")
    assert sorted(recorder.executed) == ["produce-1", "produce-2", "produce-3", "produce-4", "produce-5", "total"]
    clean = grid_flow().run(num_workers=1, results_store=LocalFileStore(str(tmp_path / "clean")),
                            return_results="latest")
    assert results["total"][0].results == clean["total"][0].results == {"total": 15, "count": 5}
    assert verify(store) == []


def test_an_in_memory_store_has_nothing_to_verify():
    """Objects kept as they are in memory cannot be damaged: verify finds nothing."""
    store = InMemoryStore()
    grid_flow().run(num_workers=1, results_store=store)
    assert store.task_names() == ["produce", "total"]
    assert verify(store) == []


def test_verify_reads_stores_of_the_older_layouts(tmp_path):
    """Runs written by fluidml 0.3.4 and 0.4.0 (no sizes or checksums) are checked for what they
    record: their registry, load info and objects."""
    for name in ("original_store", "v04_store"):
        assert verify(LocalFileStore(str(copy_store(name, tmp_path)))) == []
    os.remove(tmp_path / "v04_store" / "source" / "v04-000" / "labels" / "label.txt")
    [damage] = verify(LocalFileStore(str(tmp_path / "v04_store")))
    assert (damage.run_id, damage.problem) == ("v04-000", "is missing")
