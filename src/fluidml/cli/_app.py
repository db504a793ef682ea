"""The ``fluidml`` command group and what its commands share: opening the STORE argument, parsing
``--where``, and turning errors into one line and an exit code.

Exit codes: 0 done; 1 the store failed (e.g. its server is unreachable) or the user said no;
2 an unknown store, task, run, object or column, or a malformed argument.
"""

import functools
import os
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence, Tuple

import click

__all__ = ["CliError", "StoreTarget", "cli", "open_target", "parse_where", "run_command", "store_arguments"]

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class CliError(click.ClickException):
    """A bad argument or an unknown name: one line on stderr, exit code 2."""

    exit_code = 2


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="fluidml", message="fluidml %(version)s")
def cli() -> None:
    """Inspect and compare the results that fluidml flows stored.

    STORE is a results directory (a LocalFileStore), a mongodb:// URI (with --db and
    --collection, or the database in the URI's path), or an object-storage URL such as
    s3://bucket/prefix (an FsspecStore; -o endpoint_url=... and other storage options).

    \b
    Examples:
      fluidml ls fluidml-results                         tasks and their runs per state
      fluidml ls fluidml-results evaluate                the runs of one task
      fluidml compare fluidml-results evaluate --sort accuracy
      fluidml show fluidml-results evaluate exp-1-003    one run: config, info, objects
      fluidml graph examples/digits.py:make_flow         a flow's task graph
      fluidml status examples/digits.py:make_flow fluidml-results   what a run would do, and why
      fluidml verify fluidml-results                     damaged runs (--repair: redo them)
    """


class StoreTarget(NamedTuple):
    """The store a command line names: STORE and its --db, --collection and -o options."""

    target: str
    db: Optional[str]
    collection: Optional[str]
    options: Tuple[str, ...]


def store_arguments(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Adds the STORE argument with the --db / --collection options of MongoDB stores and the -o
    storage options of object stores; the command gets them as one ``StoreTarget`` (``store``)."""

    @functools.wraps(fn)
    def command(store: str, db: Optional[str], collection: Optional[str], option: Tuple[str, ...],
                **kwargs: Any) -> Any:
        return fn(store=StoreTarget(store, db, collection, option), **kwargs)

    wrapped: Callable[..., Any] = command
    wrapped = click.option("--option", "-o", "option", multiple=True, metavar="KEY=VALUE",
                           help="A storage option of an object store (e.g. -o endpoint_url=http://host:9000); "
                                "repeatable.")(wrapped)
    wrapped = click.option("--collection", metavar="NAME", default=None,
                           help="MongoDB collection (default: task_result).")(wrapped)
    wrapped = click.option("--db", metavar="NAME", default=None,
                           help="MongoDB database (or give it in the URI: mongodb://host/NAME).")(wrapped)
    return click.argument("store", metavar="STORE")(wrapped)


def open_target(store: StoreTarget, writable: bool = False, must_hold_runs: bool = True) -> Any:
    """The store STORE names (read-only unless ``writable``); CliError if there is none there (or,
    with ``must_hold_runs``, if it holds no run: most likely a wrong path or URL)."""
    from fluidml.storage import open_store
    from fluidml.storage._open import redacted

    target, db, collection = store.target, store.db, store.collection
    is_uri = "://" in target
    if not target.startswith(("mongodb://", "mongodb+srv://")) and (db is not None or collection is not None):
        raise CliError(f"--db and --collection apply to mongodb:// stores; {redacted(target)} is not one.")
    if not is_uri and not os.path.isdir(target) and (must_hold_runs or os.path.exists(target)):
        what = "is not a directory" if os.path.exists(target) else "does not exist"
        raise CliError(f"No store at {target}: the path {what}. STORE is a results directory, a mongodb:// URI "
                       f"or an object-storage URL (s3://bucket/prefix).")
    options = {}
    for item in store.options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"-o {item!r} is not KEY=VALUE (e.g. -o endpoint_url=http://127.0.0.1:9000).")
        options[key] = value
    if options and not is_uri:
        raise CliError(f"-o storage options apply to object-storage URLs; {target} is a directory path.")
    try:
        store_object = open_store(target, db=db, collection=collection, read_only=not writable, **options)
    except (ValueError, ImportError) as error:
        raise CliError(str(error)) from None
    return _with_runs(store_object, target, is_uri) if must_hold_runs else store_object


def _with_runs(store: Any, target: str, is_uri: bool) -> Any:
    """The store, or CliError when it holds no run (most likely the wrong place)."""
    from fluidml.storage._open import redacted

    if store.task_names():
        return store
    if target.startswith(("mongodb://", "mongodb+srv://")):
        where = (f'database "{getattr(store, "db", "?")}", collection "{getattr(store, "collection_name", "?")}" '
                 f"at {redacted(target)}")
        check = "--db and --collection"
    else:
        where, check = redacted(target), "URL" if is_uri else "path"
    raise CliError(f"No runs in the store {where}: it holds no task runs. Check the {check}.")


def parse_where(items: Sequence[str]) -> Dict[str, str]:
    """``("C=0.1", "state=finished")`` -> ``{"C": "0.1", "state": "finished"}``."""
    where: Dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"--where {item!r} is not COLUMN=VALUE (e.g. --where C=0.1).")
        if name in where:
            raise CliError(f"--where names the column {name!r} twice.")
        where[name] = value
    return where


def run_command(args: Optional[Sequence[str]] = None) -> int:
    """Runs the command line; returns its exit code (errors become one line on stderr)."""
    from fluidml.exception import FluidmlError, UnknownNameError

    try:
        code = cli.main(args=args, prog_name="fluidml", standalone_mode=False)
        if isinstance(code, int):  # (a command that raised click's Exit: its code)
            return code
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.UsageError as error:
        hint = f" (see: {error.ctx.command_path} --help)" if error.ctx is not None else ""
        return _fail(f"{error.format_message()}{hint}", 2)
    except click.ClickException as error:
        return _fail(error.format_message(), error.exit_code)
    except click.Abort:
        return _fail("Aborted: nothing was changed.", 1)
    except (UnknownNameError, NotImplementedError, ValueError) as error:
        return _fail(str(error), 2)
    except (FluidmlError, OSError) as error:
        return _fail(str(error), 1)
    return 0


def _fail(message: str, code: int) -> int:
    click.echo(f"Error: {' '.join(message.split())}", err=True)
    return code

