"""The FsspecStore tests' stores: the same store on the local S3 server, in memory and on a local path,
and an independent fsspec client to look at (or tamper with) what the store wrote."""

import hashlib
from typing import Any, Dict, Tuple

import fsspec
import pytest

from fluidml.storage import FsspecStore

BUCKET = "fluidml-tests"  # made by the s3_server fixture (conftest.py)

#: The kinds of file system the FsspecStore tests run on; "s3" needs the moto server (mark "s3").
KINDS = ["memory", pytest.param("s3", marks=pytest.mark.s3), "file"]


def unique(tmp_path: Any) -> str:
    return "t" + hashlib.md5(str(tmp_path).encode()).hexdigest()[:12]


def store_url(kind: str, tmp_path: Any) -> Tuple[str, Dict[str, Any]]:
    """The URL and storage options of a fresh store of ``kind`` for a test."""
    if kind == "memory":
        return f"memory://fluidml-tests/{unique(tmp_path)}", {}
    if kind == "s3":
        from conftest import S3

        return f"s3://{BUCKET}/{unique(tmp_path)}", S3["server"].options()
    return str(tmp_path / "store"), {}


class Raw:
    """An fsspec client of its own on a store's location (not the store's code)."""

    def __init__(self, url: str, options: Dict[str, Any]):
        self.fs, self.root = fsspec.core.url_to_fs(url, **{**options, "use_listings_cache": False,
                                                           "skip_instance_cache": True})
        self.root = self.root.rstrip("/")

    def keys(self, below: str = "") -> list:
        """Relative paths of every object under the store (or under ``below``)."""
        base = f"{self.root}/{below}".rstrip("/")
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        return sorted(path[len(self.root) + 1:] for path in found)

    def read(self, key: str) -> bytes:
        return self.fs.cat_file(f"{self.root}/{key}")

    def write(self, key: str, data: bytes) -> None:
        if "LocalFileSystem" in type(self.fs).__name__:
            self.fs.makedirs(f"{self.root}/{key}".rsplit("/", 1)[0], exist_ok=True)
        self.fs.pipe_file(f"{self.root}/{key}", data)

    def remove(self, key: str) -> None:
        self.fs.rm_file(f"{self.root}/{key}")

    def remove_tree(self, key: str) -> None:
        """Removes everything under ``key`` (on a local disk the directory too)."""
        for path in self.keys(key):
            self.remove(path)
        if self.fs.exists(f"{self.root}/{key}"):
            self.fs.rm(f"{self.root}/{key}", recursive=True)

    def exists(self, key: str) -> bool:
        return self.fs.exists(f"{self.root}/{key}")


@pytest.fixture(params=KINDS)
def kind(request) -> str:
    if request.param == "s3":
        request.getfixturevalue("s3_server")
    return request.param


@pytest.fixture
def location(kind, tmp_path):
    """(URL, storage options) of this test's store; a memory store is emptied afterwards."""
    url, options = store_url(kind, tmp_path)
    yield url, options
    if kind == "memory":
        memory = fsspec.filesystem("memory")
        path = "/fluidml-tests/" + unique(tmp_path)
        if memory.exists(path):
            memory.rm(path, recursive=True)


@pytest.fixture
def store(location) -> FsspecStore:
    url, options = location
    return FsspecStore(url, **options)


@pytest.fixture
def raw(location) -> Raw:
    return Raw(*location)
