"""The commands of ``fluidml``: each parses its arguments, calls the public functions of
``fluidml.results`` (or ``fluidml.visualization``) and prints. ``ls``, ``show`` and ``compare`` open
the store read-only, so they never write to it.

A new command is one function here (or in its own module imported by ``fluidml.cli``) decorated
with ``@cli.command()``.
"""

import json
from typing import Any, Optional, Tuple

import click

from fluidml.cli._app import CliError, StoreTarget, cli, open_target, parse_where, store_arguments
from fluidml.cli._render import FORMATS, cell_text, print_rows, print_table, size_text

__all__ = ["compare", "graph", "ls", "rm", "show"]

#: Rows shown in the table format unless --limit says otherwise.
DEFAULT_LIMIT = 100
#: States in the order ls shows their columns (others follow, sorted).
STATE_ORDER = ("finished", "failed", "killed", "running", "upstream_failed", "pending", "scheduled")

_format = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                       help="table for people; csv, json (a list of row objects) or markdown for scripts.")
_limit = click.option("--limit", type=click.IntRange(min=0), default=None, metavar="N",
                      help=f"Show at most N rows (table format: {DEFAULT_LIMIT} unless given; 0: all).")
_where = click.option("--where", multiple=True, metavar="COLUMN=VALUE",
                      help="Keep runs whose COLUMN (as printed, or config.TASK.KEY) has VALUE; repeatable.")
_state = click.option("--state", multiple=True, metavar="STATE",
                      help="Keep runs in this state (finished, failed, killed, running); repeatable.")


def _rows_limit(fmt: str, limit: Optional[int]) -> Optional[int]:
    if limit is not None:
        return limit or None
    return DEFAULT_LIMIT if fmt == "table" else None


def _constants_note(constants: dict) -> Optional[str]:
    if not constants:
        return None
    return "same in every run: " + ", ".join(f"{k}={cell_text(k, v)}" for k, v in constants.items())


@cli.command()
@store_arguments
@click.argument("task", required=False)
@_where
@_state
@click.option("--sort", metavar="COLUMN", default=None, help="Order by COLUMN, highest first.")
@click.option("--ascending", is_flag=True, help="With --sort: lowest first.")
@_format
@_limit
def ls(store: StoreTarget, task: Optional[str], where: Tuple[str, ...],
       state: Tuple[str, ...], sort: Optional[str], ascending: bool, fmt: str, limit: Optional[int]) -> None:
    """List the tasks of STORE with their runs per state, or the runs of TASK.

    The runs of a task are listed with their id, state, start, duration, unique name, config hash
    and the config values that differ between them (in the order they started).

    \b
    Examples:
      fluidml ls fluidml-results
      fluidml ls fluidml-results train --state failed
      fluidml ls mongodb://127.0.0.1:27017 --db experiments train --format csv
    """
    from fluidml.results import sweep_rows, task_counts
    from fluidml.storage._open import redacted

    opened = open_target(store)
    if task is None:
        if where or state or sort:
            raise CliError("--where, --state and --sort need a TASK: fluidml ls STORE TASK ...")
        counts = task_counts(opened)
        states = sorted({s for c in counts.values() for s in c},
                        key=lambda s: (STATE_ORDER.index(s) if s in STATE_ORDER else len(STATE_ORDER), s))
        rows = [{"task": name, "runs": sum(c.values()), **{s: c.get(s, 0) for s in states}}
                for name, c in counts.items()]
        print_rows(["task", "runs", *states], rows[:_rows_limit(fmt, limit)], fmt, len(rows), title=redacted(store.target))
        return
    table = sweep_rows(opened, task, objects=[], where=parse_where(where), state=list(state), sort=sort,
                       ascending=ascending, limit=_rows_limit(fmt, limit))
    print_rows(table.columns, table.rows, fmt, table.total, title=f"{task} in {redacted(store.target)}",
               note=_constants_note(table.constants))


@cli.command()
@store_arguments
@click.argument("task")
@click.option("--metric", "metrics", multiple=True, metavar="OBJECT",
              help="A saved object to show (a number, string or dict of them); repeatable. Default: the small "
                   "ones (JSON up to 64 KiB, pickles up to 512 bytes).")
@click.option("--sort", metavar="COLUMN", default=None, help="Order by COLUMN, highest first.")
@click.option("--ascending", is_flag=True, help="With --sort: lowest first (e.g. for losses).")
@_where
@_state
@_format
@_limit
def compare(store: StoreTarget, task: str, metrics: Tuple[str, ...],
            sort: Optional[str], ascending: bool, where: Tuple[str, ...], state: Tuple[str, ...], fmt: str,
            limit: Optional[int]) -> None:
    """Print the sweep table of TASK: one row per run, the config values that differ, and the
    saved results.

    Config columns are config.TASK.KEY, the task's own keys just KEY; results are OBJECT or
    OBJECT.FIELD for dicts (result.OBJECT where the name is taken). --where and --sort take these
    names. Objects larger than 1 MB are never loaded.

    \b
    Examples:
      fluidml compare fluidml-results evaluate --sort accuracy
      fluidml compare fluidml-results train --metric metrics --sort metrics.loss --ascending
      fluidml compare fluidml-results evaluate --where config.train.C=1.0 --format json
    """
    from fluidml.results import sweep_rows
    from fluidml.storage._open import redacted

    opened = open_target(store)
    table = sweep_rows(opened, task, objects=list(metrics) or None, where=parse_where(where), state=list(state),
                       sort=sort, ascending=ascending, limit=_rows_limit(fmt, limit))
    print_rows(table.columns, table.rows, fmt, table.total, title=f"{task} in {redacted(store.target)}",
               note=_constants_note(table.constants))


@cli.command()
@store_arguments
@click.argument("task")
@click.argument("run")
@click.option("--object", "object_name", metavar="NAME", default=None,
              help="Print this saved object: JSON and text as they are, other objects as a short repr.")
def show(store: StoreTarget, task: str, run: str,
         object_name: Optional[str]) -> None:
    """Show one run of TASK: its unique config, its info (state, times, where it ran, the error
    and traceback of a failed run) and its saved objects with types and sizes.

    RUN is the run's id in the store (e.g. exp-1-004), its config hash, or the start of either.

    \b
    Examples:
      fluidml show fluidml-results evaluate exp-1-003
      fluidml show fluidml-results evaluate 3at5 --object accuracy
    """
    from fluidml.results import find_run, run_extras, run_hash, run_state

    opened = open_target(store)
    record = find_run(opened, task, run)
    if object_name is not None:
        _print_object(opened, record, object_name)
        return
    info = record.info or {}
    extra = run_extras(info)
    facts = [("task", task), ("run", record.run_id), ("state", run_state(record)), ("hash", run_hash(record)),
             ("unique name", extra.get("unique_name")), ("started", _time(info.get("started"))),
             ("ended", _time(info.get("ended"))), ("duration", _duration(info.get("duration"))),
             ("project", info.get("project_name")), ("run name", info.get("run_name")), ("host", extra.get("host")),
             ("pid", extra.get("pid")), ("worker", extra.get("worker")), ("fluidml", extra.get("version")),
             ("location", record.location)]
    print_table(["", ""], [[k, str(v)] for k, v in facts if v not in (None, "")], header=False)
    click.echo("config:")
    click.echo(json.dumps(record.unique_config, indent=2))
    objects = record.objects
    if objects:
        print_table(["object", "type", "size"],
                    [[name, meta.type or "?", size_text(meta.size)] for name, meta in objects.items()])
    else:
        click.echo("objects: none saved")
    error = extra.get("error")
    if isinstance(error, dict):
        click.echo(f"error: {error.get('type')}: {error.get('message')}")
        if error.get("traceback"):
            click.echo(str(error["traceback"]).rstrip())


def _time(value: Any) -> Optional[str]:
    return value.replace("T", " ") if isinstance(value, str) else value


def _duration(value: Any) -> Optional[str]:
    from fluidml.results import duration_seconds

    seconds = duration_seconds(value)
    return cell_text("duration", seconds) if seconds is not None else value


def _print_object(store: Any, record: Any, name: str) -> None:
    from fluidml.exception import UnknownNameError

    meta = record.objects.get(name)
    if meta is None:
        raise UnknownNameError(f'Run {record.run_id} of task "{record.task_name}" saved no object "{name}"; its '
                               f"objects: {', '.join(record.objects) or 'none'}.", task_name=record.task_name, key=name)
    value = store.load(name, record.task_name, record.unique_config)
    if meta.type == "json":
        click.echo(json.dumps(value, indent=2))
    elif isinstance(value, str):
        click.echo(value)
    else:
        text = repr(value)
        cut = f"... ({len(text)} characters)" if len(text) > 2000 else ""
        click.echo(f"{type(value).__module__}.{type(value).__qualname__} ({meta.type}, {size_text(meta.size)}):")
        click.echo(text[:2000] + cut)


@cli.command()
@store_arguments
@click.argument("task")
@click.argument("runs", nargs=-1, metavar="[RUN]...")
@_where
@_state
@click.option("--all", "every", is_flag=True, help="Every run of TASK.")
@click.option("--with-successors", is_flag=True, help="Also the runs of other tasks built on them.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before deleting.")
def rm(store: StoreTarget, task: str, runs: Tuple[str, ...],
       where: Tuple[str, ...], state: Tuple[str, ...], every: bool, with_successors: bool, yes: bool) -> None:
    """Delete runs of TASK: the RUNs named (id, hash, or the start of either), those that pass
    --where/--state, or --all; asks first unless --yes.

    With --with-successors, also the runs of other tasks built on them: a run whose unique config
    holds the deleted run's config (for a reduce run: where the deleted run is one of its members).

    \b
    Examples:
      fluidml rm fluidml-results train --state failed
      fluidml rm fluidml-results train exp-1-002 --with-successors --yes
    """
    from fluidml.results import delete_runs, run_hash, select_runs, successor_runs

    if bool(runs) + bool(where or state) + every != 1:
        raise CliError("Name the runs to delete in one way: RUN..., --where/--state, or --all.")
    opened = open_target(store, writable=True)
    chosen = select_runs(opened, task, runs, where=parse_where(where), state=list(state))
    if not chosen:
        click.echo(f'No run of task "{task}" matches; nothing deleted.')
        return
    successors = successor_runs(opened, task, chosen) if with_successors else []
    doomed = [*successors, *chosen]  # successors first: no run is left built on a deleted one
    click.echo(f"{len(doomed)} run{'s' if len(doomed) != 1 else ''} to delete:")
    for record in doomed:
        click.echo(f"  {record.task_name}/{record.run_id} (config {run_hash(record)})")
    if not yes:
        click.confirm("Delete them?", abort=True)
    for record in delete_runs(opened, doomed):
        click.echo(f"deleted {record.task_name}/{record.run_id}")


@cli.command()
@click.argument("target", metavar="MODULE:OBJECT")
@click.option("--unicode", "use_unicode", is_flag=True, help="Draw with box-drawing characters.")
@click.option("--html", "html", metavar="FILE", default=None, help="Write an interactive HTML view to FILE instead.")
@click.option("--specs", is_flag=True, help="Draw the spec graph (one node per TaskSpec), not the expanded tasks.")
def graph(target: str, use_unicode: bool, html: Optional[str], specs: bool) -> None:
    """Draw the task graph of a flow. OBJECT is a Flow or a function that returns one, in MODULE
    (a module name, importable from here, or a .py file).

    \b
    Examples:
      fluidml graph examples/digits.py:make_flow
      fluidml graph my_project.pipeline:flow --unicode
      fluidml graph examples/digits.py:make_flow --html graph.html
    """
    from fluidml.cli._flows import load_flow

    flow = load_flow(target)
    drawn = flow.task_spec_graph if specs else flow.task_graph
    if html is not None:
        from fluidml.visualization import visualize_graph_interactive

        path = visualize_graph_interactive(drawn, filename=html, open_browser=False)
        click.echo(f"wrote {path}")
        return
    from fluidml.visualization import render_graph

    click.echo(render_graph(drawn, use_unicode=use_unicode))

