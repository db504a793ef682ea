"""``open_store``: the store a path or a URL names (what the ``fluidml`` command opens).

A path is a ``LocalFileStore``; ``mongodb://`` and ``mongodb+srv://`` URIs are a ``MongoDBStore``
(the database from ``db=`` or the URI's path, the collection from ``collection=``); any other URL
(``s3://``, ``gs://``, ``az://``, ``memory://``, ...) is an ``FsspecStore``. Targets are shown to
people through ``redacted``, which drops the password of a URI.
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
    """The results store at ``target``: a directory path (``LocalFileStore``), a ``mongodb://`` /
    ``mongodb+srv://`` URI (``MongoDBStore``; the database is ``db`` or the URI's path, the
    collection ``collection`` or the default), or any other fsspec URL such as ``s3://bucket/prefix``
    (``FsspecStore``; keyword arguments are its storage options, e.g. ``endpoint_url``).
    ``read_only=True`` gives a store that never writes. Other keyword arguments go to the store's
    constructor.

    >>> open_store("results")                                        # doctest: +SKIP
    >>> open_store("mongodb://db.example.org/experiments", read_only=True)   # doctest: +SKIP
    >>> open_store("s3://bucket/sweeps", endpoint_url="http://127.0.0.1:9000")   # doctest: +SKIP
    """
    text = os.fspath(target)
    if not isinstance(text, str) or not text:
        raise ValueError(f"open_store needs a directory path, a mongodb:// URI or an fsspec URL, got {target!r}.")
    if text.startswith(_MONGO_SCHEMES):
        from fluidml.storage.mongo import MongoDBStore

        database = db or unquote(urlsplit(text).path.lstrip("/"))
        if not database:
            raise ValueError(f"open_store({redacted(text)!r}) needs a database: give db=..., or name it in the URI "
                             f"(mongodb://host/DATABASE).")
        return MongoDBStore(database, collection_name=collection, host=text, read_only=read_only, **options)
    if db is not None or collection is not None:
        raise ValueError(f"open_store({redacted(text)!r}): db and collection apply to mongodb:// stores only.")
    if _URL.match(text) and not text.startswith("file://"):
        from fluidml.storage.fsspec_store import FsspecStore

        return FsspecStore(text, read_only=read_only, **options)
    from fluidml.storage.files import LocalFileStore

    return LocalFileStore(text[len("file://"):] if text.startswith("file://") else text, read_only=read_only,
                          **options)
