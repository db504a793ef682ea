"""Code versions: hashed from the code's structure (comments, docstrings, layout do not count; names,
constants and operators do), covering same-module helpers, with a defined fallback without source."""

import importlib.util
import itertools
import json
import os
import subprocess
import sys
import textwrap

import pytest

from fluidml import Flow, TaskSpec
from fluidml.code_version import CodeHasher

_NAMES = itertools.count()

MODULE = '''
"""Tasks of a pipeline (the test edits this text)."""
from fluidml import Task

LR = 0.5
UNUSED = 7


def scale(x):
    """Scales a value."""
    return clip(x) * LR  # the factor


def clip(x):
    return min(x, 100)


def unrelated():
    return 1


def split(n, task):
    task.save(list(range(n)), "data")


class Train(Task):
    """Trains."""

    alpha = 2

    def __init__(self, lr):
        super().__init__()
        self.lr = lr

    def run(self, data):
        model = [scale(v) * self.lr for v in data]
        self.save(model, "model")

    @property
    def label(self):
        return "train"
'''


def load(tmp_path, text):
    """Writes ``text`` as a module file with a fresh name and imports it."""
    name = f"cv_mod_{os.getpid()}_{next(_NAMES)}"
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(text))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def versions(module):
    hasher = CodeHasher()
    return hasher.version(module.Train), hasher.version(module.split)


@pytest.fixture
def base(tmp_path):
    return versions(load(tmp_path, MODULE))


def test_a_class_task_covers_its_methods_and_same_module_helpers(base):
    """A class task's version names its class body, each method, and the helpers and constants it uses,
    transitively; fluidml's Task and code it never refers to are not in it."""
    train, split = base
    assert sorted(train) == ["LR", "Train", "Train.__init__", "Train.label", "Train.run", "clip", "scale"]
    assert sorted(split) == ["split"]
    assert all(len(value) == 12 and int(value, 16) >= 0 for value in train.values())


@pytest.mark.parametrize("edit", [
    ("# the factor", "# a comment that says something else"),
    ('"""Scales a value."""', '"""Scales a value by LR, after clipping."""'),
    ('    """Trains."""\n', ""),
    ("def clip(x):\n", "\n\ndef clip(x):\n"),
    ("model = [scale(v) * self.lr for v in data]",
     "model = [\n            scale(v) * self.lr\n            for v in data\n        ]"),
    ("    def run(self, data):\n", "    def run(self, data):  # train it\n        # fit one model per value\n"),
    ('self.save(model, "model")', "self.save(model, 'model')"),
])
def test_comments_docstrings_and_layout_do_not_change_it(tmp_path, base, edit):
    """Editing only comments, docstrings, blank lines or formatting leaves every part's hash as it was."""
    assert edit[0] in MODULE
    assert versions(load(tmp_path, MODULE.replace(edit[0], edit[1]))) == base


@pytest.mark.parametrize("edit, changed", [
    (("model = [scale(v) * self.lr", "model = [scale(v) + self.lr"), ["Train.run"]),
    (("model = [scale(v) * self.lr for v in data]\n        self.save(model,",
      "weights = [scale(v) * self.lr for v in data]\n        self.save(weights,"), ["Train.run"]),
    (("return min(x, 100)", "return min(x, 99)"), ["clip"]),
    (("LR = 0.5", "LR = 0.25"), ["LR"]),
    (("alpha = 2", "alpha = 3"), ["Train"]),
    (('return "train"', 'return "fit"'), ["Train.label"]),
    (("self.lr = lr", "self.lr = float(lr)"), ["Train.__init__"]),
])
def test_code_edits_change_exactly_the_edited_part(tmp_path, base, edit, changed):
    """Changing an operator, renaming a variable, or changing a constant changes the hash of the part
    that holds it (a helper two calls away included), and only that part."""
    train, split = versions(load(tmp_path, MODULE.replace(*edit)))
    assert sorted(name for name in train if train[name] != base[0].get(name)) == changed
    assert split == base[1]


def test_a_new_helper_call_adds_the_helper(tmp_path, base):
    """Calling another function of the module brings it (and what it uses) into the version."""
    train, _ = versions(load(tmp_path, MODULE.replace("self.save(model,", "unrelated()\n        self.save(model,")))
    assert sorted(set(train) - set(base[0])) == ["unrelated"]
    assert train["Train.run"] != base[0]["Train.run"]


def test_code_in_other_modules_is_not_followed(tmp_path):
    """A helper imported from another module is not part of the version (pin version= for it); a base
    class from another module is, named with its module."""
    helpers = load(tmp_path, "def fit(x):\n    return x + 1\n\n\n"
                             "class Base:\n    def shared(self):\n        return 1\n")
    text = (f"from fluidml import Task\nfrom {helpers.__name__} import Base, fit\n\n\n"
            "class Train(Base, Task):\n    def run(self):\n        self.save(fit(1), 'y')\n")
    train = CodeHasher().version(load(tmp_path, text).Train)
    assert sorted(train) == ["Train", "Train.run", f"{helpers.__name__}.Base", f"{helpers.__name__}.Base.shared"]


def test_a_lambda_and_a_function_without_source_use_their_compiled_code(tmp_path):
    """Lambdas and functions made by exec are hashed from bytecode, constants and names: a docstring does
    not count, a constant does, and same-module helpers are followed through their global names."""
    def made(doc, constant):
        namespace = {}
        exec(f'def job(task):\n    "{doc}"\n    return helper() + 1\n\n'
             f"def helper():\n    return {constant}\n", namespace)
        return CodeHasher().version(namespace["job"])

    assert made("one", 1) == made("two", 1)
    assert sorted(made("one", 1)) == ["helper", "job"]
    assert made("one", 1)["job"] == made("one", 2)["job"] and made("one", 1)["helper"] != made("one", 2)["helper"]
    assert CodeHasher().version(lambda x: x + 1) != CodeHasher().version(lambda x: x + 2)
    [name] = CodeHasher().version(lambda x: x + 1)
    assert name == "test_a_lambda_and_a_function_without_source_use_their_compiled_code.<locals>.<lambda>"


def test_a_file_edited_after_import_is_not_read_for_the_loaded_code(tmp_path):
    """When the file no longer matches the loaded function (its lines moved), the loaded code is hashed
    from its bytecode, so the version describes the code that runs."""
    module = load(tmp_path, MODULE)
    path = tmp_path / f"{module.__name__}.py"
    path.write_text("# moved\n\n" + path.read_text().replace("* self.lr for", "/ self.lr for"))
    loaded = CodeHasher().version(module.Train)
    namespace = {"__name__": "elsewhere"}
    exec(compile(textwrap.dedent(MODULE), "<no source>", "exec"), namespace)
    assert loaded["Train.run"] == CodeHasher().version(namespace["Train"])["Train.run"]


def test_the_version_is_the_same_in_another_process(tmp_path, base):
    """A fresh interpreter with another hash seed computes the same version for the same file."""
    module = load(tmp_path, MODULE)
    code = (f"import sys, json; sys.path.insert(0, {str(tmp_path)!r}); import {module.__name__} as m; "
            "from fluidml.code_version import CodeHasher; print(json.dumps(CodeHasher().version(m.Train)))")
    env = {**os.environ, "PYTHONHASHSEED": "123", "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True)
    assert json.loads(out.stdout) == base[0]


def test_flow_hashes_nothing_until_asked_and_each_task_once(tmp_path, monkeypatch):
    """Flow() and cache="config" hash no code; the first plan with cache="code" hashes each class or
    function once, however many tasks it has, and later plans reuse it."""
    module = load(tmp_path, MODULE)
    calls = []
    original = CodeHasher._object_parts
    monkeypatch.setattr(CodeHasher, "_object_parts", lambda self, obj: calls.append(obj) or original(self, obj))
    split = TaskSpec(task=module.split, config={"n": 2})
    train = TaskSpec(task=module.Train, config={"lr": list(range(40))}, expand="product")
    train.requires(split)
    flow = Flow([split, train])
    flow.plan(cache="config")
    assert calls == [] and flow._code_hasher is None
    flow.plan(cache="code")
    flow.plan(cache="code")
    assert sorted(getattr(obj, "__qualname__") for obj in calls) == ["Train", "clip", "scale", "split"]


def test_lambdas_assigned_at_the_top_level_are_parts_by_their_name(tmp_path):
    """Two module-level lambdas used by a task are two parts, named by their variables."""
    text = "double = lambda x: 2 * x\nhalf = lambda x: x / 2\n\n\ndef job(task):\n    task.save(half(double(1)), 'y')\n"
    first = CodeHasher().version(load(tmp_path, text).job)
    assert sorted(first) == ["double", "half", "job"]
    changed = CodeHasher().version(load(tmp_path, text.replace("x / 2", "x / 4")).job)
    assert [name for name in changed if changed[name] != first[name]] == ["half"]


def test_classes_with_generated_methods_are_read_from_their_source(tmp_path):
    """A dataclass (its __init__ is compiled by the dataclasses module, not from the file) is still hashed
    from its class statement: a default value counts, a comment does not."""
    text = ("import dataclasses\nfrom fluidml import Task\n\n\n@dataclasses.dataclass\nclass Options:\n"
            "    depth: int = 3  # how deep\n\n\nclass Train(Task):\n    def run(self):\n"
            "        self.save(Options().depth, 'depth')\n")
    first = CodeHasher().version(load(tmp_path, text).Train)
    assert sorted(first) == ["Options", "Train", "Train.run"]
    assert CodeHasher().version(load(tmp_path, text.replace("# how deep", "# levels")).Train) == first
    changed = CodeHasher().version(load(tmp_path, text.replace("depth: int = 3", "depth: int = 4")).Train)
    assert [name for name in changed if changed[name] != first[name]] == ["Options"]
