"""``open_store``: the store a path or a URL names (what the ``fluidml`` command opens).

A path is a ``LocalFileStore``; ``mongodb://`` and ``mongodb+srv://`` URIs are a ``MongoDBStore``
(the database from ``db=`` or the URI's path, the collection from ``collection=``). Targets are
shown to people through ``redacted``, which drops the password of a URI.
"""

import os
import re
from typing import Any, Optional, Union
from urllib.parse import unquote, urlsplit

from fluidml.storage.base import ResultsStore

__all__ = ["open_store", "redacted"]

_MONGO_SCHEMES = ("mongodb://", "mongodb+srv://")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/@:]*):[^/]*@")


def redacted(target: Union[str, "os.PathLike[str]"]) -> str:
    """The target as it may be shown: a URI's password is replaced by ``***``."""
    return _PASSWORD.sub(r"\1:***@", os.fspath(target))


def open_store(target: Union[str, "os.PathLike[str]"], db: Optional[str] = None, collection: Optional[str] = None,
               read_only: bool = False, **options: Any) -> ResultsStore:
    """The results store at ``target``: a directory path (``LocalFileStore``) or a ``mongodb://`` /
    ``mongodb+srv://`` URI (``MongoDBStore``; the database is ``db`` or the URI's path, the
    collection ``collection`` or the default). ``read_only=True`` gives a store that never writes.
    Other keyword arguments go to the store's constructor.

    >>> open_store("results")                                        # doctest: +SKIP
    >>> open_store("mongodb://db.example.org/experiments", read_only=True)   # doctest: +SKIP
    """
    text = os.fspath(target)
    if not isinstance(text, str) or not text:
        raise ValueError(f"open_store needs a directory path or a mongodb:// URI, got {target!r}.")
    if text.startswith(_MONGO_SCHEMES):
        from fluidml.storage.mongo import MongoDBStore

        database = db or unquote(urlsplit(text).path.lstrip("/"))
        if not database:
            raise ValueError(f"open_store({redacted(text)!r}) needs a database: give db=..., or name it in the URI "
                             f"(mongodb://host/DATABASE).")
        return MongoDBStore(database, collection_name=collection, host=text, read_only=read_only, **options)
    if _URL.match(text):
        raise ValueError(f"open_store cannot open {redacted(text)!r}: use a directory path or a mongodb:// or "
                         f"mongodb+srv:// URI.")
    if db is not None or collection is not None:
        raise ValueError(f"open_store({text!r}): db and collection apply to mongodb:// stores only; a path is a "
                         f"LocalFileStore directory.")
    from fluidml.storage.files import LocalFileStore

    return LocalFileStore(text, read_only=read_only, **options)
