"""The planner's decision: exactly one of the documented reasons, checked in the documented order."""

import pytest

from fluidml.planner import PlanEntry, decide, plan_lines

CODE = {"split": {"split": "aaaaaaaaaaaa"}, "train": {"Train.run": "bbbbbbbbbbbb", "fit": "cccccccccccc"}}
RECORD = {"pinned": {}, "code": CODE}


def finished(**fluidml):
    return {"state": "finished", "run_name": "r", "fluidml": fluidml}


def test_new_forced_and_unfinished_runs():
    """No stored run: new config; force wins over everything; a run that did not finish says how it ended."""
    assert decide(None, "train", RECORD) == (True, "new config", [])
    assert decide(finished(code=CODE), "train", RECORD, "code", forced=True) == (True, "forced", [])
    assert decide({"state": "failed"}, "train", RECORD) == (True, "failed last time", [])
    assert decide({"state": "killed"}, "train", RECORD) == (True, "killed last time", [])
    for state in ("running", "scheduled", "pending", None):
        assert decide({"state": state}, "train", RECORD) == (True, "interrupted last time", [])


def test_a_run_of_0_3_4_is_cached_by_config_and_unrecorded_by_code():
    """A stored info without "fluidml" (fluidml 0.3.4, earlier versions) matches with cache="config";
    with cache="code" it runs again, saying why."""
    old = {"state": "finished", "run_name": "orig"}
    assert decide(old, "train", RECORD) == (False, "cached", [])
    assert decide(old, "train", RECORD, "code") == (True, "code version not recorded", [])
    assert decide(old, "train", {"pinned": {"train": "1"}}) == (True, "version none → 1", [])


def test_code_changes_name_the_changed_parts_only_with_cache_code():
    """Changed, added and removed parts are named, sorted; cache="config" ignores code."""
    old = {"split": CODE["split"], "train": {"Train.run": "000000000000", "old_helper": "dddddddddddd",
                                               "fit": "cccccccccccc"}}
    assert decide(finished(code=old), "train", RECORD, "code") == (True, "code changed: Train.run, old_helper", [])
    assert decide(finished(code=old), "train", RECORD, "config") == (False, "cached", [])
    assert decide(finished(code=CODE), "train", RECORD, "code") == (False, "cached", [])


def test_pinned_versions_count_with_both_settings_and_replace_the_code():
    """version= is compared under either setting; a pinned task's code is not compared."""
    pinned = {"pinned": {"train": "2"}, "code": {"split": CODE["split"]}}
    stored = finished(code={"split": CODE["split"]}, pinned={"train": "1"})
    assert decide(stored, "train", pinned, "config") == (True, "version 1 → 2", [])
    assert decide(stored, "train", pinned, "code") == (True, "version 1 → 2", [])
    assert decide(finished(code={"split": CODE["split"]}, pinned={"train": "2"}), "train", pinned, "code") == (
        False, "cached", [])
    assert decide(stored, "train", {"pinned": {}}) == (True, "version 1 → none", [])


def test_upstream_runs_come_after_the_tasks_own_reasons():
    """A predecessor that runs makes an otherwise reusable run run; the task's own change is named first."""
    assert decide(finished(code=CODE), "train", RECORD, "code", upstream=["split"]) == (
        True, "upstream runs: split", [])
    changed = {**CODE, "train": {**CODE["train"], "fit": "000000000000"}}
    assert decide(finished(code=changed), "train", RECORD, "code", upstream=["split"]) == (
        True, "code changed: fit", [])


def test_an_ancestor_changed_since_the_run_is_named_when_nothing_upstream_runs():
    """A run made before its ancestor's last re-run (an interrupted run) runs again: its record of the
    ancestor's code or pinned version differs from the flow's."""
    changed = {**CODE, "split": {"split": "000000000000"}}
    assert decide(finished(code=changed), "train", RECORD, "code") == (True, "code changed: split", [])
    assert decide(finished(pinned={"split": "1"}), "train", {"pinned": {"split": "2"}}) == (
        True, "version 1 → 2", [])


def test_damage_is_checked_last_and_only_for_runs_that_would_be_cached():
    """The store's damage check is asked only when nothing else makes the task run."""
    asked = []

    def damage():
        asked.append(1)
        return ["model.p is missing"]

    assert decide(finished(code=CODE), "train", RECORD, "code", upstream=["split"], damage=damage)[1] == (
        "upstream runs: split")
    assert asked == []
    assert decide(finished(code=CODE), "train", RECORD, "code", damage=damage) == (
        True, "results missing", ["model.p is missing"])


@pytest.mark.parametrize("entries, lines", [
    ([("train-1", True, "code changed: Train.run"), ("train-2", False, "cached"),
      ("train-3", True, "code changed: Train.run")], ["train: 1 cached, 2 to run (code changed: Train.run)"]),
    ([("train-1", True, "new config"), ("train-2", True, "failed last time"), ("train-3", True, "new config")],
     ["train: 0 cached, 3 to run (new config ×2, failed last time ×1)"]),
    ([("train", False, "cached")], ["train: 1 cached, 0 to run"]),
])
def test_plan_lines_summarise_each_task_name(entries, lines):
    """One line per task name: counts, and the reasons of those that run."""
    plan = [PlanEntry(unique, unique.split("-")[0], "abcdefgh", runs, reason) for unique, runs, reason in entries]
    assert plan_lines(plan) == lines
