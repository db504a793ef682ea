"""The ``fluidml`` command group and what its commands share: opening the STORE argument, parsing
``--where``, and turning errors into one line and an exit code.

Exit codes: 0 done; 1 the store failed (e.g. its server is unreachable) or the user said no;
2 an unknown store, task, run, object or column, or a malformed argument.
"""

import os
from typing import Any, Callable, Dict, Optional, Sequence

import click

__all__ = ["CliError", "cli", "open_target", "parse_where", "run_command", "store_arguments"]

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class CliError(click.ClickException):
    """A bad argument or an unknown name: one line on stderr, exit code 2."""

    exit_code = 2


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="fluidml", message="fluidml %(version)s")
def cli() -> None:
    """Inspect and compare the results that fluidml flows stored.

    STORE is a results directory (a LocalFileStore) or a mongodb:// URI (with --db and
    --collection, or the database in the URI's path).

    \b
    Examples:
      fluidml ls fluidml-results                         tasks and their runs per state
      fluidml ls fluidml-results evaluate                the runs of one task
      fluidml compare fluidml-results evaluate --sort accuracy
      fluidml show fluidml-results evaluate exp-1-003    one run: config, info, objects
      fluidml graph examples/digits.py:make_flow         a flow's task graph
    """


def store_arguments(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Adds the STORE argument and the --db / --collection options of MongoDB stores."""
    fn = click.option("--collection", metavar="NAME", default=None,
                      help="MongoDB collection (default: task_result).")(fn)
    fn = click.option("--db", metavar="NAME", default=None,
                      help="MongoDB database (or give it in the URI: mongodb://host/NAME).")(fn)
    return click.argument("store", metavar="STORE")(fn)


def open_target(target: str, db: Optional[str], collection: Optional[str], writable: bool = False) -> Any:
    """The store STORE names (read-only unless ``writable``); CliError if there is none there."""
    from fluidml.storage import open_store
    from fluidml.storage._open import redacted

    is_uri = "://" in target
    if not is_uri and (db is not None or collection is not None):
        raise CliError(f"--db and --collection apply to mongodb:// stores; {target} is a directory path.")
    if not is_uri and not os.path.isdir(target):
        what = "is not a directory" if os.path.exists(target) else "does not exist"
        raise CliError(f"No store at {target}: the path {what}. STORE is a results directory or a mongodb:// URI.")
    try:
        store = open_store(target, db=db, collection=collection, read_only=not writable)
    except ValueError as error:
        raise CliError(str(error)) from None
    if not store.task_names():
        where = (f'database "{getattr(store, "db", "?")}", collection "{getattr(store, "collection_name", "?")}" '
                 f"at {redacted(target)}") if is_uri else target
        raise CliError(f"No runs in the store {where}: it holds no task runs. Check the "
                       f"{'--db and --collection' if is_uri else 'path'}.")
    return store


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
        cli.main(args=args, prog_name="fluidml", standalone_mode=False)
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

