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
import functools
import logging
import os
import threading
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple

from fluidml.config import HashedConfig, hashed_config
from fluidml.exception import ResultsStoreError, StoredResultDamaged, StoreUnavailableError
from fluidml.storage._claims import MongoClaims
from fluidml.storage._mongo_checks import Broken, RunDocs, field_of
from fluidml.storage._mongo_objects import decode, encode, entry_size, file_id
from fluidml.storage.base import (
    SAVED_RESULTS, TASK_INFO, Damage, DeferredObjects, ObjectMeta, ResultsStore, RunRecord, StoreContext, damage_error,
    info_problem,
)

__all__ = ["MongoDBStore"]

logger = logging.getLogger(__name__)

#: The collection name when none is given (the name the original fluidml's documents had).
DEFAULT_COLLECTION = "task_result"
#: How long an operation waits for a reachable server before failing (unless the URI sets it).
SERVER_SELECTION_TIMEOUT_MS = 5000
_OBJ = "obj:"  # prefix of the fields that hold objects


def _require_pymongo() -> None:
    try:
        import gridfs  # noqa: F401
        import pymongo  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"MongoDBStore needs pymongo, which is not installed ({error}). "
            'Install it with: pip install "fluidml[mongo]"'
        ) from error


_field = field_of


def _counter_order(counter: Any) -> Tuple[int, str]:
    text = str(counter)
    return (int(text), text) if text.isdigit() else (-1, text)


def _key(task_name: str, config: HashedConfig) -> Dict[str, str]:
    return {"task": task_name, "digest": config.digest}


class _Handles(NamedTuple):
    """The collections of one client: run documents, sweep counters and the GridFS bucket."""

    runs: Any
    counters: Any
    bucket: Any
    files: Any
    chunks: Any


class MongoDBStore(ResultsStore):
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

    def __init__(self, db: str, collection_name: Optional[str] = None, host: Optional[str] = None,
                 read_only: bool = False):
        super().__init__()
        _require_pymongo()
        if not isinstance(db, str) or not db:
            raise ValueError(f"MongoDBStore: db must be a non-empty database name, got {db!r}.")
        if collection_name is not None and (not isinstance(collection_name, str) or not collection_name):
            raise ValueError(f"MongoDBStore: collection_name must be a non-empty string, got {collection_name!r}.")
        self.db = db
        self.collection_name = collection_name or DEFAULT_COLLECTION
        self.host = host
        self.read_only = read_only
        self._client: Any = None
        self._handles: Optional[_Handles] = None
        self._pid: Optional[int] = None
        self._mutex = threading.Lock()
        self._absent: Optional[Tuple[str, str]] = None  # the last run a load found missing (saves a query)
        self._attempts: Dict[Tuple[str, str], List[str]] = {}  # (task, digest) -> names registered by its attempt

    # ------------------------------------------------------------------------------ connection

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        # each process connects itself
        state.update(_client=None, _handles=None, _pid=None, _mutex=None, _absent=None, _attempts={})
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._mutex = threading.Lock()

    def __repr__(self) -> str:
        return f"MongoDBStore(db={self.db!r}, collection_name={self.collection_name!r}, host={self.address!r})"

    @property
    def address(self) -> str:
        """The server address(es) the store talks to, without credentials."""
        if self.host is None:
            return "localhost:27017"
        if "://" not in self.host:
            return self.host
        from pymongo import uri_parser

        try:
            return ",".join(f"{host}:{port}" for host, port in uri_parser.parse_uri(self.host)["nodelist"])
        except Exception:  # an invalid URI: the client reports it on first use
            return self.host.split("@")[-1]

    def _collections(self) -> _Handles:
        """The collections of this process's client, connecting on first use."""
        handles = self._handles
        if handles is not None and self._pid == os.getpid():
            return handles
        with self._mutex:
            if self._handles is None or self._pid != os.getpid():
                self._connect()
        return self._handles  # type: ignore[return-value]  # set by _connect

    def _client_options(self) -> Dict[str, Any]:
        """MongoClient options beyond the host: a short server selection timeout unless the URI sets one."""
        options: Dict[str, Any] = {"appname": "fluidml"}
        if "serverselectiontimeoutms" not in (self.host or "").lower():
            options["serverSelectionTimeoutMS"] = SERVER_SELECTION_TIMEOUT_MS
        return options

    def _connect(self) -> None:
        import gridfs
        import pymongo

        # (callers are inside _guard). A client inherited through fork is replaced, not closed:
        # pymongo resets it in the child.
        client = pymongo.MongoClient(self.host, **self._client_options())
        try:
            database = client[self.db]
            runs = database[self.collection_name]
            files = database[f"{self.collection_name}.files"]
            if not self.read_only:
                runs.create_index([("task", 1), ("digest", 1)], unique=True, name="task_digest")
                files.create_index([("metadata.task", 1), ("metadata.digest", 1)], name="run")
        except BaseException:
            client.close()
            raise
        self._client, self._pid = client, os.getpid()
        self._handles = _Handles(runs, database[f"{self.collection_name}_counters"],
                                 gridfs.GridFSBucket(database, bucket_name=self.collection_name), files,
                                 database[f"{self.collection_name}.chunks"])

    def close(self) -> None:
        """Closes this process's connection (the next operation reconnects)."""
        client, self._client, self._handles = self._client, None, None
        if client is not None and self._pid == os.getpid():
            client.close()

    def __enter__(self) -> "MongoDBStore":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    @contextlib.contextmanager
    def _guard(self, action: str, task_name: Optional[str] = None, name: Optional[str] = None,
               config: Optional[HashedConfig] = None) -> Iterator[None]:
        """Turns driver errors into a ResultsStoreError that names the server and what failed."""
        import bson.errors
        import pymongo.errors

        what = action + (f' "{name}"' if name is not None else "")
        what += (f' of task "{task_name}"' if task_name is not None else "")
        what += (f" (config {config.hash})" if config is not None else "")
        fields = {"task_name": task_name, "key": name, "config_hash": config.hash if config is not None else None}
        try:
            yield
        except pymongo.errors.ConnectionFailure as error:
            reason = str(error).split(", Timeout:")[0]
            raise StoreUnavailableError(
                f"MongoDB server at {self.address} is not reachable while {what} ({reason}). Check that "
                f"the server runs and that MongoDBStore(host=...) names it.", **fields
            ) from error
        except (pymongo.errors.PyMongoError, bson.errors.BSONError, OverflowError) as error:
            raise ResultsStoreError(
                f'MongoDB at {self.address}, database "{self.db}", collection "{self.collection_name}": '
                f"{what} failed: {error}", **fields
            ) from error

    # ------------------------------------------------------------------------------ runs

    def _ensure_run(self, task_name: str, config: HashedConfig) -> Dict[str, Any]:
        """Creates the run's document if there is none (with the next sweep counter of the task)."""
        import pymongo.errors
        from pymongo import ReturnDocument

        runs, counters = self._collections().runs, self._collections().counters
        key = _key(task_name, config)
        counter = counters.find_one_and_update({"_id": task_name}, {"$inc": {"next": 1}}, upsert=True,
                                               return_document=ReturnDocument.AFTER)
        fields = {"hash": config.hash, "config": dict(config), "sweep_counter": f"{counter['next'] - 1:03d}"}
        self._absent = None
        try:
            if runs.update_one(key, {"$setOnInsert": fields}, upsert=True).upserted_id is not None:
                return fields
        except pymongo.errors.DuplicateKeyError:
            pass  # another process created it at the same moment
        return runs.find_one(key, {"sweep_counter": 1}) or {}

    def _update(self, task_name: str, config: HashedConfig, update: Dict[str, Any],
                before: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
        """Applies ``update`` to the run's document, creating it if needed; returns the fields of
        ``before`` as they were (to find replaced GridFS files)."""
        runs = self._collections().runs
        key = _key(task_name, config)
        self._absent = None
        for _ in range(2):
            found = runs.find_one_and_update(key, update, projection={"_id": 1, **(before or {})})
            if found is not None:
                return found
            self._ensure_run(task_name, config)
        raise ResultsStoreError(f'The run document of task "{task_name}" disappeared while it was written.',
                                task_name=task_name, config_hash=config.hash)

    def _delete_files(self, file_ids: Iterable[Any]) -> None:
        import gridfs.errors
        import pymongo.errors

        handles = self._collections()
        for ref in file_ids:
            try:
                handles.bucket.delete(ref)
            except gridfs.errors.NoFile:
                pass  # (its chunks are deleted too)
            except pymongo.errors.OperationFailure:  # a server that refuses to delete a file without its files entry
                handles.chunks.delete_many({"files_id": ref})

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

    def _docs(self) -> RunDocs:
        return RunDocs(self._collections(), self.db, self.collection_name)

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
            fields = [f for f in doc if f.startswith(_OBJ)] + ["saved", "state", "stored"]
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

    def task_names(self) -> List[str]:
        """The tasks with runs in the collection, sorted."""
        with self._guard("listing the tasks"):
            runs = self._collections().runs
            if not runs.database.list_collection_names(filter={"name": self.collection_name}):
                return []  # (asking a missing collection would create it on some servers)
            return sorted(runs.distinct("task", {"stored": True}))

    def runs(self, task_name: str) -> Iterator[RunRecord]:
        """The task's runs in the order of their sweep counters, read without their objects (whose
        sizes are read on first access, one query per run)."""
        fields = {"config": 1, "sweep_counter": 1, _field(TASK_INFO): 1}
        with self._guard("listing the runs", task_name):
            docs = list(self._collections().runs.find({"task": task_name, "stored": True}, fields))
            handles = self._collections()
            for doc in docs:
                entry = doc.get(_field(TASK_INFO))
                doc["info"] = decode(entry, handles.files, handles.chunks) if entry is not None else None
        for doc in sorted(docs, key=lambda d: _counter_order(d.get("sweep_counter"))):
            info = doc["info"] if isinstance(doc["info"], dict) else None
            yield RunRecord(task_name, str((info or {}).get("id") or doc.get("sweep_counter")),
                            dict(doc.get("config") or {}), info,
                            DeferredObjects(functools.partial(self._object_metas, doc["_id"]),
                                            functools.partial(self._object_meta, doc["_id"])),
                            f'{self.db}/{self.collection_name}/{doc["_id"]}')

    def _object_metas(self, doc_id: Any) -> Dict[str, ObjectMeta]:
        """Type and size (bytes of its pickle) of each object the run's registry lists."""
        with self._guard("reading the objects of a run"):
            doc = self._collections().runs.find_one({"_id": doc_id}) or {}
        return {name: ObjectMeta("pickle", entry_size(doc.get(_field(name)))) for name in doc.get("saved") or []}

    def _object_meta(self, doc_id: Any, name: str) -> Optional[ObjectMeta]:
        """Type and size of one object of the run, None if its registry does not list it."""
        with self._guard("reading an object of a run", name=name):
            doc = self._collections().runs.find_one({"_id": doc_id, "saved": name}, {_field(name): 1})
        return None if doc is None else ObjectMeta("pickle", entry_size(doc.get(_field(name))))

    def claims(self) -> "MongoClaims":
        """Where drivers sharing this collection claim runs: each run document's ``claim`` field."""
        return MongoClaims(self)

    def stored_configs(self, task_name: str) -> Iterable[Dict]:
        """The unique configs of the task's runs that hold objects."""
        with self._guard("listing the runs", task_name):
            docs = list(self._collections().runs.find({"task": task_name, "stored": True}, {"config": 1, "_id": 0}))
        return [doc["config"] for doc in docs if "config" in doc]

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

    # ------------------------------------------------------------------------------ integrity

    def run_damage(self, task_name: str, task_unique_config: Dict, deep: bool = False) -> List[Damage]:
        """What is wrong with the run. The cheap check (``deep=False``) finds nothing beyond what
        loading its info finds (an unreadable info or registry) without more queries; ``deep``
        checks every object it lists: its field, its GridFS file and chunks, and the config."""
        if not deep:
            return []
        config = hashed_config(task_unique_config)
        with self._guard("checking the run", task_name, config=config):
            doc = self._collections().runs.find_one(_key(task_name, config))
            return [] if doc is None else self._docs().damage(task_name, doc)

    def check_runs(self, task_name: str, repair: bool = False) -> List[Damage]:
        """Deep checks of every run of the task (``fluidml.results.verify``); with ``repair``,
        damaged runs are marked not finished."""
        found: List[Damage] = []
        with self._guard("checking the runs", task_name):
            runs = self._collections().runs
            ids = [doc["_id"] for doc in runs.find({"task": task_name, "stored": True}, {"_id": 1})]
            for doc_id in ids:
                doc = runs.find_one({"_id": doc_id})
                damage = [] if doc is None else self._docs().damage(task_name, doc)
                if damage and repair:
                    self.mark_damaged(task_name, doc.get("config") or {}, damage[0])
                found.extend(damage)
        return found
