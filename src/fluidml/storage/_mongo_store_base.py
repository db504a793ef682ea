"""The run documents of a ``MongoDBStore`` (the base class it builds on): the connection (one
client per store and process, made on first use), the errors that name the server, creating and
updating a run's document, deleting GridFS files, and reading what the collection holds (task
names, runs, their objects' sizes) and checking it. ``mongo.py`` adds the objects themselves.

pymongo is imported only when a store is made.
"""

import contextlib
import functools
import os
import threading
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple

from fluidml.config import HashedConfig, hashed_config
from fluidml.exception import ResultsStoreError, StoreUnavailableError
from fluidml.storage._claims import MongoClaims
from fluidml.storage._mongo_checks import RunDocs, field_of
from fluidml.storage._mongo_objects import decode, entry_size
from fluidml.storage.base import TASK_INFO, Damage, DeferredObjects, ObjectMeta, ResultsStore, RunRecord

__all__ = ["DEFAULT_COLLECTION", "OBJ", "SERVER_SELECTION_TIMEOUT_MS", "MongoRuns", "run_key"]

#: The collection name when none is given (the name the original fluidml's documents had).
DEFAULT_COLLECTION = "task_result"
#: How long an operation waits for a reachable server before failing (unless the URI sets it).
SERVER_SELECTION_TIMEOUT_MS = 5000
OBJ = "obj:"  # prefix of the fields that hold objects


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


def run_key(task_name: str, config: HashedConfig) -> Dict[str, str]:
    """The query that finds a run's document."""
    return {"task": task_name, "digest": config.digest}


class _Handles(NamedTuple):
    """The collections of one client: run documents, sweep counters and the GridFS bucket."""

    runs: Any
    counters: Any
    bucket: Any
    files: Any
    chunks: Any


class MongoRuns(ResultsStore):
    """A results store's run documents in a MongoDB collection (see ``MongoDBStore``, the store)."""

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
        key = run_key(task_name, config)
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
        key = run_key(task_name, config)
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

    def _docs(self) -> RunDocs:
        return RunDocs(self._collections(), self.db, self.collection_name)

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

    # ------------------------------------------------------------------------------ integrity

    def run_damage(self, task_name: str, task_unique_config: Dict, deep: bool = False) -> List[Damage]:
        """What is wrong with the run. The cheap check (``deep=False``) finds nothing beyond what
        loading its info finds (an unreadable info or registry) without more queries; ``deep``
        checks every object it lists: its field, its GridFS file and chunks, and the config."""
        if not deep:
            return []
        config = hashed_config(task_unique_config)
        with self._guard("checking the run", task_name, config=config):
            doc = self._collections().runs.find_one(run_key(task_name, config))
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
