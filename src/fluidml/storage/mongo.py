"""MongoDBStore: results in a MongoDB server, shared by every process and machine that names it.

One document per task run, keyed by task name and the digest (full MD5) of its unique config,
which is kept next to it for queries::

    {"task": "train", "digest": "<md5 hex>", "hash": "<8 chars>", "config": {...unique config...},
     "sweep_counter": "003", "saved": ["model", ...], "state": "finished", "stored": true,
     "obj:model": {"gridfs": ObjectId(...), "size": 104857600}, "obj:fluidml_info": Binary(...)}

Each object is pickled into a top-level ``obj:<name>`` field (``.`` ``$`` ``%`` escaped), inline
when it pickles to at most ``inline_limit`` bytes, otherwise into GridFS, with only its file id in
the document. Overwrites and deletes swap the field atomically and then delete the file it held,
so no GridFS file is left behind. The registry of saved results is the array ``saved``, updated
atomically. Only plain pymongo operations are used, so any MongoDB server works.

pymongo is imported only when a store is made (``pip install "fluidml[mongo]"``). The client is
created on first use, once per store and process: a store pickles without it (workers make their
own) and makes a new one after a fork.
"""

import contextlib
import logging
from typing import Any, Dict, List, Optional

from fluidml.config import HashedConfig, hashed_config
from fluidml.exception import ResultsStoreError, StoredResultDamaged
from fluidml.storage._mongo_checks import Broken, field_of
from fluidml.storage._mongo_objects import encode, file_id
from fluidml.storage._mongo_store_base import (  # noqa: F401 (the constants are documented here too)
    DEFAULT_COLLECTION, OBJ, SERVER_SELECTION_TIMEOUT_MS, MongoRuns, run_key as _key,
)
from fluidml.storage.base import SAVED_RESULTS, TASK_INFO, Damage, StoreContext, damage_error, info_problem

__all__ = ["MongoDBStore"]

logger = logging.getLogger(__name__)

_field = field_of


class MongoDBStore(MongoRuns):
    """A results store in a MongoDB database, for teams and runs spread over several machines.

    Args:
        db: The database name.
        collection_name: The collection of the run documents (default ``"task_result"``). Its
            GridFS bucket has the same name, and ``<collection_name>_counters`` holds the sweep
            counters.
        host: A host name (``"db.example.org"``, ``"db.example.org:27018"``) or a MongoDB URI
            (``"mongodb://user:pw@host1,host2/?replicaSet=rs0"``); default ``localhost:27017``.
            Without ``serverSelectionTimeoutMS`` in the URI, an unreachable server fails an
            operation after 5 s.
        read_only: Never write (no indexes are created); saving or deleting then raises
            ``ResultsStoreError``. The ``fluidml`` command reads stores this way.
    """

    keeps_objects = False
    process_safe = True  # worker processes get a pickled copy that connects on its own
    #: Objects that pickle to more bytes than this go to GridFS; smaller ones into the run document.
    inline_limit: int = 1 << 20

    def __enter__(self) -> "MongoDBStore":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    # ------------------------------------------------------------------------------ objects

    def save(self, obj: Any, name: str, type_: Optional[str], task_name: str, task_unique_config: Dict,
             **kwargs: Any) -> None:
        """Saves (or replaces) the object ``name`` of the run; every type is pickled (``type_`` and
        the other keyword arguments are accepted for compatibility and not needed)."""
        self._check_writable(f'save "{name}"', task_name)
        config = hashed_config(task_unique_config)
        with self._guard("saving", task_name, name, config):
            if name == SAVED_RESULTS:
                self._update(task_name, config, {"$set": {"saved": [str(n) for n in obj]}})
                return
            field = _field(name)
            entry = encode(obj, self.inline_limit, self._collections().bucket, f"{task_name}/{config.hash}/{name}",
                           {"task": task_name, "digest": config.digest, "name": name})
            changes: Dict[str, Any] = {field: entry, "stored": True}
            attempt = None
            if name == TASK_INFO and isinstance(obj, dict):
                changes["state"] = obj.get("state")
                attempt = self._attempts.pop((task_name, config.digest), None)
                if attempt is not None:  # the run lists exactly what this attempt saved
                    changes["saved"] = attempt
            try:
                before = self._update(task_name, config, {"$set": changes}, before={field: 1, "saved": 1})
            except BaseException:
                if file_id(entry) is not None:
                    with contextlib.suppress(Exception):
                        self._delete_files([file_id(entry)])
                raise
            if file_id(before.get(field)) is not None:
                self._delete_files([file_id(before.get(field))])
            if attempt is not None:
                stale = [n for n in before.get("saved") or [] if isinstance(n, str) and n not in attempt]
                if stale:
                    self._drop_objects(task_name, config, stale)

    def begin_attempt(self, task_name: str, task_unique_config: Dict) -> None:
        """From now until its info is saved, the names this attempt registers are kept: the info
        then lists exactly these, and objects of an earlier attempt that crashed are dropped."""
        self._attempts[(task_name, hashed_config(task_unique_config).digest)] = []

    def _drop_objects(self, task_name: str, config: HashedConfig, names: List[str]) -> None:
        """Removes objects of the run (and their GridFS files) that its last attempt did not save."""
        fields = {_field(name): 1 for name in names}
        old = self._collections().runs.find_one_and_update(_key(task_name, config),
                                                           {"$unset": {f: "" for f in fields}}, projection=fields)
        self._delete_files(file_id(old.get(f)) for f in fields if old is not None and file_id(old.get(f)) is not None)

    def load(self, name: str, task_name: str, task_unique_config: Dict, lazy: bool = False,
             **kwargs: Any) -> Optional[Any]:
        """The object ``name`` of the run, or None if the run did not save one. ``lazy`` has no effect
        here (the value is returned, as in the original fluidml). An object the run lists as saved
        that cannot be read (its field or GridFS file gone or incomplete, its bytes undecodable)
        raises ``StoredResultDamaged``, and the run is marked not finished."""
        import gridfs.errors

        config = hashed_config(task_unique_config)
        field = "saved" if name == SAVED_RESULTS else _field(name)
        with self._guard("loading", task_name, name, config):
            docs = self._docs()
            for attempt in range(2):
                doc = self._collections().runs.find_one(_key(task_name, config), {field: 1, "saved": 1})
                if doc is None:
                    self._absent = (task_name, config.digest)
                    return None
                try:
                    saved = docs.saved(doc)
                    if name == SAVED_RESULTS:
                        return saved
                    if doc.get(field) is None:
                        if name != TASK_INFO and saved and name in saved:
                            raise Broken(docs.where(doc, field), "is missing, but the run lists the object as saved")
                        return None
                    value = docs.decode(doc, field)
                    problem = info_problem(value) if name == TASK_INFO else None
                    if problem is not None:
                        raise Broken(docs.where(doc, field), f"is not a run info: {problem}")
                    return value
                except gridfs.errors.NoFile:
                    if attempt == 0:
                        continue  # replaced by another process between the two reads: read again
                    broken = Broken(docs.gridfs_where(doc.get(field)), "is missing")
                except Broken as error:
                    broken = error
                break
        raise self._damaged(task_name, config, name, broken)

    def get_results(self, task_name: str, task_unique_config: Dict) -> Optional[Dict[str, Any]]:
        """All objects the run saved (by its registry), read with one query; None if it saved nothing.
        An object it lists that cannot be read raises ``StoredResultDamaged``."""
        import gridfs.errors

        config = hashed_config(task_unique_config)
        with self._guard("loading the results", task_name, config=config):
            docs = self._docs()
            doc = self._collections().runs.find_one(_key(task_name, config))
            if doc is None:
                return None
            name = SAVED_RESULTS
            try:
                names = docs.saved(doc)
                if not names:
                    return None
                results = {}
                for name in names:
                    field = _field(name)
                    if doc.get(field) is None:
                        raise Broken(docs.where(doc, field), "is missing, but the run lists the object as saved")
                    try:
                        results[name] = docs.decode(doc, field)
                    except gridfs.errors.NoFile:
                        raise Broken(docs.gridfs_where(doc[field]), "is missing") from None
                return results
            except Broken as error:
                broken = error
        raise self._damaged(task_name, config, name, broken)

    def _damaged(self, task_name: str, config: HashedConfig, name: str, broken: Broken) -> StoredResultDamaged:
        """The error for a damaged part of a run; a damaged object marks its run not finished (the
        planner sees a damaged info or registry itself)."""
        marked = name not in (TASK_INFO, SAVED_RESULTS)
        if marked:
            try:
                self.mark_damaged(task_name, config, Damage(task_name, config.hash, broken.location, broken.problem))
            except ResultsStoreError as error:
                logger.warning("Cannot mark the damaged run of task %s as not finished: %s", task_name, error)
                marked = False
        return damage_error(task_name, config.hash, name, broken.location, broken.problem, marked=marked)

    def delete(self, name: str, task_name: str, task_unique_config: Dict) -> None:
        """Deletes the object ``name`` of the run (and its GridFS file), if it exists."""
        self._check_writable(f'delete "{name}"', task_name)
        config = hashed_config(task_unique_config)
        field = "saved" if name == SAVED_RESULTS else _field(name)
        unset = {field: "", "state": ""} if name == TASK_INFO else {field: ""}
        with self._guard("deleting", task_name, name, config):
            old = self._collections().runs.find_one_and_update(_key(task_name, config), {"$unset": unset},
                                                              projection={field: 1, "_id": 0})
            if old is None or field not in old:
                logger.debug('Nothing to delete: task "%s" has no object "%s" for this config.', task_name, name)
                return
            if file_id(old[field]) is not None:
                self._delete_files([file_id(old[field])])

    def delete_run(self, task_name: str, task_unique_config: Dict) -> None:
        """Deletes every object of the run and its GridFS files, if it exists. The document keeps the
        config and sweep counter, so a forced re-run keeps its id; it is no longer listed as a run."""
        self._check_writable("delete a run", task_name)
        config = hashed_config(task_unique_config)
        self._attempts.pop((task_name, config.digest), None)
        if self._absent == (task_name, config.digest):
            return  # a load just found no document for the run
        with self._guard("deleting the run", task_name, config=config):
            runs, bucket = self._collections().runs, self._collections().bucket
            doc = runs.find_one(_key(task_name, config))
            if doc is None:
                return
            fields = [f for f in doc if f.startswith(OBJ)] + ["saved", "state", "stored"]
            runs.update_one({"_id": doc["_id"]}, {"$unset": {f: "" for f in fields}})
            files = {file_id(doc[f]) for f in fields if file_id(doc.get(f)) is not None}
            # files of writes that were cut short (e.g. a crash between upload and document update)
            files.update(f._id for f in bucket.find({"metadata.task": task_name, "metadata.digest": config.digest}))
            self._delete_files(files)

    def get_context(self, task_name: str, task_unique_config: Dict) -> Optional[StoreContext]:
        """The run's sweep counter (no directory), creating the run's document if needed.

        Sweep counters number a task's runs in this collection in the order they were first
        created (``"000"``, ``"001"``, ...), whatever the run name; a run keeps its counter.
        """
        config = hashed_config(task_unique_config)
        self._check_writable("create a run", task_name)
        with self._guard("creating the run", task_name, config=config):
            doc = None
            if self._absent != (task_name, config.digest):  # else a load just found no run: create it
                doc = self._collections().runs.find_one(_key(task_name, config), {"sweep_counter": 1, "_id": 0})
            if doc is None:
                doc = self._ensure_run(task_name, config)
        return StoreContext(run_dir=None, sweep_counter=doc.get("sweep_counter"))

    def _register_result(self, name: Optional[str], task_name: str, task_unique_config: Dict) -> None:
        """Adds ``name`` to the run's registry in one atomic update (safe with concurrent writers)."""
        self._check_writable(f'save "{name}"', task_name)
        config = hashed_config(task_unique_config)
        key = _key(task_name, config)
        attempt = self._attempts.get((task_name, config.digest))
        if attempt is not None and name not in attempt:
            attempt.append(str(name))
        with self._guard("registering", task_name, name, config):
            runs = self._collections().runs
            added = runs.update_one({**key, "saved": {"$nin": [name]}}, {"$push": {"saved": name}})
            if added.matched_count == 0 and runs.find_one(key, {"_id": 1}) is None:
                self._ensure_run(task_name, config)
                runs.update_one({**key, "saved": {"$nin": [name]}}, {"$push": {"saved": name}})

    def _unregister_result(self, name: str, task_name: str, task_unique_config: Dict) -> None:
        """Removes ``name`` from the run's registry in one atomic update."""
        self._check_writable(f'delete "{name}"', task_name)
        config = hashed_config(task_unique_config)
        attempt = self._attempts.get((task_name, config.digest))
        if attempt is not None and name in attempt:
            attempt.remove(name)
        with self._guard("unregistering", task_name, name, config):
            self._collections().runs.update_one(_key(task_name, config), {"$pull": {"saved": name}})
