"""The public surface: names where the API reference puts them, sorted __all__, typing marker."""

import importlib
import pathlib
import subprocess
import sys

import pytest

import fluidml
from fluidml import exception


@pytest.mark.parametrize(
    "module, names",
    [
        ("fluidml", ["Flow", "RunObserver", "RunSummary", "Task", "TaskSpec", "configure_logging"]),
        ("fluidml.storage", ["File", "FilePromise", "FsspecStore", "InMemoryStore", "LazySweep", "LocalFileStore",
                             "Promise", "ResultsStore", "StoreContext", "Sweep", "TypeInfo"]),
        ("fluidml.task", ["Task", "TaskInfo", "TaskResults", "TaskState"]),
        ("fluidml.exception", ["CyclicGraphError", "FluidmlError", "GridSearchExpansionError", "NoTasksError",
                               "TaskNameError", "TaskResultKeyAlreadyExists", "TaskResultObjectMissing",
                               "TmuxError"]),
        ("fluidml.visualization", ["visualize_graph_in_console", "visualize_graph_interactive"]),
    ],
)
def test_documented_names_are_exported(module, names):
    """Each documented name is importable from its module and listed in a sorted __all__."""
    mod = importlib.import_module(module)
    assert mod.__all__ == sorted(mod.__all__)
    for name in names:
        assert name in mod.__all__ and getattr(mod, name) is not None


def test_version_and_typing_marker():
    """The package has a version and ships py.typed."""
    assert fluidml.__version__ == "0.5.0"
    assert (pathlib.Path(fluidml.__file__).parent / "py.typed").exists()


def test_every_exception_is_a_fluidml_error():
    """All public exceptions derive from FluidmlError, except RunTerminated, a SystemExit (an
    uncaught one ends the process with its status, without a traceback)."""
    for name in exception.__all__:
        expected = SystemExit if name == "RunTerminated" else exception.FluidmlError
        assert issubclass(getattr(exception, name), expected)
    assert exception.RunTerminated(15).code == 143 and not issubclass(exception.RunTerminated, Exception)


def test_optional_dependencies_are_not_imported():
    """Importing fluidml loads none of the optional extras."""
    code = ("import sys, fluidml, fluidml.storage, fluidml.visualization; "
            "print(sorted(m for m in ('ray', 'pymongo', 'bokeh', 'fsspec', 's3fs') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
