"""Compatibility with the original fluidml 0.3.4, case by case, against files it generated
(tests/golden/generate.py): grid expansions, expanded graphs and unique-config hashes."""

import json
import pathlib

import pytest

from fluidml import Flow, TaskSpec
from fluidml.config import config_hash, expand_config
from fluidml.exception import GridSearchExpansionError
from golden.describe import build_flow

GOLDEN = pathlib.Path(__file__).parent / "golden"


def _load(name):
    return json.loads((GOLDEN / f"{name}.json").read_text())


def _has_scalar_marker(value, in_list=False):
    """True if a string that starts with "@" stands anywhere but at the end of a list: the original
    took such scalars for zip-group markers too (and dropped the config); we keep them as values."""
    if isinstance(value, dict):
        return any(_has_scalar_marker(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_scalar_marker(v, True) for v in value[:-1]) or (
            bool(value) and isinstance(value[-1], (dict, list)) and _has_scalar_marker(value[-1], True)
        )
    return isinstance(value, str) and value.startswith("@") and not in_list


EXPANSIONS = [c for c in _load("expansion") if not _has_scalar_marker(c["config"])]


@pytest.mark.parametrize("case", EXPANSIONS, ids=[f"expansion-{i}" for i in range(len(EXPANSIONS))])
def test_expansion_matches_original(case):
    """Every grid the original expanded expands to the same configs in the same order; a grid the
    original turned into zero configs is a clear error here."""
    if case.get("result"):
        assert expand_config(case["config"], case["expand"], case["gp"]) == case["result"]
    elif "result" in case:
        with pytest.raises(GridSearchExpansionError):
            expand_config(case["config"], case["expand"], case["gp"])
    else:
        # The original crashed; we either explain the grid's problem or expand it.
        try:
            configs = expand_config(case["config"], case["expand"], case["gp"])
        except GridSearchExpansionError as error:
            assert error.key is None or isinstance(error.key, str)
        else:
            assert configs and all(isinstance(c, dict) for c in configs)


def test_golden_files_cover_the_interesting_shapes():
    """The expansion cases include zip, groups, lists of lists and the original's crashes."""
    cases = _load("expansion")
    assert sum(c["expand"] == "zip" for c in cases) > 100
    assert sum(c["gp"] == "@" for c in cases) > 100
    assert sum("error" in c for c in cases) > 20
    assert sum(len(c.get("result", [])) > 3 for c in cases) > 30


def _equal_up_to_wrapping(a, b):
    """The original's reducers rewrite the unique configs of upstream tasks in place (a plain list
    value gets wrapped once more); the reducers' own configs are right, the upstream ones are not."""
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_equal_up_to_wrapping(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return a == b or a == [b] or [a] == b or (
            len(a) == len(b) and all(_equal_up_to_wrapping(x, y) for x, y in zip(a, b))
        )
    return a == b


FLOWS = _load("flows")


@pytest.mark.parametrize("case", FLOWS, ids=[f"flow-{i}" for i in range(len(FLOWS))])
def test_expanded_graph_matches_original(case):
    """Task names, order, configs, unique configs (key order included) and predecessors."""
    flow = build_flow(case, TaskSpec, Flow)
    assert list(flow.task_spec_graph.nodes) == case["spec_nodes"]
    tasks = [data["task"] for _, data in flow.task_graph.nodes(data=True)]
    assert [t.unique_name for t in tasks] == [t["unique_name"] for t in case["tasks"]]
    has_reducer = any(s.get("reduce") for s in case["specs"])
    for task, expected in zip(tasks, case["tasks"]):
        assert task.name == expected["name"]
        assert json.loads(json.dumps(task.config)) == expected["config"]
        assert [p.unique_name for p in task.predecessors] == expected["predecessors"]
        unique_config = json.loads(json.dumps(task.unique_config))
        assert list(unique_config) == list(expected["unique_config"])
        if task.reduce or not has_reducer:
            assert unique_config == expected["unique_config"]
        else:
            assert _equal_up_to_wrapping(unique_config, expected["unique_config"])


@pytest.mark.parametrize("case", _load("hashes"))
def test_hash_matches_original(case):
    """The 8-character hash of a unique config is the original's."""
    assert config_hash(case["unique_config"]) == case["hash"]


def test_hash_check_value():
    """The documented check value."""
    assert config_hash({"a": {"x": 1}}) == "dnihykfb"
