"""TaskSpec construction and validation (original-behaviour §1.1-§1.5, §1.8, and DESIGN §3):
what a task may be, names, configs and additional kwargs, ``expects``, ``requires()``, the config
checks that ``Flow(...)`` runs, ``TaskSpec.expand()`` and the picklability of fluidml's errors."""

import functools
import pickle

import pytest

import fluidml.exception
from fluidml import Flow, Task, TaskSpec
from fluidml.exception import FluidmlError, TaskNameError, TaskSpecError


def noop(task=None, **kwargs):
    return None


class Plain(Task):
    def run(self):
        pass


class WithInit(Task):
    def __init__(self, lr, epochs=1):
        super().__init__()
        self.lr = lr
        self.epochs = epochs

    def run(self):
        pass


# ------------------------------------------------------------------------------ the task itself


class NotATask:
    def run(self):
        pass


class NoRun(Task):
    pass


@pytest.mark.parametrize(
    "task, match",
    [
        (NotATask, "does not subclass fluidml.Task"),
        (NoRun, r"does not implement run\(\)"),
        (functools.partial(noop, x=1), "partial"),
        (len, "builtin_function_or_method"),
    ],
    ids=["non-task-class", "abstract-task", "partial", "builtin"],
)
def test_task_must_be_a_task_subclass_or_a_function(task, match):
    """A non-Task class, a Task without run(), a partial and a builtin raise TaskSpecError."""
    with pytest.raises(TaskSpecError, match=match) as info:
        TaskSpec(task)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    assert isinstance(info.value, FluidmlError) and info.value.key in ("task", "run")


def test_lambdas_and_local_functions_are_accepted():
    """Lambdas and locally defined functions make specs, and Flows build from them."""

    def local(task):
        pass

    lam = TaskSpec(lambda task: None)
    spec = TaskSpec(local)
    assert lam.name == "<lambda>" and spec.name == "local" and spec.task is local
    assert Flow([spec]).num_tasks == 1
    assert Flow([TaskSpec(lambda task: None, name="lam")]).num_tasks == 1


# ------------------------------------------------------------------- name, reduce, kwargs, config


def test_reduce_together_with_expand_is_an_error():
    """A reduce task cannot expand: reduce=True with expand raises TaskSpecError."""
    with pytest.raises(TaskSpecError, match="reduce task .* cannot expand") as info:
        TaskSpec(noop, config={"a": [1, 2]}, reduce=True, expand="product")
    assert info.value.task_name == "noop" and info.value.key == "expand"


def test_name_defaults_to_the_function_or_class_name():
    """Without name=, a spec is named after the function's or class's __name__."""
    assert TaskSpec(noop).name == "noop" and TaskSpec(noop).unique_name == "noop"
    assert TaskSpec(WithInit, config={"lr": 1}).name == "WithInit"
    assert TaskSpec(noop, name="custom").name == "custom"


@pytest.mark.parametrize("name", ["", "a/b", ".hidden", 3], ids=["empty", "slash", "dot", "int"])
def test_invalid_names_raise_task_name_error(name):
    """Empty, path-like, dot-prefixed and non-string names raise TaskNameError."""
    with pytest.raises(TaskNameError, match="task name|Task name"):
        TaskSpec(noop, name=name)


def test_additional_kwargs_must_be_a_dict():
    """additional_kwargs that is not a dict raises TaskSpecError."""
    with pytest.raises(TaskSpecError, match="additional_kwargs must be a dict, got list") as info:
        TaskSpec(noop, additional_kwargs=[("a", 1)])
    assert info.value.key == "additional_kwargs"


def test_additional_kwargs_pass_through_unchanged():
    """additional_kwargs keep object identity and tuples, on the spec and in the function call."""
    obj, tup = object(), (1, (2, 3))
    received = {}

    def fn(a, obj, tup, task):
        received.update(a=a, obj=obj, tup=tup)

    spec = TaskSpec(fn, config={"a": 1}, additional_kwargs={"obj": obj, "tup": tup})
    assert spec.additional_kwargs["obj"] is obj and spec.additional_kwargs["tup"] is tup
    Flow([spec]).run()
    assert received == {"a": 1, "obj": obj, "tup": (1, (2, 3))}
    assert received["obj"] is obj and type(received["tup"]) is tuple


def test_config_is_copied_at_construction():
    """The config is JSON-copied: changing the user's dict afterwards does not change the spec."""
    config = {"a": [1], "b": {"c": 2}}
    spec = TaskSpec(noop, config=config)
    config["a"].append(2)
    config["b"]["c"] = 3
    config["new"] = 4
    assert spec.config == {"a": [1], "b": {"c": 2}}
    assert TaskSpec(noop).config == {} and TaskSpec(noop).additional_kwargs == {}


# -------------------------------------------------------------------------------- expects (§1.5)


def test_expects_of_a_class_task_are_its_run_parameters():
    """A class task expects run()'s named parameters in order, without self, *args and **kwargs."""

    class Consumer(Task):
        def run(self, features, labels=None, *args, extra, **kwargs):
            pass

    assert list(TaskSpec(Consumer).expects) == ["features", "labels", "extra"]


def test_expects_of_a_function_task_leave_out_config_kwargs_and_task():
    """A function task expects its parameters minus config keys, additional kwargs and "task"."""

    def train(features, lr, model, task, labels=None, *args, **kwargs):
        pass

    spec = TaskSpec(train, config={"lr": 0.1}, additional_kwargs={"model": object()})
    assert list(spec.expects) == ["features", "labels"]
    assert spec.expects["labels"].default is None


def test_expects_hide_a_parameter_given_by_an_ignored_config_key():
    """A config key "_debug" with ignore prefix "_" hides the "debug" parameter."""

    def step(features, debug, task):
        pass

    spec = TaskSpec(step, config={"_debug": True}, config_ignore_prefix="_")
    assert list(spec.expects) == ["features"]
    assert list(spec.expand()[0].expects) == ["features"]
    flow_level = TaskSpec(step, config={"_debug": True})
    assert list(flow_level.expects) == ["features", "debug"]
    Flow([flow_level], config_ignore_prefix="_")
    assert list(flow_level.expects) == ["features"]


# ----------------------------------------------------------------------------- requires (§1.4)


@pytest.mark.parametrize(
    "call",
    [lambda c, a, b: (c.requires(a), c.requires(b)), lambda c, a, b: c.requires(a, b),
     lambda c, a, b: c.requires([a, b])],
    ids=["one-by-one", "several", "list"],
)
def test_requires_registers_predecessors_in_order(call):
    """requires(a), requires(a, b) and requires([a, b]) register in order and fill successors."""
    a, b, c = TaskSpec(noop, name="a"), TaskSpec(noop, name="b"), TaskSpec(noop, name="c")
    call(c, a, b)
    assert c.predecessors == [a, b]
    assert a.successors == [c] and b.successors == [c] and c.successors == []


def test_requires_rejects_a_mix_of_a_list_and_specs():
    """Passing a list together with other specs raises TypeError."""
    a, b, c = TaskSpec(noop, name="a"), TaskSpec(noop, name="b"), TaskSpec(noop, name="c")
    with pytest.raises(TypeError, match="not a mix"):
        c.requires([a], b)
    assert c.predecessors == []


@pytest.mark.parametrize("other", ["a", noop, None, 3], ids=["str", "function", "none", "int"])
def test_requires_rejects_what_is_not_a_spec(other):
    """Requiring something that is not a TaskSpec or Task raises TypeError."""
    with pytest.raises(TypeError, match="pass TaskSpec"):
        TaskSpec(noop).requires(other)


def test_requires_the_same_spec_twice_registers_it_once():
    """Requiring the same predecessor twice keeps one link in each direction."""
    a, c = TaskSpec(noop, name="a"), TaskSpec(noop, name="c")
    c.requires(a)
    c.requires(a, a)
    assert c.predecessors == [a] and a.successors == [c]


def test_requires_itself_is_an_error():
    """A spec that requires itself raises ValueError."""
    a = TaskSpec(noop, name="a")
    with pytest.raises(ValueError, match="cannot require itself"):
        a.requires(a)
    assert a.predecessors == [] and a.successors == []


# --------------------------------------------------------------------------- validate() and Flow


@pytest.mark.parametrize("key", ["name", "save", "run_name", "config", "results_store"])
def test_protected_config_keys_of_class_tasks_are_errors(key):
    """A class task config key that shadows a Task attribute raises TaskSpecError listing it."""

    class Shadow(Task):
        def __init__(self, **kwargs):
            super().__init__()

        def run(self):
            pass

    with pytest.raises(TaskSpecError, match=rf"config keys \['{key}'\] clash") as info:
        TaskSpec(Shadow, config={key: 1}).validate()
    assert info.value.key == key and info.value.task_name == "Shadow"


def test_function_config_key_it_does_not_accept_is_an_error():
    """A config key the function does not take raises TaskSpecError naming it and the parameters."""

    def fn(a, task):
        pass

    message = r'config key "b" is not a parameter of .*fn\(\) \(parameters: a, task\)'
    with pytest.raises(TaskSpecError, match=message):
        TaskSpec(fn, config={"a": 1, "b": 2}).validate()


def test_class_init_config_key_it_does_not_accept_is_an_error():
    """A config key WithInit.__init__ does not take raises TaskSpecError listing its parameters."""
    message = r'"dropout" is not a parameter of WithInit.__init__\(\) \(parameters: lr, epochs\)'
    with pytest.raises(TaskSpecError, match=message):
        TaskSpec(WithInit, config={"lr": 1, "dropout": 0.5}).validate()


def test_unknown_config_keys_are_fine_with_var_keywords():
    """Callables that take **kwargs accept any config key."""

    class Open(Task):
        def __init__(self, a, **rest):
            super().__init__()

        def run(self):
            pass

    def fn(a, **kwargs):
        pass

    TaskSpec(Open, config={"a": 1, "b": 2}).validate()
    TaskSpec(fn, config={"a": 1, "b": 2}).validate()


def test_class_init_parameter_missing_from_config_is_an_error():
    """A required __init__ parameter that neither config nor additional_kwargs gives is an error."""
    with pytest.raises(TaskSpecError, match=r"WithInit.__init__\(\) needs \['lr'\]") as info:
        TaskSpec(WithInit, config={"epochs": 3}).validate()
    assert info.value.key == "lr"
    TaskSpec(WithInit, additional_kwargs={"lr": 0.1}).validate()
    TaskSpec(WithInit, config={"_lr": 0.1}, config_ignore_prefix="_").validate()


def test_class_without_own_init_rejects_a_config():
    """A class with no __init__ of its own and a non-empty config raises TaskSpecError."""
    with pytest.raises(TaskSpecError, match=r"Plain has no __init__ of its own.*\['x'\]"):
        TaskSpec(Plain, config={"x": 1}).validate()
    TaskSpec(Plain).validate()


def test_function_config_key_task_is_reserved():
    """A function task config key "task" raises TaskSpecError."""
    with pytest.raises(TaskSpecError, match='config key "task" is reserved') as info:
        TaskSpec(noop, config={"task": 1}).validate()
    assert info.value.key == "task"


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: TaskSpec(WithInit, config={"lr": 1, "name": "x"}), r"\['name'\] clash"),
        (lambda: TaskSpec(WithInit, config={"lr": 1, "dropout": 0.5}), '"dropout" is not a parameter'),
        (lambda: TaskSpec(WithInit, config={"epochs": 3}), r"needs \['lr'\]"),
        (lambda: TaskSpec(Plain, config={"x": 1}), "no __init__ of its own"),
        (lambda: TaskSpec(noop, config={"task": 1}), '"task" is reserved'),
    ],
    ids=["protected", "unknown-key", "missing-param", "no-init", "task-key"],
)
def test_config_errors_surface_at_flow_construction(make, match):
    """Flow([...]) itself raises the config errors, before anything runs."""
    with pytest.raises(TaskSpecError, match=match):
        Flow([make()])


def test_config_errors_of_an_unlisted_predecessor_surface_at_flow_construction():
    """A bad predecessor that is only reachable through requires() is checked by Flow too."""
    bad, good = TaskSpec(Plain, config={"x": 1}, name="bad"), TaskSpec(noop, name="good")
    good.requires(bad)
    with pytest.raises(TaskSpecError, match='Task "bad"'):
        Flow([good])


# ------------------------------------------------------------------------------ TaskSpec.expand()


class Recorder(Task):
    def __init__(self, lr, seed, off, extra):
        super().__init__()
        self.initialized_with = lr

    def run(self):
        pass


def test_expand_returns_one_half_initialized_task_per_config():
    """expand() gives one Task per config: own relevant unique config, prepared config, no __init__."""
    spec = TaskSpec(
        Recorder, name="Rec", expand="product", config_ignore_prefix="_",
        config={"lr": [0.1, 0.2], "_seed": 3, "off": None}, additional_kwargs={"extra": "E"},
    )
    tasks = spec.expand()
    assert [type(t) for t in tasks] == [Recorder, Recorder]
    assert [t.unique_config for t in tasks] == [{"lr": 0.1}, {"lr": 0.2}]
    assert tasks[1].config == {"lr": 0.2, "seed": 3, "off": None, "extra": "E"}
    assert all(t.name == "Rec" and not hasattr(t, "initialized_with") for t in tasks)
    assert tasks[0] is not spec.expand()[0]


def test_expand_of_a_function_task_wraps_the_function():
    """expand() of a function spec gives Tasks that carry the function and their own configs."""
    spec = TaskSpec(noop, config={"a": [1, 2, 3], "b": "x"}, expand="zip")
    tasks = spec.expand()
    assert [t.config for t in tasks] == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}, {"a": 3, "b": "x"}]
    assert [t.unique_config for t in tasks] == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}, {"a": 3, "b": "x"}]
    assert all(isinstance(t, Task) and t.task is noop for t in tasks)


# ------------------------------------------------------------------------- exceptions and pickle


@pytest.mark.parametrize("name", [name for name in fluidml.exception.__all__ if name != "RunTerminated"])
def test_exceptions_survive_pickling_with_their_fields(name):
    """Every fluidml exception keeps its type, message, task_name, key and config_hash in pickle."""
    cls = getattr(fluidml.exception, name)
    error = cls("something failed", task_name="Train", key="lr", config_hash="dnihykfb")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls and str(copy) == "something failed"
    assert (copy.task_name, copy.key, copy.config_hash) == ("Train", "lr", "dnihykfb")
    assert isinstance(copy, FluidmlError)


def test_run_terminated_survives_pickling_with_its_signal():
    """RunTerminated (a SystemExit, not a FluidmlError) keeps its signal and exit code."""
    copy = pickle.loads(pickle.dumps(fluidml.exception.RunTerminated(15)))
    assert type(copy) is fluidml.exception.RunTerminated and (copy.signum, copy.code) == (15, 143)
