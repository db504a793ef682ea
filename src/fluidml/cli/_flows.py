"""Finding a flow named on the command line as ``MODULE:OBJECT`` (for ``fluidml graph`` and any
command that needs a flow)."""

import importlib
import importlib.util
import inspect
import os
import sys
from typing import Any

from fluidml.cli._app import CliError

__all__ = ["load_flow"]


def _import(module: str) -> Any:
    if module.endswith(".py") or os.sep in module:
        path = os.path.abspath(module)
        if not os.path.isfile(path):
            raise CliError(f"No Python file {module}.")
        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise CliError(f"Cannot import {module} as a Python module.")
        loaded = importlib.util.module_from_spec(spec)
        sys.path.insert(0, os.path.dirname(path))  # its own imports find their neighbours
        sys.modules[name] = loaded  # classes defined there pickle by this name
        spec.loader.exec_module(loaded)
        return loaded
    sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is not None and module.startswith(error.name):
            raise CliError(f"No module {module!r} here (looked in {os.getcwd()} and sys.path); give a module "
                           f"name or a .py file.") from None
        raise


def _required_parameters(fn: Any) -> list:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no signature to read: call it and see
        return []
    return [p.name for p in parameters if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD,
                                                                               p.KEYWORD_ONLY)]


def load_flow(target: str) -> Any:
    """The Flow that ``MODULE:OBJECT`` names; OBJECT may be a function that returns one (called
    without arguments). CliError for a malformed target or anything that is not a Flow."""
    from fluidml.flow import Flow

    module_name, sep, attribute = target.rpartition(":")
    if not sep or not module_name or not attribute:
        raise CliError(f"{target!r} is not MODULE:OBJECT (e.g. examples/digits.py:make_flow or my_pkg.flows:flow).")
    value: Any = _import(module_name)
    for part in attribute.split("."):
        if not hasattr(value, part):
            names = sorted(n for n in dir(value) if not n.startswith("_"))
            raise CliError(f"{module_name} has no {attribute!r}; it has: {', '.join(names) or 'nothing public'}.")
        value = getattr(value, part)
    if callable(value) and not isinstance(value, Flow):
        required = _required_parameters(value)
        if required:
            raise CliError(f"{target} needs arguments ({', '.join(required)}); name a Flow, or a function that "
                           f"returns one without arguments.")
        value = value()
    if not isinstance(value, Flow):
        raise CliError(f"{target} is a {type(value).__name__}, not a Flow or a function that returns one.")
    return value
