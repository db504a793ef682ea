"""``verify``: finds damaged runs in a store (files that are gone, truncated or changed since they
were saved; unreadable run infos, registries or configs) and, on request, marks them not finished
so that the next ``flow.run`` runs them again.

It reads what each store keeps about its runs (``ResultsStore.task_names()`` and
``ResultsStore.check_runs()``) and never loads an object: a ``LocalFileStore`` compares each
object's size and checksum with what was recorded when it was saved; a ``MongoDBStore`` checks each
listed object's field, GridFS file and chunks.
"""

from typing import Iterable, List, Optional

from fluidml.storage.base import Damage, ResultsStore

__all__ = ["verify"]


def verify(store: ResultsStore, repair: bool = False, tasks: Optional[Iterable[str]] = None) -> List[Damage]:
    """Checks every stored run of ``store`` and returns what is damaged (an empty list if nothing).

    Read-only unless ``repair`` is set: then each damaged run is marked not finished (its info says
    what and where), so the next ``flow.run`` clears it and runs it again, and its successors after
    it. Each ``Damage`` prints as one line::

        for damage in fluidml.results.verify(LocalFileStore("results")):
            print(damage)   # task "train", run exp-1-004: has 10 bytes, 4096 were saved (results/train/...)

    Args:
        store: The store to check.
        repair: Mark damaged runs not finished.
        tasks: The names of the tasks to check (default: every task in the store).
    """
    names = list(tasks) if tasks is not None else store.task_names()
    found: List[Damage] = []
    for name in names:
        found.extend(store.check_runs(name, repair=repair))
    return found
