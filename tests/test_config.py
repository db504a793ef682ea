"""Config grids (original-behaviour §1.8, §2.1-§2.8, and DESIGN §3): expansion counts and order,
zip and zip groups, relevant/prepared configs, the JSON copy of a spec config and the config hash.
Deliberate differences from the original are grouped at the end of the expansion tests."""

import re

import pytest

import fluidml.config
from fluidml import Flow, TaskSpec
from fluidml.config import (
    config_hash,
    expand_config,
    hashed_config,
    prepared_config,
    register_expansion,
    relevant_config,
    to_json_config,
)
from fluidml.exception import GridSearchExpansionError, TaskSpecError


def product(config, group_prefix=None):
    return expand_config(config, "product", group_prefix, spec_name="T")


def zipped(config, group_prefix=None):
    return expand_config(config, "zip", group_prefix, spec_name="T")


def noop(task=None, **kwargs):
    return None


# ------------------------------------------------------------------ §2.2 "product": table rows


def test_product_two_lists_first_key_varies_slowest():
    """Two lists give their cartesian product, the first key varying slowest."""
    assert product({"a": [1, 2], "b": [3, 4]}) == [
        {"a": 1, "b": 3}, {"a": 1, "b": 4}, {"a": 2, "b": 3}, {"a": 2, "b": 4},
    ]


def test_product_single_nested_list_is_a_literal_list():
    """A list wrapped in a one-element list is one literal list value."""
    assert product({"a": [1, 2], "b": [[3, 4]]}) == [{"a": 1, "b": [3, 4]}, {"a": 2, "b": [3, 4]}]


def test_product_list_of_lists_is_flattened():
    """A list of several lists is flattened into its scalar alternatives."""
    assert product({"a": [[1, 2], [3, 4]]}) == [{"a": 1}, {"a": 2}, {"a": 3}, {"a": 4}]


def test_product_list_mixing_a_list_and_a_scalar_is_flattened():
    """A list holding a list and a scalar is flattened too."""
    assert product({"a": [[1, 2], 5]}) == [{"a": 1}, {"a": 2}, {"a": 5}]


def test_product_double_wrapped_lists_are_literal_list_values():
    """Each double-wrapped list is one alternative whose value is the single-wrapped list."""
    assert product({"a": [[[1, 2]], [[3, 4]]]}) == [{"a": [[1, 2]]}, {"a": [[3, 4]]}]


def test_product_triple_wrapped_single_list():
    """A triple-wrapped single list gives one config holding the double-wrapped list."""
    assert product({"a": [[[1, 2]]]}) == [{"a": [[1, 2]]}]


def test_product_empty_dicts_give_one_unchanged_config():
    """An empty config, or an empty dict value, gives exactly one unchanged config."""
    assert product({}) == [{}]
    assert product({"a": {}}) == [{"a": {}}]


def test_product_list_of_dicts_gives_one_config_per_dict():
    """A list of dicts gives one config per dict."""
    assert product({"a": [{"x": 1}, {"x": 2}]}) == [{"a": {"x": 1}}, {"a": {"x": 2}}]


def test_product_dicts_in_a_list_are_expanded_themselves():
    """Each dict in a list is expanded itself, and the results are concatenated."""
    assert product({"a": [{"x": [1, 2]}, {"y": 3}]}) == [
        {"a": {"x": 1}}, {"a": {"x": 2}}, {"a": {"y": 3}},
    ]


def test_product_inside_a_nested_dict():
    """Lists inside a nested dict are expanded as a product, the first inner key slowest."""
    assert product({"a": {"x": [1, 2], "y": [3, 4]}}) == [
        {"a": {"x": 1, "y": 3}}, {"a": {"x": 1, "y": 4}},
        {"a": {"x": 2, "y": 3}}, {"a": {"x": 2, "y": 4}},
    ]


def test_product_keeps_duplicate_values():
    """Duplicate values in a list are not removed."""
    assert product({"a": [1, 2, 2]}) == [{"a": 1}, {"a": 2}, {"a": 2}]


def test_product_none_is_an_alternative():
    """None is an ordinary alternative during expansion."""
    assert product({"a": [None, 1]}) == [{"a": None}, {"a": 1}]


def test_product_list_of_dicts_varies_its_inner_values_fastest():
    """Inner variants of dicts in a list vary fastest, even faster than later keys."""
    config = {"m": [{"k": [1, 2]}, {"k": 3}], "n": [10, 20]}
    pairs = [(c["m"]["k"], c["n"]) for c in product(config)]
    assert pairs == [(1, 10), (2, 10), (1, 20), (2, 20), (3, 10), (3, 20)]


def test_product_plain_nested_dict_keeps_key_order():
    """A plain nested dict (not in a list) keeps the usual order: earlier keys slowest."""
    config = {"m": {"k": [1, 2]}, "n": [10, 20]}
    pairs = [(c["m"]["k"], c["n"]) for c in product(config)]
    assert pairs == [(1, 10), (1, 20), (2, 10), (2, 20)]


# -------------------------------------------------------------------------------- §2.3 "zip"


def test_zip_pairs_values_by_position():
    """Zip pairs the lists' values by position."""
    assert zipped({"a": [1, 2], "b": [3, 4]}) == [{"a": 1, "b": 3}, {"a": 2, "b": 4}]


def test_zip_truncates_to_the_shortest_list():
    """Zip of lists of unequal length stops at the shortest list."""
    assert zipped({"a": [1, 2], "b": [3, 4, 5]}) == [{"a": 1, "b": 3}, {"a": 2, "b": 4}]


def test_zip_broadcasts_one_element_lists():
    """A one-element list is broadcast to every zipped position."""
    assert zipped({"a": [1, 2], "b": [3]}) == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]


def test_zip_includes_lists_in_nested_dicts():
    """Lists inside nested dicts are zipped with the top-level lists."""
    assert zipped({"a": [1, 2], "b": {"c": [3, 4]}}) == [
        {"a": 1, "b": {"c": 3}}, {"a": 2, "b": {"c": 4}},
    ]


def test_zip_includes_lists_of_dicts():
    """A list of dicts is zipped like any other list."""
    assert zipped({"a": [1, 2], "b": [{"c": 3}, {"c": 4}]}) == [
        {"a": 1, "b": {"c": 3}}, {"a": 2, "b": {"c": 4}},
    ]


# --------------------------------------------------------------- §2.4 config_group_prefix


def test_groups_zip_marked_lists_inside_a_product():
    """Lists marked "@x" are zipped together, the unmarked list is multiplied in."""
    config = {"a": [1, 2, "@x"], "b": [1, 2, 3], "c": [1, 2, "@x"]}
    assert [(c["a"], c["b"], c["c"]) for c in product(config, "@")] == [
        (1, 1, 1), (1, 2, 1), (1, 3, 1), (2, 1, 2), (2, 2, 2), (2, 3, 2),
    ]


def test_groups_without_prefix_markers_are_ordinary_values():
    """Without a group prefix the "@x" strings are values: 3 x 3 x 3 = 27 configs."""
    configs = product({"a": [1, 2, "@x"], "b": [1, 2, 3], "c": [1, 2, "@x"]})
    assert len(configs) == 27
    assert {"a": "@x", "b": 3, "c": "@x"} in configs


def test_groups_are_global_across_nesting_levels():
    """One group id ties lists at different nesting levels together."""
    assert product({"a": [1, 2, "@x"], "b": {"c": [3, 4, "@x"]}}, "@") == [
        {"a": 1, "b": {"c": 3}}, {"a": 2, "b": {"c": 4}},
    ]


def test_groups_with_different_ids_are_independent():
    """Two groups multiply with each other: 2 x 2 = 4 configs."""
    config = {"a": [1, 2, "@x"], "b": [3, 4, "@y"], "c": [5, 6, "@x"], "d": [7, 8, "@y"]}
    assert [tuple(c.values()) for c in product(config, "@")] == [
        (1, 3, 5, 7), (1, 4, 5, 8), (2, 3, 6, 7), (2, 4, 6, 8),
    ]


def test_groups_truncate_to_the_shortest_member():
    """Extra positions of a longer group member are dropped."""
    assert product({"a": [1, 2, "@x"], "b": [3, 4, 5, "@x"]}, "@") == [
        {"a": 1, "b": 3}, {"a": 2, "b": 4},
    ]


def test_groups_one_element_member_forces_index_zero():
    """A one-element grouped list is not broadcast: it forces position 0 for the whole group."""
    assert product({"a": [1, "@x"], "b": [5, 6, "@x"]}, "@") == [{"a": 1, "b": 5}]


def test_groups_marker_not_last_is_a_value():
    """A marker-like string that is not the last list element is an ordinary value."""
    assert product({"a": ["@x", 1]}, "@") == [{"a": "@x"}, {"a": 1}]


def test_groups_cfg_6_members_in_unselected_alternatives_do_not_count():
    """The original's cfg_6 gives 8 = 2*2 + 1*2*2: members inside unchosen dicts do not bind."""
    config = {
        "a": [{"a": [1, 2, "@x"]}, {"a": 4}],
        "b": {"c": [1, 2, 3, "@x"]},
        "c": {"test": [True, False], "funny": {"y": [True, False, "@x"]}},
    }
    configs = product(config, "@")
    assert len(configs) == 8
    assert sum(c["a"] == {"a": 4} for c in configs) == 4
    for c in configs:
        if c["a"] != {"a": 4}:
            assert c["a"]["a"] == c["b"]["c"] and c["c"]["funny"]["y"] == (c["a"]["a"] == 1)


# ------------------------------------------------------------ §2.1 expand ids, custom methods


def test_expand_none_passes_lists_literally():
    """expand=None uses the config as it is: one config, lists kept literally."""
    assert expand_config({"a": [1, 2], "b": {"c": [3]}}, None) == [{"a": [1, 2], "b": {"c": [3]}}]
    tasks = TaskSpec(noop, config={"a": [1, 2]}).expand()
    assert len(tasks) == 1 and tasks[0].config == {"a": [1, 2]}


def test_register_expansion_adds_a_custom_expand_id(monkeypatch):
    """A registered id is called as fn(config, group_prefix=...) and its list of dicts is used."""
    monkeypatch.setattr(fluidml.config, "_CUSTOM_EXPANSIONS", {})
    calls = []

    def each_a(config, group_prefix=None):
        calls.append(group_prefix)
        return [{**config, "a": a} for a in config["a"]]

    register_expansion("each_a", each_a)
    assert expand_config({"a": [1, 2], "b": 0}, "each_a", "@") == [{"a": 1, "b": 0}, {"a": 2, "b": 0}]
    spec = TaskSpec(noop, config={"a": [3, 4, 5]}, expand="each_a", name="Custom")
    assert [t.config["a"] for t in spec.expand()] == [3, 4, 5]
    assert calls == ["@", None]


def test_register_expansion_cannot_replace_a_builtin_id():
    """The built-in ids "product" and "zip" cannot be re-registered."""
    with pytest.raises(ValueError, match="product"):
        register_expansion("product", lambda config, group_prefix=None: [config])


def test_unknown_expand_id_lists_the_valid_ids():
    """An unknown expand id raises GridSearchExpansionError naming the task and the valid ids."""
    with pytest.raises(GridSearchExpansionError, match=r"(?s)undefined.*'product'.*'zip'") as info:
        expand_config({"a": [1, 2]}, "undefined", spec_name="Train")
    assert info.value.task_name == "Train" and "Train" in str(info.value)
    with pytest.raises(GridSearchExpansionError, match="Train"):
        Flow([TaskSpec(noop, config={"a": [1, 2]}, expand="undefined", name="Train")])


def test_zip_of_five_keys_by_ten_values_gives_ten_configs():
    """The original's cfg_11 shape: zip of 5 keys x 10 values gives 10 configs, position-aligned."""
    configs = zipped({f"k{i}": list(range(10)) for i in range(5)})
    assert len(configs) == 10
    assert configs[7] == {f"k{i}": 7 for i in range(5)}


def test_product_of_three_keys_by_twenty_values_gives_8000_configs():
    """A product of 3 keys x 20 values gives 20**3 = 8000 configs, last key fastest."""
    configs = product({k: list(range(20)) for k in "abc"})
    assert len(configs) == 8000
    assert configs[1] == {"a": 0, "b": 0, "c": 1} and configs[-1] == {"a": 19, "b": 19, "c": 19}


# ------------------------------------------------------------ deliberate differences (DESIGN §3)


@pytest.mark.parametrize(
    "config, expand, key",
    [
        ({"a": []}, "product", "a"),
        ({"a": {"b": []}}, "product", "a.b"),
        ({"a": [1, 2], "b": []}, "zip", "b"),
    ],
    ids=["top-level", "nested", "zip"],
)
def test_grid_with_zero_configs_is_an_error_naming_the_key(config, expand, key):
    """A grid that expands to zero configs raises GridSearchExpansionError naming spec and key."""
    with pytest.raises(GridSearchExpansionError, match=rf"(?s)Empty.*'{re.escape(key)}'") as info:
        expand_config(config, expand, spec_name="Empty")
    assert info.value.key == key and info.value.task_name == "Empty"
    with pytest.raises(GridSearchExpansionError, match=rf"'{re.escape(key)}'"):
        Flow([TaskSpec(noop, config=config, expand=expand, name="Empty")])


def test_zip_over_a_list_of_lists_is_an_error_naming_the_key():
    """Zip over a list of lists (which crashed the original) raises an error naming key "a"."""
    with pytest.raises(GridSearchExpansionError, match='"a"') as info:
        expand_config({"a": [[1, 2], [3, 4]]}, "zip", spec_name="Z")
    assert info.value.key == "a" and info.value.task_name == "Z"


def test_zip_scalar_string_starting_with_at_stays_a_value():
    """A scalar string that starts with "@" is a value, not a zip marker."""
    assert zipped({"user": "@bob", "x": [1, 2]}) == [{"user": "@bob", "x": 1}, {"user": "@bob", "x": 2}]


# ----------------------------------------------------- §1.8 / §2.6 relevant and prepared configs


def test_relevant_and_prepared_config_of_the_section_1_8_example():
    """The §1.8 example: ignored and None keys leave the unique config; the task gets them all."""
    spec = TaskSpec(
        noop, name="Alpha", expand="product", config_ignore_prefix="_",
        config={"_debug": True, "x": [1, 2], "none_val": None}, additional_kwargs={"extra": "E"},
    )
    tasks = sorted(Flow([spec]).task_graph.nodes(data="task"))
    assert [name for name, _ in tasks] == ["Alpha-1", "Alpha-2"]
    for x, (_, task) in zip([1, 2], tasks):
        assert task.unique_config == {"Alpha": {"x": x}}
        assert task.config == {"debug": True, "x": x, "none_val": None, "extra": "E"}


def test_relevant_config_drops_ignored_and_none_keys_recursively():
    """Ignored keys and None values go, in nested dicts, dicts inside lists and list elements."""
    config = {"_seed": 1, "a": {"_b": 2, "c": None, "d": 3}, "l": [{"_x": 4, "y": 5}, None, 6]}
    assert relevant_config(config, "_") == {"a": {"d": 3}, "l": [{"y": 5}, 6]}


def test_prepared_config_strips_the_prefix_once_everywhere():
    """The ignore prefix is stripped once from keys at any depth ("__x" becomes "_x"); None stays."""
    config = {"__x": 1, "a": {"_b": 2}, "l": [{"_y": 3}], "n": None}
    assert prepared_config(config, "_") == {"_x": 1, "a": {"b": 2}, "l": [{"y": 3}], "n": None}


def test_relevant_config_keeps_empty_dicts():
    """Empty dicts stay in the relevant config, also those emptied by removing None values."""
    assert relevant_config({"a": {}, "b": {"c": None}, "_d": {}}, "_") == {"a": {}, "b": {}}


# -------------------------------------------------------------------------------- to_json_config


def test_to_json_config_turns_tuples_into_lists_and_keys_into_strings():
    """Tuples become lists and int keys become strings, as in a JSON round trip."""
    assert to_json_config({"a": (1, (2, 3)), 1: {2: "x"}}, "T") == {"a": [1, [2, 3]], "1": {"2": "x"}}
    assert TaskSpec(noop, config={"t": (1, 2), 5: 6}).config == {"t": [1, 2], "5": 6}


@pytest.mark.parametrize(
    "config, path",
    [({"a": {"b": object()}}, "a.b"), ({"s": {1, 2}}, "s"), ({"l": [1, {"o": object()}]}, "l[1].o")],
    ids=["object", "set", "in-list"],
)
def test_to_json_config_rejects_non_json_values_naming_the_path(config, path):
    """A non-JSON value raises TaskSpecError naming its path and suggesting additional_kwargs."""
    with pytest.raises(TaskSpecError, match=rf'(?s)"{re.escape(path)}".*additional_kwargs') as info:
        to_json_config(config, "T")
    assert info.value.key == path and info.value.task_name == "T"
    with pytest.raises(TaskSpecError, match="additional_kwargs"):
        TaskSpec(noop, config=config)


def test_to_json_config_rejects_a_non_dict_config():
    """A config that is not a dict raises TaskSpecError."""
    with pytest.raises(TaskSpecError, match="config must be a dict, got list"):
        to_json_config([1, 2], "T")
    with pytest.raises(TaskSpecError, match="config must be a dict"):
        TaskSpec(noop, config="a=1")


# ---------------------------------------------------------------------------- §2.8 config hash


def test_config_hash_check_value():
    """The check value of §2.8: {"a": {"x": 1}} hashes to "dnihykfb"."""
    assert config_hash({"a": {"x": 1}}) == "dnihykfb"


def test_config_hash_ignores_key_order():
    """The hash does not depend on key insertion order, at any depth."""
    one = {"B": {"y": 2, "x": [1, {"q": 1, "p": 2}]}, "A": {}}
    two = {"A": {}, "B": {"x": [1, {"p": 2, "q": 1}], "y": 2}}
    assert config_hash(one) == config_hash(two)
    assert config_hash(one) != config_hash({"A": {}, "B": {"x": [1, {"p": 2, "q": 1}], "y": 3}})


def test_hashed_config_is_cached_on_the_config():
    """hashed_config attaches hash and digest once and returns an already hashed config as is."""
    hashed = hashed_config({"a": {"x": 1}})
    assert hashed == {"a": {"x": 1}} and hashed.hash == "dnihykfb" and len(hashed.digest) == 32
    assert hashed_config(hashed) is hashed
    assert config_hash(hashed) == "dnihykfb"


def test_incremental_hashes_equal_full_hashes():
    """Hashing a chain's configs entry by entry gives the same hashes as hashing each config whole."""
    from fluidml.config import hashed_child_config, hashed_config

    names = ["t0", "t10", "t2", "a", "z9", "m", "t1"]
    parent = hashed_config({names[0]: {"x": [1, {"b": 2, "a": 1}]}})
    full = dict(parent)
    for i, name in enumerate(names[1:], start=1):
        child = hashed_child_config(parent, name, {"i": i, "s": "é"})
        full[name] = {"i": i, "s": "é"}
        assert child == full
        assert (child.hash, child.digest) == (hashed_config(dict(full)).hash, hashed_config(dict(full)).digest)
        parent = child
