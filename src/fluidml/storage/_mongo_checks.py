"""Reading and checking MongoDBStore run documents: where each part of a run is (for messages),
its registry and objects read with what is damaged told apart (``Broken``), and the deep check of
a whole run document for ``fluidml.results.verify``.
"""

from typing import Any, Dict, List, Optional

from fluidml.config import config_digest
from fluidml.storage._integrity import DECODE_ERRORS
from fluidml.storage._mongo_objects import BrokenFile, decode, file_id, is_entry
from fluidml.storage.base import TASK_INFO, Damage, damage_marker, info_problem

__all__ = ["Broken", "RunDocs", "field_of"]

_OBJ = "obj:"  # prefix of the fields that hold objects


def field_of(name: str) -> str:
    """The document field of an object name (never starts with ``$``, holds no ``.``)."""
    return _OBJ + name.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


class Broken(Exception):
    """A part of a run document (or its GridFS file) that cannot be read: where, and what is wrong."""

    def __init__(self, location: str, problem: str):
        super().__init__(f"{location} {problem}")
        self.location = location
        self.problem = problem


class RunDocs:
    """Reads the run documents of one collection (``handles``: its runs, GridFS files and chunks)."""

    def __init__(self, handles: Any, db: str, collection: str):
        self.handles = handles
        self.db = db
        self.collection = collection

    def where(self, doc: Dict[str, Any], field: str) -> str:
        return f"{self.db}/{self.collection}/{doc.get('_id')}/{field}"

    def gridfs_where(self, entry: Any) -> str:
        return f"{self.db}/{self.collection}.files/{file_id(entry)}"

    def saved(self, doc: Dict[str, Any]) -> Optional[List[str]]:
        """The run's registry; raises ``Broken`` if it is not a list of names."""
        saved = doc.get("saved")
        if saved is not None and not (isinstance(saved, list) and all(isinstance(n, str) for n in saved)):
            raise Broken(self.where(doc, "saved"), "is not a list of object names")
        return None if saved is None else list(saved)

    def decode(self, doc: Dict[str, Any], field: str) -> Any:
        """The object in a field; raises ``Broken`` if it cannot be read (``NoFile`` if its GridFS
        file is gone: it may have been replaced in the meantime)."""
        entry = doc[field]
        if not is_entry(entry):
            raise Broken(self.where(doc, field), f"holds {type(entry).__name__}, not an object this store wrote")
        try:
            return decode(entry, self.handles.files, self.handles.chunks)
        except BrokenFile as error:
            raise Broken(self.gridfs_where(entry), str(error)) from None
        except DECODE_ERRORS as error:
            raise Broken(self.where(doc, field), f"cannot be decoded ({type(error).__name__}: {error})") from None

    def damage(self, task_name: str, doc: Dict[str, Any]) -> List[Damage]:
        """What is wrong with a finished run document: its info, registry or config, an object it
        lists whose field is gone, whose GridFS file is gone or misses chunks, or a damage it was
        marked with. A run without info is not finished: nothing is checked."""
        import gridfs.errors

        run_id = str(doc.get("sweep_counter"))
        info_field = field_of(TASK_INFO)
        try:
            saved = self.saved(doc) or []
            if doc.get(info_field) is None:
                return []
            info = self.decode(doc, info_field)
            problem = info_problem(info)
            if problem is not None:
                raise Broken(self.where(doc, info_field), f"is not a run info: {problem}")
        except gridfs.errors.NoFile:
            return [Damage(task_name, run_id, self.gridfs_where(doc.get(info_field)), "is missing")]
        except Broken as broken:
            return [Damage(task_name, run_id, broken.location, broken.problem)]
        run_id = str(info.get("id") or run_id)
        found = []
        marker = damage_marker(info)
        if marker is not None:
            found.append(Damage(task_name, run_id, str(marker.get("location")), f"{marker.get('problem')} (marked)"))
        if not isinstance(doc.get("config"), dict) or config_digest(doc["config"]) != doc.get("digest"):
            found.append(Damage(task_name, run_id, self.where(doc, "config"),
                                "does not hold the config its run was made for"))
        for name in saved:
            field = field_of(name)
            entry = doc.get(field)
            if entry is None:
                found.append(Damage(task_name, run_id, self.where(doc, field),
                                    "is missing, but the run lists the object as saved"))
            elif not is_entry(entry):
                found.append(Damage(task_name, run_id, self.where(doc, field), "is not an object this store wrote"))
            elif file_id(entry) is not None:
                problem = self.gridfs_problem(entry)
                if problem is not None:
                    found.append(Damage(task_name, run_id, self.gridfs_where(entry), problem))
        return found

    def gridfs_problem(self, entry: Dict[str, Any]) -> Optional[str]:
        """What is wrong with an object's GridFS file (its chunks are counted, not read), or None."""
        info = self.handles.files.find_one({"_id": file_id(entry)})
        if info is None:
            return "is missing"
        if entry.get("size") is not None and info.get("length") != entry["size"]:
            return f"has {info.get('length')} bytes, {entry['size']} were saved"
        count = -(-int(info["length"]) // int(info["chunkSize"]))
        present = {doc["n"] for doc in self.handles.chunks.find({"files_id": info["_id"]}, {"n": 1, "_id": 0})}
        missing = sorted(set(range(count)) - present)
        if missing:
            return f"is missing chunk(s) {', '.join(map(str, missing[:5]))} of {count}"
        return None
