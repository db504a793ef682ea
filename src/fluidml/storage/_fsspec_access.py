"""How an ``FsspecStore`` reaches its file system: one ``FileAccess`` per store and process.

It turns a URL and storage options into an fsspec file system (fsspec and the protocol's package are
imported here, on first use, with an install hint) and offers the few operations the store needs, with
few requests and the guarantees object storage allows:

- a whole small object is read with one GET (``cat``) and written with one PUT (``pipe``);
- ``create`` writes an object only if none exists (S3 ``If-None-Match: *``, a hard link on a local
  disk, a lock in memory): sweep counters and runs are claimed that way, without a lock;
- large objects stream a piece at a time (``open_write``: multipart uploads on S3; ``open_read``:
  ranged reads) and appear under their name only when complete (``Sink.commit``);
- listings cost one request per 1000 keys on S3 (``list_objects_v2``, with or without a delimiter).

Every failure of the file system becomes a ``ResultsStoreError`` that names the URL and says what to
do; the values of secret storage options never appear in it.
"""

import contextlib
import errno
import io
import os
import shutil
import threading
from typing import Any, Dict, Iterator, List, Optional, Tuple

from fluidml.exception import FluidmlError, ResultsStoreError
from fluidml.storage._filetypes import remove_path, replace_into_place, temp_path, write_new_file
from fluidml.storage._fsspec_errors import S3_CONFIG, bucket_missing, import_driver, safe_url, secrets, storage_error

__all__ = ["PIECE", "READ_PIECE", "FileAccess", "Sink"]

#: Bytes per piece of a streamed write (the part size of S3 multipart uploads: 80 GB objects at most)
#: and objects read with one request.
PIECE = 8 << 20
#: Bytes per request of a streamed read (what a large read holds on top of its target).
READ_PIECE = 4 << 20
_memory_lock = threading.Lock()  # memory:// lives in this process: its conditional creates need only a lock


class Sink:
    """A binary file being written; the object appears under its name on ``commit()`` only."""

    def __init__(self, file: Any, commit: Any, discard: Any):
        self.file = file
        self._commit, self._discard = commit, discard

    def write(self, data: Any) -> int:
        return self.file.write(data)

    def commit(self) -> None:
        self._commit()

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._discard()


class _PieceReader(io.RawIOBase):
    """Reads an fsspec file at most one piece per request, so that a large read into a buffer (as
    ``pickle`` does for a large array) never holds a second copy of the whole object."""

    def __init__(self, file: Any):
        self._file = file

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._file.read(min(view.nbytes, READ_PIECE))
        view[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


class FileAccess:
    """The file system of one store, in one process (see the module docstring).

    Args:
        url: The store's URL (``s3://bucket/prefix``, ``memory://name``, ``file:///path`` or a path).
        options: Storage options for the fsspec file system (credentials, ``endpoint_url``, ...).
    """

    def __init__(self, url: str, options: Dict[str, Any]):
        protocol = url.split("://", 1)[0].lower() if "://" in url else "file"
        import_driver(protocol)
        import fsspec.core

        options = dict(options)
        options.setdefault("use_listings_cache", False)  # other processes change the store: never cache listings
        if protocol in ("s3", "s3a"):
            options["config_kwargs"] = {**S3_CONFIG, **(options.get("config_kwargs") or {})}
        self.url = safe_url(url).rstrip("/")
        self._secrets = secrets(options)
        with self.guard("opening", None):
            self.fs, root = fsspec.core.url_to_fs(url, **options)
        self.root = root.rstrip("/") or root
        names = {type(self.fs).__name__}
        self.kind = ("local" if "LocalFileSystem" in names else "memory" if "MemoryFileSystem" in names
                     else "s3" if "S3FileSystem" in names else "other")
        #: Whether objects can be appended to in place (E4: elsewhere ``open(mode="a")`` is refused).
        self.can_append = self.kind in ("local", "memory")
        self.endpoint = safe_url(str(options.get("endpoint_url") or (options.get("client_kwargs") or {})
                                     .get("endpoint_url") or "")) or None

    def check(self) -> None:
        """Fails at once, with a clear error, if an S3 bucket is missing or may not be listed (one
        request, needing the s3:ListBucket permission that the store needs anyway)."""
        if self.kind != "s3":
            return
        bucket, key, _ = self.fs.split_path(self.root)
        with self.guard("opening", self.root):
            try:
                self.fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=key.rstrip("/") + "/", MaxKeys=1)
            except FileNotFoundError:
                raise FileNotFoundError(f"The specified bucket does not exist: {bucket}") from None

    # ------------------------------------------------------------------------------ naming, errors

    def path(self, *parts: str) -> str:
        """The file system path of ``parts`` under the store's root."""
        return "/".join([self.root, *[p.strip("/") for p in parts if p and p != "."]])

    def url_of(self, path: Optional[str]) -> str:
        """The URL of a path of this store, for messages."""
        if path is None or path == self.root:
            return self.url
        return self.url + "/" + path[len(self.root):].lstrip("/") if path.startswith(self.root) else path

    @contextlib.contextmanager
    def guard(self, action: str, path: Optional[str]) -> Iterator[None]:
        """Turns file system errors into a ``ResultsStoreError`` naming the URL and what to do. A
        ``FileNotFoundError`` of a missing object passes (callers decide) unless the bucket is missing."""
        try:
            yield
        except FluidmlError:
            raise
        except Exception as error:
            if isinstance(error, FileNotFoundError) and not bucket_missing(error):
                raise
            raise self.translate(error, action, path) from None

    def translate(self, error: Exception, action: str, path: Optional[str]) -> ResultsStoreError:
        """The ``ResultsStoreError`` for an error of the file system (see ``_fsspec_errors``)."""
        return storage_error(error, action, self.url_of(path), self.url, self.endpoint, self._secrets)

    # ------------------------------------------------------------------------------ whole objects

    def cat(self, path: str) -> Optional[bytes]:
        """The bytes of an object, or None if there is none."""
        with self.guard("reading", path):
            try:
                if self.kind == "local":
                    with open(path, "rb") as f:
                        return f.read()
                if self.kind == "s3":
                    return self.fs.cat_file(path, max_concurrency=1)  # one GET, no size probe
                return self.fs.cat_file(path)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                return None

    def pipe(self, path: str, data: bytes) -> None:
        """Writes a whole object (replacing one there is); it appears complete or not at all."""
        with self.guard("writing", path):
            if self.kind == "local":
                os.makedirs(os.path.dirname(path), exist_ok=True)
                temp = temp_path(path)
                try:
                    with open(temp, "wb") as f:
                        f.write(data)
                    os.replace(temp, path)
                except BaseException:
                    remove_path(temp)
                    raise
            else:
                self.fs.pipe_file(path, data)

    def create(self, path: str, data: bytes) -> bool:
        """Writes ``data`` to ``path`` only if no object is there; False if one is."""
        with self.guard("creating", path):
            if self.kind == "local":
                for _ in range(_DIRECTORY_RETRIES):
                    created = _create_local(path, data)
                    if created is not None:
                        return created
                raise FileNotFoundError(f"the directory of {path} is removed as often as it is made")
            if self.kind == "memory":
                with _memory_lock:
                    if self.fs.exists(path):
                        return False
                    self.fs.pipe_file(path, data)
                    return True
            try:
                self.fs.pipe_file(path, data, mode="create")
                return True
            except FileExistsError:
                return False

    # ------------------------------------------------------------------------------ listings

    def listing(self, path: str, dirs: bool) -> Tuple[Dict[str, int], List[str]]:
        """What lies under ``path``: (relative path -> size of every object below it, []), or with
        ``dirs`` (objects directly in it, names of its subdirectories)."""
        with self.guard("listing", path):
            if self.kind == "s3":
                return self._s3_listing(path, dirs)
            try:
                if dirs:
                    entries = self.fs.ls(path, detail=True)
                    files = {_base(e["name"]): e.get("size") or 0 for e in entries if e["type"] != "directory"}
                    return files, sorted(_base(e["name"]) for e in entries if e["type"] == "directory")
                found = self.fs.find(path, detail=True)
            except (FileNotFoundError, NotADirectoryError):
                return {}, []
            start = len(path.rstrip("/")) + 1
            return {name[start:]: info.get("size") or 0 for name, info in found.items()}, []

    def _s3_listing(self, path: str, dirs: bool) -> Tuple[Dict[str, int], List[str]]:
        bucket, key, _ = self.fs.split_path(path)
        prefix = key.rstrip("/") + "/" if key else ""
        files: Dict[str, int] = {}
        subdirs: List[str] = []
        token = None
        while True:
            kwargs: Dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
            if dirs:
                kwargs["Delimiter"] = "/"
            if token:
                kwargs["ContinuationToken"] = token
            page = self.fs.call_s3("list_objects_v2", **kwargs)
            files.update((item["Key"][len(prefix):], item["Size"]) for item in page.get("Contents", ()))
            subdirs.extend(p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", ()))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return files, sorted(subdirs)

    # ------------------------------------------------------------------------------ removal

    def remove(self, paths: List[str]) -> None:
        """Removes objects (missing ones are no error)."""
        if not paths:
            return
        with self.guard("deleting", paths[0]):
            if self.kind == "local":
                for path in paths:
                    remove_path(path)
            elif self.kind == "s3":
                bucket = self.fs.split_path(paths[0])[0]
                keys = [self.fs.split_path(path)[1] for path in paths]
                for start in range(0, len(keys), 1000):
                    self.fs.call_s3("delete_objects", Bucket=bucket, Delete={
                        "Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True})
            else:
                for path in paths:
                    with contextlib.suppress(FileNotFoundError):
                        self.fs.rm_file(path)

    def remove_tree(self, path: str) -> None:
        """Removes every object under ``path`` (and an object at ``path`` itself)."""
        if self.kind == "local":
            with self.guard("deleting", path):
                remove_path(path)
            return
        below = self.listing(path, dirs=False)[0]
        self.remove([path] + [f"{path}/{name}" for name in below])
        if self.kind == "s3":  # uploads a killed process left unfinished (they are invisible, but stored)
            bucket, key, _ = self.fs.split_path(path)
            with self.guard("deleting", path):
                pending = self.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=key + "/")
                for upload in pending.get("Uploads", ()):
                    self.fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=upload["Key"],
                                    UploadId=upload["UploadId"])

    # ------------------------------------------------------------------------------ streams

    def open_write(self, path: str, append: bool = False) -> Sink:
        """A sink for the object at ``path`` (``append``: after its bytes; local and memory only)."""
        with self.guard("writing", path):
            if self.kind == "local":
                os.makedirs(os.path.dirname(path), exist_ok=True)
                if append:
                    file = open(path, "ab")
                    return Sink(file, file.close, file.close)
                temp = temp_path(path)
                file = open(temp, "wb")

                def commit() -> None:
                    file.close()
                    replace_into_place(temp, path)

                def discard() -> None:
                    file.close()
                    remove_path(temp)

                return Sink(file, commit, discard)
            if self.kind == "memory":
                buffer = io.BytesIO((self.cat(path) or b"") if append else b"")
                buffer.seek(0, io.SEEK_END)
                return Sink(buffer, lambda: self.pipe(path, buffer.getvalue()), buffer.close)
            if append:
                raise ValueError("appending needs a local or memory file system")
            file = self.fs.open(path, "wb", block_size=PIECE)

            def drop() -> None:
                file.discard()
                file.closed = True  # nothing is committed when it is collected

            return Sink(file, lambda: self._guarded_close(file, path), drop)

    def _guarded_close(self, file: Any, path: str) -> None:
        with self.guard("writing", path):
            file.close()

    def open_read(self, path: str) -> Tuple[Any, Optional[int]]:
        """A binary file reading the object at ``path``, and the object's size (FileNotFoundError if
        there is none)."""
        with self.guard("reading", path):
            if self.kind == "local":
                file = open(path, "rb")
                return file, os.fstat(file.fileno()).st_size
            if self.kind == "memory":
                file = self.fs.open(path, "rb")
                return file, file.size
            file = self.fs.open(path, "rb", block_size=READ_PIECE, cache_type="none")
            return io.BufferedReader(_PieceReader(file), READ_PIECE), file.size

    def download(self, path: str, local: str) -> None:
        """Copies the object (or every object under ``path``) to the local path ``local``."""
        with self.guard("reading", path):
            files = {"": None} if self.cat_size(path) is not None else self.listing(path, dirs=False)[0]
            if not files:
                raise FileNotFoundError(path)
            for relative in files:
                target = os.path.join(local, *relative.split("/")) if relative else local
                os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
                source = self.open_read(f"{path}/{relative}" if relative else path)[0]
                with source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out, PIECE)

    def cat_size(self, path: str) -> Optional[int]:
        """The size of the object at ``path`` (None if there is none, e.g. a directory)."""
        with self.guard("reading", path):
            try:
                info = self.fs.info(path)
            except (FileNotFoundError, NotADirectoryError):
                return None
            return int(info.get("size") or 0) if info.get("type") != "directory" else None


def _base(name: str) -> str:
    return name.rstrip("/").rsplit("/", 1)[-1]


#: How often a local create remakes a directory that another process removed meanwhile (it removes
#: a run directory it lost to a concurrent process, which may be the one this process makes next).
_DIRECTORY_RETRIES = 20


def _create_local(path: str, data: bytes) -> Optional[bool]:
    """One attempt at an exclusive local create: True, False if ``path`` exists, None if its
    directory vanished between the steps (try again)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temp = temp_path(path)
    try:
        with open(temp, "wb") as f:
            f.write(data)
        os.link(temp, path)  # fails if the name exists: the create is atomic
        return True
    except FileExistsError:
        return False
    except FileNotFoundError:
        return None
    except OSError as error:  # no hard links here: an exclusive create, then the bytes
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        try:
            write_new_file(path, data)
        except FileExistsError:
            return False
        return True
    finally:
        remove_path(temp)
