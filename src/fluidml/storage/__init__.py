"""Results stores: where task results live between tasks and between runs.

``InMemoryStore`` and the base classes are imported with the package; the other stores (and
``open_store``) on first access, so that ``import fluidml`` and an in-memory run stay light.
"""

from typing import TYPE_CHECKING, Any, List

from fluidml.storage.base import Damage, LazySweep, ObjectMeta, Promise, ResultsStore, RunRecord, StoreContext, Sweep
from fluidml.storage.memory import InMemoryStore

if TYPE_CHECKING:
    from fluidml.storage._open import open_store
    from fluidml.storage.files import File, FilePromise, LocalFileStore, TypeInfo
    from fluidml.storage.fsspec_store import FsspecStore
    from fluidml.storage.mongo import MongoDBStore

__all__ = [
    "Damage", "File", "FilePromise", "FsspecStore", "InMemoryStore", "LazySweep", "LocalFileStore", "MongoDBStore",
    "ObjectMeta", "Promise", "ResultsStore", "RunRecord", "StoreContext", "Sweep", "TypeInfo", "open_store",
]

#: The module of each name imported on first access.
_LAZY = {
    "File": "files", "FilePromise": "files", "LocalFileStore": "files", "TypeInfo": "files",
    "FsspecStore": "fsspec_store", "MongoDBStore": "mongo", "open_store": "_open",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
