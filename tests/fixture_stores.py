"""The committed stores under tests/fixtures/ (written by older versions) and the pipelines that
made them, for the tests that open them."""

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load_pipeline(name: str) -> ModuleType:
    """The module tests/fixtures/<name>.py (a pipeline that wrote a fixture store)."""
    spec = importlib.util.spec_from_file_location(name, FIXTURES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_store(name: str, tmp_path: Path) -> Path:
    """A copy of the fixture store tests/fixtures/<name> (tests must not change the fixture)."""
    target = tmp_path / name
    shutil.copytree(FIXTURES / name, target)
    return target
