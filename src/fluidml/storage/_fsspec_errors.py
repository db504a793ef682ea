"""What an ``FsspecStore`` says when its file system fails, and what it never says (secrets).

fsspec and the protocol's package (s3fs, gcsfs, adlfs) are imported on first use, with the command
that installs them when they are missing. Errors of the file system become ``ResultsStoreError``s
that name the store's URL, the endpoint, what was being done and what to do: a missing bucket, access
denied, a service that cannot be reached. URLs are shown without user info or query strings, and the
value of every storage option whose name says it is secret is replaced by ``***`` in the text.
"""

import re
from typing import Any, List, Optional

from fluidml.exception import ResultsStoreError

__all__ = ["S3_CONFIG", "bucket_missing", "import_driver", "is_storage_error", "safe_url", "secrets",
           "storage_error"]

#: The package and the fluidml extra that bring each protocol.
_DRIVERS = {"s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3"), "gs": ("gcsfs", "gcs"), "gcs": ("gcsfs", "gcs"),
            "abfs": ("adlfs", "azure"), "abfss": ("adlfs", "azure"), "az": ("adlfs", "azure")}
#: S3 client settings unless the storage options give their own: an unreachable endpoint fails in
#: seconds (3 attempts), not after botocore's default minute.
S3_CONFIG = {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 3, "mode": "standard"}}
_SECRET_WORDS = ("key", "secret", "token", "password", "passwd", "credential", "sas", "signature", "connection")
_CONNECTION_ERRORS = {"ConnectionError", "EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError",
                      "ClientConnectorError", "ClientConnectionError", "ServerDisconnectedError", "TimeoutError",
                      "FSTimeoutError", "ClientOSError"}


def import_driver(protocol: str) -> None:
    """Imports fsspec and the package of ``protocol``; an ImportError says how to install them."""
    try:
        import fsspec  # noqa: F401
    except ImportError as error:
        raise ImportError(f'FsspecStore needs fsspec, which is not installed ({error}). Install it with: '
                          f'pip install "fluidml[s3]" (or [gcs], [azure]), or pip install fsspec') from error
    package, extra = _DRIVERS.get(protocol, (None, None))
    if package is not None:
        try:
            __import__(package)
        except ImportError as error:
            raise ImportError(f'FsspecStore needs {package} for {protocol}:// URLs, which is not installed '
                              f'({error}). Install it with: pip install "fluidml[{extra}]"') from error


def safe_url(url: str) -> str:
    """The URL without user info (``user:password@``) or query (signatures, SAS tokens)."""
    url = re.sub(r"^([a-zA-Z][\w+.-]*://)[^/@]*@", r"\1", url)
    return url.split("?", 1)[0]


def secrets(options: Any) -> List[str]:
    """The string values of options whose names say they are secret, in nested dicts too."""
    found: List[str] = []
    if isinstance(options, dict):
        for name, value in options.items():
            if isinstance(value, dict):
                found.extend(secrets(value))
            elif isinstance(value, str) and len(value) >= 4 and any(w in str(name).lower() for w in _SECRET_WORDS):
                found.append(value)
    return found


def bucket_missing(error: BaseException) -> bool:
    """Whether a FileNotFoundError says that the bucket itself does not exist (S3's NoSuchBucket)."""
    return "specified bucket does not exist" in str(error).lower()


def is_storage_error(error: BaseException) -> bool:
    """True for failures of the storage service (unreachable, access denied), not of the data."""
    names = {cls.__name__ for cls in type(error).__mro__}
    return isinstance(error, PermissionError) or bool(names & _CONNECTION_ERRORS) or (
        isinstance(error, FileNotFoundError) and bucket_missing(error))


def storage_error(error: BaseException, action: str, where: str, url: str, endpoint: Optional[str],
                  secret_values: List[str]) -> ResultsStoreError:
    """The error for ``error`` of the file system while ``action`` (e.g. "writing") ``where`` (a URL)."""
    reason = f"{type(error).__name__}: {error}"
    for secret in secret_values:
        reason = reason.replace(secret, "***")
    at = f" at {endpoint}" if endpoint else ""
    names = {cls.__name__ for cls in type(error).__mro__}
    if isinstance(error, FileNotFoundError):
        bucket = url.split("://", 1)[-1].split("/", 1)[0]
        text = (f'The bucket "{bucket}" of {url}{at} does not exist ({action} {where}: {reason}). Create it (for '
                f"example `aws s3 mb s3://{bucket}`, with --endpoint-url for another S3 service), or give "
                f"FsspecStore the URL of an existing bucket.")
    elif isinstance(error, PermissionError):
        text = (f"Access denied while {action} {where}{at} ({reason}). The credentials FsspecStore uses (its "
                f"storage options or the environment) need to read, write, list and delete objects under {url}.")
    elif names & _CONNECTION_ERRORS:
        text = (f"The storage service{at or ' of ' + url} cannot be reached while {action} {where} ({reason}). "
                f"Check that it is running and reachable from this machine, and that the endpoint in "
                f"FsspecStore's options is right; finished runs stay stored.")
    else:
        text = f"{action.capitalize()} {where} failed ({reason})."
    return ResultsStoreError(text)
