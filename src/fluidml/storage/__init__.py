"""Results stores: where task results live between tasks and between runs."""

from fluidml.storage.base import LazySweep, Promise, ResultsStore, StoreContext, Sweep
from fluidml.storage.memory import InMemoryStore

__all__ = ["InMemoryStore", "LazySweep", "Promise", "ResultsStore", "StoreContext", "Sweep"]
