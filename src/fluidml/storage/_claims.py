"""Claims: several drivers (``flow.run`` in several processes or on several machines) share one
persistent store, and each task runs once.

Before a driver touches a run that it must execute, it claims the run. A claim is a lease: it names
its holder, and it holds while the holder lives. The holder record is a dict::

    {"kind": "driver", "token": "node7-4242-9f3a1c2e", "host": "node7", "pid": 4242,
     "started": "2391234" (the process's start time on Linux), "run": "witty-spruce"}

A holder of kind "driver" is alive while its process is (checked directly on the same host), or
while its heartbeat is younger than ``STALE_AFTER`` seconds (other hosts; each driver refreshes
one heartbeat every ``HEARTBEAT_INTERVAL`` seconds, whatever the number of its tasks). Other
kinds are judged by the checker registered for them in ``LIVENESS`` (a Slurm executor registers
"slurm": a claim held by a job id, alive while ``squeue`` lists the job), else by their heartbeat.

A driver that finds a run claimed by a live holder leaves it to that holder and comes back to it
later (it then finds the holder's finished result); a claim whose holder is gone is stale and is
taken over, with a log line. Stores keep claims through a small backend: ``FileClaims`` (one file
per claimed run under ``<base_dir>/.fluidml/claims/``, created with ``O_EXCL``: one small write per
task) and ``MongoClaims`` (a ``claim`` field of the run's document, set by one atomic update).
"""

import functools
import json
import logging
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from typing import Any, Callable, Dict, Optional, Set, Tuple

from fluidml.config import hashed_config

__all__ = ["HEARTBEAT_INTERVAL", "LIVENESS", "STALE_AFTER", "ClaimBackend", "Claims", "FileClaims", "MongoClaims",
           "claims_for"]

logger = logging.getLogger(__name__)

#: Seconds between two heartbeats of a driver.
HEARTBEAT_INTERVAL = 15.0
#: Seconds without a heartbeat after which a holder on another host counts as gone.
STALE_AFTER = 90.0

Holder = Dict[str, Any]
#: Liveness checks by holder kind: (holder, a function that reads its heartbeat's age in seconds,
#: None without one) -> (alive, why not).
LIVENESS: Dict[str, Callable[[Holder, Callable[[], Optional[float]]], Tuple[bool, str]]] = {}

_LIVE_TOKENS: Set[str] = set()  # drivers of this process that are running now


class ClaimBackend(ABC):
    """How one store keeps claims and heartbeats (digest: the run's unique-config digest)."""

    @abstractmethod
    def acquire(self, task_name: str, config: Dict, holder: Holder) -> Optional[Holder]:
        """Claims the run if nobody does; None when it is ours now, else the current holder."""

    @abstractmethod
    def replace(self, task_name: str, config: Dict, stale: Holder, holder: Holder) -> bool:
        """Takes the run's claim over from ``stale`` if it still holds it; True if it is ours now."""

    @abstractmethod
    def release(self, task_name: str, config: Dict, holder: Holder) -> None:
        """Drops the run's claim if ``holder`` holds it."""

    @abstractmethod
    def beat(self, holder: Holder) -> None:
        """Records (or refreshes) the holder's heartbeat."""

    @abstractmethod
    def heartbeat_age(self, token: str) -> Optional[float]:
        """Seconds since the last heartbeat of the holder ``token``; None if it has none."""

    @abstractmethod
    def end(self, holder: Holder) -> None:
        """Removes the holder's heartbeat (it ends)."""


@functools.lru_cache(maxsize=None)
def _host() -> str:
    """This machine's host name (socket is imported only when claims are made)."""
    import socket

    return socket.gethostname()


def _process_started(pid: int) -> Optional[str]:
    """The start time of a process on Linux (to tell a pid that was reused), else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[19].decode()
    except (OSError, IndexError):
        return None


def _process_alive(pid: int, started: Optional[str]) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    return started is None or _process_started(pid) in (None, started)


def _driver_alive(holder: Holder, age_of: Callable[[], Optional[float]]) -> Tuple[bool, str]:
    if holder.get("token") in _LIVE_TOKENS:
        return True, ""
    if holder.get("host") == _host() and isinstance(holder.get("pid"), int):
        if holder["pid"] != os.getpid() and _process_alive(holder["pid"], holder.get("started")):
            return True, ""
        return False, f"its process (pid {holder['pid']}) is gone"
    return _heartbeat_alive(holder, age_of)


def _heartbeat_alive(holder: Holder, age_of: Callable[[], Optional[float]]) -> Tuple[bool, str]:
    age = age_of()
    if age is None:
        return False, "it has no heartbeat"
    if age > STALE_AFTER:
        return False, f"its last heartbeat is {age:.0f} s old"
    return True, ""


LIVENESS["driver"] = _driver_alive


def describe(holder: Holder) -> str:
    """``run "witty-spruce" (pid 4242 on node7)``, or the holder's kind and token."""
    if holder.get("kind", "driver") == "driver":
        return f'run "{holder.get("run")}" (pid {holder.get("pid")} on {holder.get("host")})'
    return f'{holder.get("kind")} {holder.get("token")}'


class Claims:
    """The claims of one driver on one store: claim, release, and one heartbeat thread."""

    def __init__(self, backend: ClaimBackend, run_name: str):
        self.backend = backend
        token = f"{_host()}-{os.getpid()}-{os.urandom(4).hex()}"
        self.holder: Holder = {"kind": "driver", "token": token, "host": _host(), "pid": os.getpid(),
                               "started": _process_started(os.getpid()), "run": run_name}
        self._held: Dict[Tuple[str, str], Dict] = {}  # (task name, digest) -> unique config
        self._waiting: Set[Tuple[str, str]] = set()  # runs we told the log we wait for
        self._stop = threading.Event()
        self._beating = False
        _LIVE_TOKENS.add(token)

    def _start(self) -> None:
        """The first heartbeat, and the thread of the next ones (with the first claim: a run that
        claims nothing, e.g. a cached re-run, writes nothing)."""
        self.backend.beat(self.holder)
        self._beating = True
        threading.Thread(target=self._beat, name="fluidml-heartbeat", daemon=True).start()

    def _beat(self) -> None:
        if hasattr(signal, "pthread_sigmask"):  # Ctrl-C and SIGTERM are for the main thread
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        while not self._stop.wait(HEARTBEAT_INTERVAL):
            try:
                self.backend.beat(self.holder)
            except Exception as error:  # the store is away for a moment: the next beat tries again
                logger.warning("Could not record this driver's heartbeat in the results store: %s", error)

    def claim(self, task_name: str, unique_name: str, config: Dict) -> bool:
        """True if this driver now holds the run (new, or taken over from a holder that is gone)."""
        key = (task_name, hashed_config(config).digest)
        if key in self._held:
            return True
        if not self._beating:
            self._start()
        holder = self.backend.acquire(task_name, config, self.holder)
        while holder is not None:
            age_of = functools.partial(self.backend.heartbeat_age, str(holder.get("token")))
            alive, why = LIVENESS.get(holder.get("kind", "driver"), _heartbeat_alive)(holder, age_of)
            if alive:
                if key not in self._waiting:
                    self._waiting.add(key)
                    logger.info('Task "%s" is being run by %s; this run waits for its result.', unique_name,
                                describe(holder))
                return False
            if self.backend.replace(task_name, config, holder, self.holder):
                logger.warning('Task "%s": taking over its claim from %s, as %s.', unique_name, describe(holder), why)
                break
            holder = self.backend.acquire(task_name, config, self.holder)  # someone else was quicker
        self._held[key] = config
        return True

    def release(self, task_name: str, config: Dict) -> None:
        """Drops the claim of a run that ended (no-op if it is not held). A store error is logged:
        the claim then ends with this driver."""
        found = self._held.pop((task_name, hashed_config(config).digest), None)
        if found is not None:
            try:
                self.backend.release(task_name, found, self.holder)
            except Exception as error:
                logger.warning("Could not release the claim of a run of task \"%s\": %s", task_name, error)

    def close(self) -> None:
        """Releases every claim still held, and ends the heartbeat."""
        self._stop.set()
        _LIVE_TOKENS.discard(self.holder["token"])
        if not self._beating:
            return
        try:
            for (task_name, _), config in list(self._held.items()):
                self.backend.release(task_name, config, self.holder)
            self._held.clear()
            self.backend.end(self.holder)
        except Exception as error:  # stale claims are taken over by the next driver
            logger.warning("Could not release this run's claims in the results store: %s", error)


def claims_for(store: Any, run_name: str) -> Optional[Claims]:
    """The claims of a driver on ``store``, or None for stores that do not keep claims."""
    backend = getattr(store, "claims", None)
    return Claims(backend(), run_name) if backend is not None else None


class FileClaims(ClaimBackend):
    """Claims in a directory: ``<meta>/claims/<task>/<digest>.json`` per claimed run and
    ``<meta>/drivers/<token>.json`` per driver (its modification time is the heartbeat)."""

    def __init__(self, meta_dir: str, locked: Callable[[], Any]):
        self.meta_dir = meta_dir
        self.locked = locked  # the store's inter-process lock (for take-overs)

    def _path(self, task_name: str, config: Dict) -> str:
        return os.path.join(self.meta_dir, "claims", task_name, hashed_config(config).digest + ".json")

    def _read(self, path: str) -> Optional[Holder]:
        try:
            with open(path, "rb") as file:
                data = file.read()
            mtime = os.stat(path).st_mtime
        except FileNotFoundError:
            return None
        try:
            holder = json.loads(data)
        except ValueError:  # being written (or cut short): judged by the file's age
            holder = None
        if not isinstance(holder, dict):
            holder = {"kind": "unwritten", "token": f"unwritten-{mtime}"}
        holder["_mtime"] = mtime
        return holder

    def acquire(self, task_name: str, config: Dict, holder: Holder) -> Optional[Holder]:
        path = self._path(task_name, config)
        while True:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                continue
            except FileExistsError:
                current = self._read(path)
                if current is not None:
                    return current
                continue  # released meanwhile: try again
            try:
                os.write(fd, json.dumps(holder).encode("utf-8"))
            finally:
                os.close(fd)
            return None

    def replace(self, task_name: str, config: Dict, stale: Holder, holder: Holder) -> bool:
        path = self._path(task_name, config)
        with self.locked():
            current = self._read(path)
            if current is not None and (current.get("token"), current.get("_mtime")) != \
                    (stale.get("token"), stale.get("_mtime")):
                return False
            os.makedirs(os.path.dirname(path), exist_ok=True)
            from fluidml.storage._filetypes import write_atomic  # file-store claims only

            write_atomic(path, json.dumps(holder))
        return True

    def release(self, task_name: str, config: Dict, holder: Holder) -> None:
        path = self._path(task_name, config)
        current = self._read(path)
        if current is not None and current.get("token") == holder["token"]:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def _beat_path(self, token: str) -> str:
        return os.path.join(self.meta_dir, "drivers", token.replace(os.sep, "_") + ".json")

    def beat(self, holder: Holder) -> None:
        path = self._beat_path(holder["token"])
        try:
            os.utime(path)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            from fluidml.storage._filetypes import write_atomic  # file-store claims only

            write_atomic(path, json.dumps(holder))

    def heartbeat_age(self, token: str) -> Optional[float]:
        if token.startswith("unwritten-"):  # a claim file still empty: as old as the file
            return time.time() - float(token.partition("-")[2])
        try:
            return max(0.0, time.time() - os.stat(self._beat_path(token)).st_mtime)
        except (FileNotFoundError, ValueError):
            return None

    def end(self, holder: Holder) -> None:
        try:
            os.unlink(self._beat_path(holder["token"]))
        except FileNotFoundError:
            pass


class MongoClaims(ClaimBackend):
    """Claims in a ``MongoDBStore``: the ``claim`` field of each run's document, set and cleared by
    atomic conditional updates, and one document per driver in ``<collection>_drivers``."""

    def __init__(self, store: Any):
        self.store = store

    def _runs(self) -> Any:
        return self.store._collections().runs

    def _drivers(self) -> Any:
        runs = self._runs()
        return runs.database[f"{runs.name}_drivers"]

    def acquire(self, task_name: str, config: Dict, holder: Holder) -> Optional[Holder]:
        config = hashed_config(config)
        key = {"task": task_name, "digest": config.digest}
        with self.store._guard("claiming the run", task_name, config=config):
            for _ in range(2):
                if self._runs().update_one({**key, "claim": {"$exists": False}},
                                           {"$set": {"claim": holder}}).matched_count:
                    return None
                doc = self._runs().find_one(key, {"claim": 1, "_id": 0})
                if doc is None:
                    self.store._ensure_run(task_name, config)  # the run's document, with its counter
                elif doc.get("claim") is not None:
                    return dict(doc["claim"])
        return None if self._runs().update_one({**key, "claim": {"$exists": False}},
                                               {"$set": {"claim": holder}}).matched_count else holder

    def replace(self, task_name: str, config: Dict, stale: Holder, holder: Holder) -> bool:
        config = hashed_config(config)
        with self.store._guard("taking over the claim of", task_name, config=config):
            return bool(self._runs().update_one({"task": task_name, "digest": config.digest,
                                                 "claim.token": stale.get("token")},
                                                {"$set": {"claim": holder}}).matched_count)

    def release(self, task_name: str, config: Dict, holder: Holder) -> None:
        config = hashed_config(config)
        with self.store._guard("releasing the claim of", task_name, config=config):
            self._runs().update_one({"task": task_name, "digest": config.digest, "claim.token": holder["token"]},
                                    {"$unset": {"claim": ""}})

    def beat(self, holder: Holder) -> None:
        with self.store._guard("recording the driver's heartbeat"):
            self._drivers().update_one({"_id": holder["token"]}, {"$set": {**holder, "beat": time.time()}},
                                       upsert=True)

    def heartbeat_age(self, token: str) -> Optional[float]:
        with self.store._guard("reading a driver's heartbeat"):
            doc = self._drivers().find_one({"_id": token}, {"beat": 1})
        return None if doc is None else max(0.0, time.time() - float(doc["beat"]))

    def end(self, holder: Holder) -> None:
        with self.store._guard("removing the driver's heartbeat"):
            self._drivers().delete_one({"_id": holder["token"]})
