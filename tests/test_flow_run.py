"""Flow.run(): forwarding, grids, reduce, caching and force, against every store and executor."""

import re

import pytest

import pipelines as p
from fluidml import Allocation, Flow, TaskSpec
from fluidml.exception import RunConfigError


def grid_flow(values=(1, 2), offsets=(10, 20, 30)):
    """source(value grid) -> add_offset(offset grid) -> collect (reduce)."""
    src = TaskSpec(task=p.source, config={"value": list(values)}, expand="product")
    add = TaskSpec(task=p.add_offset, config={"offset": list(offsets)}, expand="product")
    red = TaskSpec(task=p.collect, reduce=True)
    add.requires(src)
    red.requires(add)
    return Flow([src, add, red])


def results_of(results, name):
    return [r.results for r in results[name]]


def test_results_flow_to_successors(make_store, executor_kwargs):
    """A successor receives its predecessor's saved object as the run() argument of that name."""
    src = TaskSpec(task=p.source, config={"value": 21})
    dbl = TaskSpec(task=p.double)
    dbl.requires(src)
    results = Flow([src, dbl]).run(results_store=make_store(), return_results="all", **executor_kwargs)
    assert results_of(results, "source") == [{"x": 21}]
    assert results_of(results, "double") == [{"y": 42}]


def test_grid_successors_expand_with_their_predecessors(make_store, executor_kwargs):
    """source(2) -> add_offset(3) gives 6 successor tasks, each with its own inputs."""
    flow = grid_flow()
    assert flow.num_tasks == 2 + 6 + 1
    results = flow.run(results_store=make_store(), return_results="all", **executor_kwargs)
    ys = [(r.unique_config["source"]["value"], r.unique_config["add_offset"]["offset"], r.results["y"])
          for r in results["add_offset"]]
    assert ys == [(1, 10, 11), (1, 20, 21), (1, 30, 31), (2, 10, 12), (2, 20, 22), (2, 30, 32)]
    assert [r.task_unique_name for r in results["add_offset"]] == [f"add_offset-{i}" for i in range(1, 7)]


def test_reduce_receives_every_sweep_with_its_config(make_store, executor_kwargs):
    """The reducer gets one Sweep per upstream task, in task order, with that task's unique config."""
    results = grid_flow().run(results_store=make_store(), return_results="latest", **executor_kwargs)
    (collected,) = results_of(results, "collect")
    assert [value for value, _ in collected["collected"]] == [11, 21, 31, 12, 22, 32]
    assert collected["collected"][0][1] == {"source": {"value": 1}, "add_offset": {"offset": 10}}
    assert results["collect"][0].unique_config == {
        "source": {"value": [1, 2]}, "add_offset": {"offset": [10, 20, 30]}, "collect": {}
    }


def test_reduce_over_two_specs_gets_each_sweep_once(make_store, executor_kwargs):
    """A reducer requiring two grid specs receives each upstream result exactly once."""
    a = TaskSpec(task=p.source, name="a", config={"value": [1, 2]}, expand="product")
    b = TaskSpec(task=p.double, name="b")
    c = TaskSpec(task=p.source, name="c", config={"value": [5, 6, 7]}, expand="product")
    d = TaskSpec(task=p.double, name="d")
    red = TaskSpec(task=p.collect, reduce=True)
    b.requires(a)
    d.requires(c)
    red.requires(b, d)
    results = Flow([a, b, c, d, red]).run(results_store=make_store(), return_results="latest", **executor_kwargs)
    values = [v for v, _ in results["collect"][0].results["collected"]]
    assert values == [2, 10, 12, 14, 4]  # first appearance in (b, d) combination order


def test_diamond_stays_consistent(make_store, executor_kwargs):
    """A(x) -> B, A -> C, (B, C) -> D gives one D per x, fed by the B and C of the same x."""
    a = TaskSpec(task=p.source, name="A", config={"value": [1, 2]}, expand="product")
    b = TaskSpec(task=p.double, name="B")
    c = TaskSpec(task=p.add_offset, name="C", config={"offset": 100})

    def rename(y, task):
        task.save(y, "z")

    c2 = TaskSpec(task=rename, name="C2")
    d = TaskSpec(task=p.combine, name="D")
    b.requires(a)
    c.requires(a)
    c2.requires(c)
    d.requires(b, c2)
    flow = Flow([a, b, c, c2, d])
    assert [t for t in flow.task_graph.nodes if t.startswith("D")] == ["D-1", "D-2"]
    results = flow.run(results_store=make_store(), return_results="latest", **executor_kwargs)
    assert [r.results["total"] for r in results["D"]] == [2 + 101, 4 + 102]


def test_second_run_is_served_from_the_store(make_store, executor_kwargs, recorder):
    """Re-running a flow against the same store executes nothing and returns the same results."""
    store = make_store()
    flow = grid_flow()
    first = flow.run(results_store=store, return_results="all", **executor_kwargs)
    second = flow.run(results_store=store, return_results="all", observers=[recorder], **executor_kwargs)
    assert recorder.executed == []
    assert len(recorder.cached) == flow.num_tasks
    assert {k: results_of(first, k) for k in first} == {k: results_of(second, k) for k in second}


def test_a_grown_grid_runs_only_what_is_new(make_store, executor_kwargs, recorder):
    """Adding a grid value runs the new task, its successors and the reducer; the rest is cached."""
    store = make_store()
    grid_flow(values=(1, 2)).run(results_store=store, **executor_kwargs)
    grid_flow(values=(1, 2, 3)).run(results_store=store, observers=[recorder], **executor_kwargs)
    executed = recorder.executed  # workers may finish the three successors in any order
    assert executed[0] == "source-3" and executed[-1] == "collect"
    assert sorted(executed[1:-1]) == ["add_offset-7", "add_offset-8", "add_offset-9"]


@pytest.mark.parametrize(
    "force, expected",
    [
        ("all", ["source-1", "source-2"] + [f"add_offset-{i}" for i in range(1, 7)] + ["collect"]),
        ("add_offset", [f"add_offset-{i}" for i in range(1, 7)]),
        ("add_offset+", [f"add_offset-{i}" for i in range(1, 7)] + ["collect"]),
        (["source", "collect"], ["source-1", "source-2", "collect"]),
        (["all"], ["source-1", "source-2"] + [f"add_offset-{i}" for i in range(1, 7)] + ["collect"]),
    ],
)
def test_force_reruns_the_named_tasks(make_store, executor_kwargs, recorder, force, expected):
    """force="all", a name, "name+" (with successors) and lists re-run exactly those tasks."""
    store = make_store()
    flow = grid_flow()
    flow.run(results_store=store, **executor_kwargs)
    flow.run(results_store=store, force=force, observers=[recorder], **executor_kwargs)
    assert sorted(recorder.executed) == sorted(expected)


def test_force_applies_to_one_run_only(make_store, executor_kwargs, recorder):
    """A forced run does not leave the flow forcing later runs."""
    store = make_store()
    flow = grid_flow()
    flow.run(results_store=store, force="all", **executor_kwargs)
    flow.run(results_store=store, observers=[recorder], **executor_kwargs)
    assert recorder.executed == []


@pytest.mark.parametrize(
    "force, message",
    [
        ("nope", r"unknown tasks: \['nope'\].*Known tasks"),
        (["source", "nope+"], r"unknown tasks: \['nope\+'\]"),
        (["all", "source"], "cannot be combined"),
        (3, "force takes"),
    ],
)
def test_bad_force_is_rejected_before_anything_runs(make_store, recorder, force, message):
    """force naming unknown tasks (or of a wrong type) raises RunConfigError and runs nothing."""
    with pytest.raises(RunConfigError, match=message):
        grid_flow().run(results_store=make_store(), force=force, observers=[recorder])
    assert recorder.ended == []


def test_return_results_modes(make_store, executor_kwargs):
    """"all" returns every task, "latest" only tasks without successors."""
    flow = grid_flow()
    store = make_store()
    every = flow.run(results_store=store, return_results="all", **executor_kwargs)
    latest = flow.run(results_store=store, return_results="latest", **executor_kwargs)
    assert {k: len(v) for k, v in every.items()} == {"source": 2, "add_offset": 6, "collect": 1}
    assert {k: len(v) for k, v in latest.items()} == {"collect": 1}


def test_default_return_for_in_memory_runs_is_latest():
    """Without a store (or with an InMemoryStore) run() returns the leaves' results."""
    assert list(grid_flow().run()) == ["collect"]


def test_invalid_return_results_is_rejected_before_running(recorder):
    """An unknown return_results value is a RunConfigError raised before any task runs."""
    with pytest.raises(RunConfigError, match="return_results='some'"):
        grid_flow().run(return_results="some", observers=[recorder])
    assert recorder.ended == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_workers": -1}, "num_workers"),
        ({"start_method": "teleport"}, "start_method"),
        ({"max_panes_per_window": 0}, "max_panes_per_window"),
        ({"results_store": {}}, "results_store"),
        ({"run_name": "a/b"}, "run_name"),
    ],
)
def test_invalid_run_arguments_are_rejected(kwargs, message):
    """Each invalid Flow.run() argument gets a RunConfigError naming it."""
    with pytest.raises(RunConfigError, match=message):
        grid_flow().run(**kwargs)


def test_run_name_and_project_name_reach_tasks_and_info(make_store, executor_kwargs):
    """Tasks see the run and project names, and the stored info records them."""
    store = make_store()
    spec = TaskSpec(task=p.echo_attributes, config={"value": 3})
    results = Flow([spec]).run(results_store=store, run_name="my-run", project_name="proj",
                               return_results="all", **executor_kwargs)
    seen = results["echo_attributes"][0].results["attributes"]
    assert seen["run_name"] == "my-run" and seen["project_name"] == "proj"
    info = store.load("fluidml_info", "echo_attributes", {"echo_attributes": {"value": 3}})
    assert info["run_name"] == "my-run" and info["project_name"] == "proj" and info["state"] == "finished"


def test_random_run_names_are_adjective_noun(executor_kwargs):
    """Without run_name, a random "adjective-noun" name is used."""
    results = Flow([TaskSpec(task=p.echo_attributes)]).run(**executor_kwargs)
    assert re.fullmatch(r"[a-z]+-[a-z]+", results["echo_attributes"][0].results["attributes"]["run_name"])


def test_a_task_sees_its_own_bookkeeping(make_store, executor_kwargs):
    """Inside run(), a task knows its names, configs, hash, id, resource, state and neighbours."""
    src = TaskSpec(task=p.source, config={"value": [1, 2]}, expand="product")
    echo = TaskSpec(task=p.echo_attributes, config={"value": 7})
    echo.requires(src)
    cluster = executor_kwargs.get("executor")  # Ray and Slurm tasks get what they request, not resources=
    on_cluster = cluster in ("ray", "slurm")
    resources = {"requests": {"echo_attributes": {"cpus": 0.5}}} if on_cluster else {"resources": "gpu:0"}
    results = Flow([src, echo]).run(results_store=make_store(), run_name="r", return_results="all",
                                    **resources, **executor_kwargs)
    seen = results["echo_attributes"][1].results["attributes"]
    assert seen["name"] == "echo_attributes" and seen["unique_name"] == "echo_attributes-2"
    assert seen["config"] == {"value": 7}
    assert seen["unique_config"] == {"source": {"value": 2}, "echo_attributes": {"value": 7}}
    assert re.fullmatch(r"[0-9a-z]{8}", seen["hash"])
    assert seen["id"] in (f"r-{seen['hash']}", "r-001", "r-000")
    if cluster == "ray":
        assert seen["resource"] == Allocation(cpus=0.5, node_id=seen["resource"].node_id)
    elif cluster == "slurm":  # Slurm gives whole CPUs, and a job's memory is its partition's default
        resource = seen["resource"]
        assert resource == Allocation(cpus=1, memory=resource.memory, node_id="fmlnode") and resource.memory > 0
    else:
        assert seen["resource"] == "gpu:0"
    assert seen["state"] == "running" and seen["started"] and seen["force"] is False
    assert seen["predecessors"] == ["source-2"] and seen["successors"] == []
    assert seen["has_store"]


def test_a_list_of_resources_gives_the_first_one_to_in_process_runs(make_store):
    """Running in this process (one worker), every task gets resources[0]."""
    spec = TaskSpec(task=p.echo_attributes, config={"value": [1, 2]}, expand="product")
    results = Flow([spec]).run(results_store=make_store(), num_workers=1, resources=["cuda:0", "cuda:1"],
                               return_results="all")
    assert [r.results["attributes"]["resource"] for r in results["echo_attributes"]] == ["cuda:0", "cuda:0"]


def test_class_tasks_get_config_in_init_and_inputs_in_run(make_store, executor_kwargs):
    """A Task subclass is initialised with its config right before run() gets its inputs."""
    src = TaskSpec(task=p.source, config={"value": 5})
    scale = TaskSpec(task=p.Scale, config={"factor": [2, 3]}, expand="product")
    scale.requires(src)
    results = Flow([src, scale]).run(results_store=make_store(), return_results="latest", **executor_kwargs)
    assert [r.results["y"] for r in results["Scale"]] == [10, 15]


def test_additional_kwargs_arrive_unchanged_and_do_not_identify_the_run(make_store, executor_kwargs, recorder):
    """additional_kwargs reach the task as the same objects, and changing them keeps the cache."""
    marker = object()
    store = make_store()
    src = TaskSpec(task=p.source, config={"value": 1})
    scale = TaskSpec(task=p.Scale, config={"factor": 2}, additional_kwargs={"extra": (1, 2)})
    scale.requires(src)
    results = Flow([src, scale]).run(results_store=store, return_results="all", **executor_kwargs)
    assert results["Scale"][0].results["extra"] == (1, 2)
    assert results["Scale"][0].unique_config == {"source": {"value": 1}, "Scale": {"factor": 2}}

    seen = []

    def keep(value, obj, task):
        seen.append(obj)

    Flow([TaskSpec(task=keep, config={"value": 1}, additional_kwargs={"obj": marker})]).run(num_workers=1)
    assert seen == [marker]

    scale2 = TaskSpec(task=p.Scale, config={"factor": 2}, additional_kwargs={"extra": (3, 4)})
    src2 = TaskSpec(task=p.source, config={"value": 1})
    scale2.requires(src2)
    Flow([src2, scale2]).run(results_store=store, observers=[recorder], **executor_kwargs)
    assert recorder.executed == []


def test_ignored_and_none_config_values_reach_the_task_but_not_its_identity(make_store, executor_kwargs, recorder):
    """"_debug" arrives as debug, None values arrive as None; neither is part of the unique config."""
    seen = []

    def task_fn(debug, maybe, x, task):
        seen.append((debug, maybe, x))
        task.save(x, "x")

    store = make_store()
    spec = TaskSpec(task=task_fn, config={"_debug": True, "maybe": None, "x": 1}, config_ignore_prefix="_")
    results = Flow([spec]).run(results_store=store, return_results="all", num_workers=1)
    assert seen == [(True, None, 1)]
    assert results["task_fn"][0].unique_config == {"task_fn": {"x": 1}}
    changed = TaskSpec(task=task_fn, config={"_debug": False, "maybe": None, "x": 1}, config_ignore_prefix="_")
    Flow([changed]).run(results_store=store, observers=[recorder], num_workers=1)
    assert recorder.executed == [] and len(seen) == 1


def test_function_tasks_with_and_without_a_task_parameter(make_store, executor_kwargs):
    """A function task gets `task` only if it asks for it (by name or **kwargs)."""
    def with_kwargs(value, **kwargs):
        kwargs["task"].save(value, "v")

    specs = [TaskSpec(task=p.no_task_param, config={"value": 1}),
             TaskSpec(task=with_kwargs, config={"value": 2})]
    results = Flow(specs).run(results_store=make_store(), return_results="all", **executor_kwargs)
    assert results["no_task_param"][0].results is None
    assert results["with_kwargs"][0].results == {"v": 2}


def test_lambdas_and_local_functions_are_tasks(make_store, executor_kwargs):
    """Functions defined inside a function, and lambdas, work as tasks."""
    def local(task):
        task.save("local", "who")

    lam = TaskSpec(task=lambda task: task.save("lambda", "who"), name="lam")
    results = Flow([TaskSpec(task=local), lam]).run(results_store=make_store(), return_results="all",
                                                    **executor_kwargs)
    assert results["local"][0].results == {"who": "local"}
    assert results["lam"][0].results == {"who": "lambda"}


def test_same_flow_runs_twice_on_the_same_task_objects():
    """Running one Flow twice (new in-memory stores) runs every task again, on the same Task objects
    (as the original: attributes a task set on itself are still there)."""
    flow = Flow([TaskSpec(task=p.Counter)])
    assert flow.run(num_workers=1)["Counter"][0].results == {"calls": 1}
    assert flow.run(num_workers=1)["Counter"][0].results == {"calls": 2}


def test_cross_task_load_with_a_downstream_config(make_store, executor_kwargs):
    """A reducer loads an upstream task's object with a Sweep's (larger) unique config."""
    src = TaskSpec(task=p.source, config={"value": [3, 1, 2]}, expand="product")
    dbl = TaskSpec(task=p.double)
    best = TaskSpec(task=p.pick_best, reduce=True)
    dbl.requires(src)
    best.requires(dbl)
    results = Flow([src, dbl, best]).run(results_store=make_store(), return_results="latest", **executor_kwargs)
    assert results["pick_best"][0].results == {"best_value": 6, "best_source_x": 3}


def test_a_deep_chain_runs(executor_kwargs):
    """A chain of 1500 tasks runs (the original crashed past ~995 with RecursionError)."""
    specs = [TaskSpec(task=p.source, name="t0", config={"value": 0})]
    for i in range(1, 1500):
        spec = TaskSpec(task=p.double if i == 1 else _pass_y, name=f"t{i}")
        spec.requires(specs[-1])
        specs.append(spec)
    results = Flow(specs).run(**executor_kwargs)
    assert list(results) == ["t1499"] and results["t1499"][0].results == {"y": 0}
    assert len(results["t1499"][0].unique_config) == 1500


def _pass_y(y, task):
    task.save(y, "y")


def mutate_config(layers, opts, task):
    layers.append(99)
    opts["lr"] = -1
    task.save(list(layers), "seen")


def test_a_task_changing_its_config_values_does_not_change_its_identity(make_store, executor_kwargs, recorder):
    """Lists and dicts a task receives from its config are its own copies: mutating them leaves
    the unique config, and so the cache, intact."""
    store = make_store()
    spec = TaskSpec(task=mutate_config, config={"layers": [[64, 32]], "opts": {"lr": 0.1}}, expand="product")
    flow = Flow([spec])
    first = flow.run(results_store=store, return_results="all", **executor_kwargs)
    assert first["mutate_config"][0].results["seen"] == [64, 32, 99]
    assert first["mutate_config"][0].unique_config == {"mutate_config": {"layers": [64, 32], "opts": {"lr": 0.1}}}
    flow.run(results_store=store, observers=[recorder], **executor_kwargs)
    assert recorder.executed == []
