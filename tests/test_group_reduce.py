"""Group reducers (TaskSpec(reduce="seed")): groups, members, unique configs, shapes, errors, views,
and runs on every store and executor (caching after adding a seed)."""

import html

import pytest

import group_tasks as g
from fluidml import Flow, TaskSpec
from fluidml.exception import TaskSpecError
from fluidml.task import PROTECTED_NAMES, Task


def spec(name, config=None, expand=None, reduce=None, requires=(), **kwargs):
    s = TaskSpec(task=_noop, name=name, config=config, expand=expand, reduce=reduce, **kwargs)
    s.requires(*requires)
    return s


def _noop(task, **kwargs):
    task.save(kwargs, "kwargs")


def tasks_of(flow, name):
    return [t for _, t in flow.task_graph.nodes(data="task") if t.name == name]


def groups(flow, name):
    """{unique name: [its predecessors' unique names]} of a spec's tasks."""
    return {t.unique_name: [p.unique_name for p in t.predecessors] for t in tasks_of(flow, name)}


def configs(flow, name):
    return [dict(t.unique_config) for t in tasks_of(flow, name)]


def lr_seed_flow(reduce="seed"):
    """A(x: 1, 2) -> B(y: 1, 2, 3 x seed: 0, 1) -> R(reduce=...)."""
    a = spec("A", {"x": [1, 2]}, "product")
    b = spec("B", {"y": [1, 2, 3], "seed": [0, 1]}, "product", requires=[a])
    return Flow([spec("R", reduce=reduce, requires=[b])])


# --------------------------------------------------------------------------------- groups and configs

def test_one_reducer_per_combination_of_the_other_varying_values():
    """Reducing over seed gives one task per (x, y): 6 tasks, each with its 2 seeds in task order."""
    flow = lr_seed_flow()
    assert groups(flow, "R") == {f"R-{i}": [f"B-{2 * i - 1}", f"B-{2 * i}"] for i in range(1, 7)}
    assert configs(flow, "R")[:2] == [
        {"A": {"x": 1}, "B": {"y": 1, "seed": [0, 1]}, "R": {}},
        {"A": {"x": 1}, "B": {"y": 2, "seed": [0, 1]}, "R": {}},
    ]
    assert configs(flow, "R")[5] == {"A": {"x": 2}, "B": {"y": 3, "seed": [0, 1]}, "R": {}}


def test_reduce_over_several_keys():
    """reduce=["seed", "y"] groups by x alone: 2 tasks of 6 members, both reduced keys as lists."""
    flow = lr_seed_flow(["seed", "y"])
    assert groups(flow, "R") == {"R-1": [f"B-{i}" for i in range(1, 7)], "R-2": [f"B-{i}" for i in range(7, 13)]}
    assert configs(flow, "R") == [{"A": {"x": x}, "B": {"y": [1, 2, 3], "seed": [0, 1]}, "R": {}} for x in (1, 2)]


def test_reduce_stays_true_and_the_keys_are_kept_apart():
    """task.reduce is True for every reducer; spec.reduce_keys holds the keys as given and
    task.reduce_keys the ("Task", "key") pairs they name; other tasks have None."""
    r = spec("R", reduce="seed")
    assert r.reduce is True and r.reduce_keys == ("seed",)
    assert spec("F", reduce=True).reduce_keys is None
    assert TaskSpec(_noop, name="P", reduce=[("B", "seed"), "y", "y"]).reduce_keys == (("B", "seed"), "y")
    flow = lr_seed_flow(["seed", ("A", "x")])
    reducer = tasks_of(flow, "R")[0]
    assert reducer.reduce is True and reducer.reduce_keys == (("B", "seed"), ("A", "x"))
    assert tasks_of(flow, "B")[0].reduce_keys is None


def test_reducing_over_every_varying_key_gives_one_task():
    """With every varying key reduced there is one group: one task, with the bare spec name."""
    flow = lr_seed_flow(["seed", "y", "x"])
    assert list(groups(flow, "R")) == ["R"]
    assert configs(flow, "R") == [{"A": {"x": [1, 2]}, "B": {"y": [1, 2, 3], "seed": [0, 1]}, "R": {}}]


def test_zip_groups_of_different_sizes():
    """A zipped grid pairs lr and seed: groups have 2 and 1 members; a group of one still lists
    its seed as a list, so adding a seed changes its identity."""
    t = spec("train", {"lr": [0.1, 0.1, 0.2], "seed": [0, 1, 0]}, "zip")
    flow = Flow([spec("agg", reduce="seed", requires=[t])])
    assert groups(flow, "agg") == {"agg-1": ["train-1", "train-2"], "agg-2": ["train-3"]}
    assert configs(flow, "agg") == [{"train": {"lr": 0.1, "seed": [0, 1]}, "agg": {}},
                                    {"train": {"lr": 0.2, "seed": [0]}, "agg": {}}]


def test_zip_groups_inside_a_product():
    """lr and wd zipped with "@g", times 3 seeds: reducing over seed groups by the (lr, wd) pairs."""
    t = spec("train", {"lr": [0.1, 0.2, "@g"], "wd": [1, 2, "@g"], "seed": [0, 1, 2]}, "product",
             config_group_prefix="@")
    flow = Flow([spec("agg", reduce="seed", requires=[t])])
    assert groups(flow, "agg") == {"agg-1": ["train-1", "train-2", "train-3"],
                                   "agg-2": ["train-4", "train-5", "train-6"]}
    assert configs(flow, "agg")[1] == {"train": {"lr": 0.2, "wd": 2, "seed": [0, 1, 2]}, "agg": {}}


def test_keys_of_different_ancestors():
    """fold (of data) and seed (of train) are reduced together; grouping by lr only."""
    d = spec("data", {"fold": [0, 1]}, "product")
    t = spec("train", {"lr": [0.1, 0.2], "seed": [0, 1]}, "product", requires=[d])
    flow = Flow([spec("agg", reduce=["fold", "train.seed"], requires=[t])])
    assert groups(flow, "agg") == {"agg-1": ["train-1", "train-2", "train-5", "train-6"],
                                   "agg-2": ["train-3", "train-4", "train-7", "train-8"]}
    assert configs(flow, "agg")[0] == {"data": {"fold": [0, 1]}, "train": {"lr": 0.1, "seed": [0, 1]}, "agg": {}}
    by_fold_and_lr = Flow([spec("agg2", reduce="seed", requires=[t])])
    assert [t._reduce_group for t in tasks_of(by_fold_and_lr, "agg2")] == [
        ((("data", "fold"), f), (("train", "lr"), lr)) for f in (0, 1) for lr in (0.1, 0.2)
    ]


def test_a_name_that_varies_in_one_task_only_needs_no_task_name():
    """split.seed is fixed and train.seed varies: "seed" names train.seed."""
    s = spec("split", {"seed": 42})
    t = spec("train", {"lr": [0.1, 0.2], "seed": [0, 1]}, "product", requires=[s])
    reducer = tasks_of(Flow([spec("agg", reduce="seed", requires=[t])]), "agg")[0]
    assert reducer.reduce_keys == (("train", "seed"),)
    assert dict(reducer.unique_config) == {"split": {"seed": 42}, "train": {"lr": 0.1, "seed": [0, 1]}, "agg": {}}


def test_task_names_with_dots_as_tuples_or_strings():
    """A task named "train.v2": ("train.v2", "seed") and "train.v2.seed" both name its seed."""
    t = spec("train.v2", {"lr": [0.1, 0.2], "seed": [0, 1]}, "product")
    for key in [("train.v2", "seed"), "train.v2.seed"]:
        flow = Flow([spec("agg", reduce=key, requires=[t])])
        assert [r.reduce_keys for r in tasks_of(flow, "agg")] == [(("train.v2", "seed"),)] * 2


def test_several_predecessors():
    """R requires A(x) and C(z), which do not depend on each other: per x, every C task."""
    a = spec("A", {"x": [1, 2]}, "product")
    c = spec("C", {"z": [1, 2, 3]}, "product")
    flow = Flow([spec("R", reduce="z", requires=[a, c])])
    assert groups(flow, "R") == {"R-1": ["A-1", "C-1", "C-2", "C-3"], "R-2": ["A-2", "C-1", "C-2", "C-3"]}
    assert configs(flow, "R")[1] == {"A": {"x": 2}, "C": {"z": [1, 2, 3]}, "R": {}}


def test_a_full_reducer_beside_the_tasks_it_reduced():
    """R requires train's full reducer and train: each group holds the full reducer and the
    training runs of one lr (the members' configs disagree, and are merged as reduce=True does)."""
    train = spec("train", {"lr": [0.1, 0.2], "seed": [0, 1]}, "product")
    flow = Flow([spec("R", reduce="seed", requires=[spec("full", reduce=True, requires=[train]), train])])
    assert groups(flow, "R") == {"R-1": ["full", "train-1", "train-2"], "R-2": ["full", "train-3", "train-4"]}
    assert configs(flow, "R")[1] == {"full": {}, "train": {"lr": [[0.1, 0.2], 0.2], "seed": [[0, 1], 0, 1]},
                                     "R": {}}


def prep_train_flow():
    prep = spec("prep", {"p": [1, 2]}, "product")
    train = spec("train", {"lr": [0.1, 0.2], "seed": [0, 1, 2]}, "product", requires=[prep])
    return prep, train, spec("agg", reduce="seed", requires=[train])


def test_chains_group_then_full_and_group_then_group():
    """agg (per p and lr) -> best (reduce=True) over its 4 tasks; agg -> per_p (reduce="lr")."""
    prep, train, agg = prep_train_flow()
    flow = Flow([spec("best", reduce=True, requires=[agg]), spec("per_p", reduce="lr", requires=[agg])])
    assert groups(flow, "best") == {"best": ["agg-1", "agg-2", "agg-3", "agg-4"]}
    assert groups(flow, "per_p") == {"per_p-1": ["agg-1", "agg-2"], "per_p-2": ["agg-3", "agg-4"]}
    assert configs(flow, "per_p")[0] == {
        "agg": {}, "prep": {"p": 1}, "train": {"lr": [0.1, 0.2], "seed": [[0, 1, 2]]}, "per_p": {}
    }
    assert configs(flow, "best") == [
        {"agg": {}, "prep": {"p": [1, 2]}, "train": {"lr": [0.1, 0.2], "seed": [[0, 1, 2]]}, "best": {}}
    ]


def test_a_normal_successor_gets_one_task_per_group():
    """report requires agg only: report-1 .. report-4, each with its group's config."""
    prep, train, agg = prep_train_flow()
    flow = Flow([spec("report", requires=[agg])])
    assert groups(flow, "report") == {f"report-{i}": [f"agg-{i}"] for i in range(1, 5)}
    assert configs(flow, "report")[3] == {"prep": {"p": 2}, "train": {"lr": 0.2, "seed": [0, 1, 2]}, "agg": {},
                                          "report": {}}


def test_diamonds_agree_on_the_kept_keys():
    """prep -> report and agg -> report: one report per group (its own prep); train -> report2 and
    agg -> report2: each train task only with its own group (12 tasks, not 48)."""
    prep, train, agg = prep_train_flow()
    report = spec("report", requires=[agg, prep])
    report2 = spec("report2", requires=[agg, train])
    flow = Flow([report, report2])
    assert groups(flow, "report") == {"report-1": ["agg-1", "prep-1"], "report-2": ["agg-2", "prep-1"],
                                      "report-3": ["agg-3", "prep-2"], "report-4": ["agg-4", "prep-2"]}
    assert groups(flow, "report2") == {f"report2-{i}": [f"agg-{(i + 2) // 3}", f"train-{i}"] for i in range(1, 13)}


def test_full_reduce_is_unchanged_beside_group_reducers():
    """A reduce=True task over the same grid keeps its single task and grid-notation config."""
    flow = lr_seed_flow(True)
    assert list(groups(flow, "R")) == ["R"] and len(tasks_of(flow, "R")[0].predecessors) == 12
    assert configs(flow, "R") == [{"A": {"x": [1, 2]}, "B": {"y": [1, 2, 3], "seed": [0, 1]}, "R": {}}]


# ------------------------------------------------------------------------------------------- errors

VARYING = "Keys that vary upstream: A.x, B.y, B.seed."


@pytest.mark.parametrize("key, problem", [
    ("sed", 'reduce key \'sed\' is not a config key of any task upstream of "R".'),
    (("Z", "seed"), 'reduce key (\'Z\', \'seed\') names the task "Z", which is not upstream of "R".'),
    ("k", "reduce key 'k' (B.k) does not vary upstream"),
    ("B.k", "reduce key 'B.k' (B.k) does not vary upstream"),
    ("_debug", 'is a config key of "B" under its ignore prefix "_"'),
    ("debug", 'is a config key of "B" under its ignore prefix "_"'),
    ("opt.lr", 'reduce key \'opt.lr\' names a key inside "B.opt"'),
    (("B", "opt.lr"), 'names a key inside "B.opt"'),
])
def test_bad_keys_are_errors_at_flow_naming_the_spec_and_the_varying_keys(key, problem):
    """Unknown keys and tasks, fixed keys, ignore-prefixed and nested keys: a TaskSpecError at
    Flow() naming the reducer, the key, and the keys that vary upstream."""
    a = spec("A", {"x": [1, 2]}, "product")
    b = spec("B", {"y": [1, 2, 3], "seed": [0, 1], "k": 5, "_debug": [True, False], "opt": {"lr": 1}},
             "product", requires=[a], config_ignore_prefix="_")
    with pytest.raises(TaskSpecError) as error:
        Flow([spec("R", reduce=key, requires=[b])])
    message = str(error.value)
    assert message.startswith('Task "R": ') and problem in message and message.endswith(VARYING)
    assert error.value.task_name == "R"


def test_an_ambiguous_name_asks_for_the_task():
    """seed varies in split and in train: "seed" is refused, "train.seed" works."""
    s = spec("split", {"seed": [1, 2]}, "product")
    t = spec("train", {"seed": [0, 1]}, "product", requires=[s])
    with pytest.raises(TaskSpecError, match=r"reduce key 'seed' is ambiguous: it varies in split\.seed, "
                                            r'train\.seed; name one as "Task\.key"'):
        Flow([spec("agg", reduce="seed", requires=[t])])
    assert len(tasks_of(Flow([spec("agg", reduce="train.seed", requires=[t])]), "agg")) == 2


def test_nothing_varies_upstream():
    """A grid of one value has no axes: the error says so and suggests reduce=True."""
    t = spec("train", {"seed": [0]}, "product")
    with pytest.raises(TaskSpecError, match=r"\(train\.seed\) does not vary upstream: .* No config key varies "
                                            r"upstream of it, so there is nothing to group by \(use reduce=True\)"):
        Flow([spec("agg", reduce="seed", requires=[t])])


@pytest.mark.parametrize("reduce", [3, "", " ", [], ["seed", 3], {"seed": 1}, ("a", "b", "c"), [("a", "")]])
def test_malformed_reduce_values_are_errors_at_the_spec(reduce):
    """reduce takes True, a key, a (task, key) tuple or a list of them; anything else is refused."""
    with pytest.raises(TaskSpecError, match=r'Task "agg": reduce takes True, a config key') as error:
        TaskSpec(_noop, name="agg", reduce=reduce)
    assert error.value.key == "reduce"


def test_group_reduce_with_expand_is_an_error():
    """reduce=<keys> with expand= is refused as reduce=True is."""
    with pytest.raises(TaskSpecError, match=r"cannot expand itself; drop expand= or reduce='seed'"):
        TaskSpec(_noop, name="agg", config={"a": [1, 2]}, reduce="seed", expand="product")


def test_group_reducer_without_predecessors_is_an_error():
    """A group reducer that requires nothing has nothing to reduce."""
    with pytest.raises(TaskSpecError, match='"agg" is a reduce task but requires no other task'):
        Flow([spec("agg", reduce="seed")])


def test_common_config_keys_are_not_protected():
    """The new Task attributes do not take config names such as seed, group, keys or fold."""
    assert not {"seed", "group", "groups", "keys", "fold", "lr", "members"} & PROTECTED_NAMES

    class Train(Task):
        def __init__(self, seed, group, keys):
            super().__init__()

        def run(self):
            pass

    TaskSpec(Train, config={"seed": 1, "group": 2, "keys": 3}).validate()


# -------------------------------------------------------------------------------------------- views

def test_views_show_each_group_and_keep_unique_names():
    """The console view labels agg-1 .. agg-4; the interactive hover and its task list show the
    reduced keys and each task's group values."""
    from fluidml.visualization import render_graph
    from fluidml.visualization.interactive import _describe, _task_index

    prep, train, agg = prep_train_flow()
    flow = Flow([agg])
    text = render_graph(flow.task_graph)
    assert all(f"| agg-{i} |" in text for i in range(1, 5))
    assert _describe(flow.task_graph, "agg-2")["kind"] == "task agg, reduce over train.seed; group: prep.p=1, " \
                                                          "train.lr=0.2"
    assert _describe(flow.task_spec_graph, "agg")["kind"] == "task spec, reduce over seed"
    assert "agg-4 <i>(task agg, reduce over train.seed; group: prep.p=2, train.lr=0.2)</i>" in \
        html.unescape(_task_index(flow.task_graph))


# ---------------------------------------------------------------------------- runs, every store/executor

def seeds_flow(pairs, offsets=(0,)):
    """prepare(offset) -> train(zipped lr/seed pairs) -> aggregate(reduce="seed") -> select (reduce=True)."""
    prepare = TaskSpec(task=g.prepare, config={"offset": list(offsets)}, expand="product")
    train = TaskSpec(task=g.train, config={"lr": [lr for lr, _ in pairs], "seed": [s for _, s in pairs]},
                     expand="zip")
    aggregate = TaskSpec(task=g.aggregate, reduce="seed")
    select = TaskSpec(task=g.select, reduce=True)
    train.requires(prepare)
    aggregate.requires(train)
    select.requires(aggregate)
    return Flow([prepare, train, aggregate, select])


PAIRS = [(1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1)]


def test_each_group_reducer_gets_its_groups_sweeps(make_store, executor_kwargs):
    """aggregate-1 .. aggregate-3 each get the scores of their lr's seeds, in order; select picks
    the best mean; the results carry the reducers' unique configs."""
    results = seeds_flow(PAIRS).run(results_store=make_store(), return_results="all", **executor_kwargs)
    assert [r.task_unique_name for r in results["aggregate"]] == ["aggregate-1", "aggregate-2", "aggregate-3"]
    assert [r.results["pairs"] for r in results["aggregate"]] == [[(10, 0), (11, 1)], [(20, 0), (21, 1)],
                                                                  [(30, 0), (31, 1)]]
    assert [r.results["mean"] for r in results["aggregate"]] == [10.5, 20.5, 30.5]
    assert results["aggregate"][1].unique_config == {"prepare": {"offset": 0}, "train": {"lr": 2, "seed": [0, 1]},
                                                     "aggregate": {}}
    assert results["select"][0].results == {"best": {"lr": 3, "mean": 30.5}}


def test_adding_a_seed_reruns_only_the_groups_it_touches(make_store, executor_kwargs, recorder):
    """A new (lr=2, seed=2) pair runs its train task, aggregate-2 and select; lr 1 and 3 stay cached."""
    store = make_store()
    seeds_flow(PAIRS).run(results_store=store, **executor_kwargs)
    grown = PAIRS[:4] + [(2, 2)] + PAIRS[4:]
    results = seeds_flow(grown).run(results_store=store, observers=[recorder], return_results="all",
                                    **executor_kwargs)
    assert recorder.executed == ["train-5", "aggregate-2", "select"]
    assert sorted(recorder.cached) == ["aggregate-1", "aggregate-3", "prepare"] + [
        f"train-{i}" for i in (1, 2, 3, 4, 6, 7)]
    assert results["aggregate"][1].results["pairs"] == [(20, 0), (21, 1), (22, 2)]


def test_force_and_successors_of_group_reducers(make_store, executor_kwargs, recorder):
    """force="aggregate" re-runs every group; a normal successor runs once per group with its mean,
    and loads its group reducer's objects by its own unique config."""
    prepare = TaskSpec(task=g.prepare, config={"offset": [0, 100]}, expand="product")
    train = TaskSpec(task=g.train, config={"lr": [1, 2], "seed": [0, 1]}, expand="product")
    aggregate = TaskSpec(task=g.aggregate, reduce="seed")
    report = TaskSpec(task=g.report)
    train.requires(prepare)
    aggregate.requires(train)
    report.requires(aggregate)
    flow = Flow([report])
    store = make_store()
    first = flow.run(results_store=store, return_results="all", **executor_kwargs)
    assert [r.results["line"] for r in first["report"]] == [(1, 10.5), (2, 20.5), (1, 110.5), (2, 120.5)]
    assert [r.results["seeds"] for r in first["report"]] == [[0, 1]] * 4
    flow.run(results_store=store, force="aggregate", observers=[recorder], **executor_kwargs)
    assert sorted(recorder.executed) == [f"aggregate-{i}" for i in range(1, 5)]
