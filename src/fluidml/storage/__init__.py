"""Results stores: where task results live between tasks and between runs."""

from fluidml.storage._open import open_store
from fluidml.storage.base import Damage, LazySweep, ObjectMeta, Promise, ResultsStore, RunRecord, StoreContext, Sweep
from fluidml.storage.files import File, FilePromise, LocalFileStore, TypeInfo
from fluidml.storage.fsspec_store import FsspecStore  # fsspec is imported only when a store is made
from fluidml.storage.memory import InMemoryStore
from fluidml.storage.mongo import MongoDBStore  # pymongo is imported only when a store is made

__all__ = [
    "Damage", "File", "FilePromise", "FsspecStore", "InMemoryStore", "LazySweep", "LocalFileStore", "MongoDBStore",
    "ObjectMeta", "Promise", "ResultsStore", "RunRecord", "StoreContext", "Sweep", "TypeInfo", "open_store",
]
