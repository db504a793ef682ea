"""The commands that check rather than list: ``verify`` (is anything in a store damaged?) and
``status`` (what would a run of a flow do, and why?). Each calls one public function:
``fluidml.results.verify`` and ``Flow.plan``.
"""

from typing import Optional, Tuple

import click

from fluidml.cli._app import StoreTarget, cli, open_target, store_arguments
from fluidml.cli._render import FORMATS, print_rows

__all__ = ["status", "verify"]


@cli.command()
@store_arguments
@click.option("--task", "tasks", multiple=True, metavar="TASK", help="Check only this task's runs; repeatable.")
@click.option("--repair", is_flag=True, help="Mark the damaged runs not finished, so that the next run redoes them.")
def verify(store: StoreTarget, tasks: Tuple[str, ...], repair: bool) -> None:
    """Check every run of STORE without loading its objects: each listed object is there with the
    size and checksum it was saved with, and each info, list of objects and config is readable.
    One line per problem; exit code 1 when something is damaged (0 when nothing is, or after
    --repair). Read-only unless --repair.

    \b
    Examples:
      fluidml verify fluidml-results
      fluidml verify fluidml-results --task train --repair
    """
    from fluidml.results import verify as check_store

    opened = open_target(store, writable=repair)
    found = check_store(opened, repair=repair, tasks=list(tasks) or None)
    for damage in found:
        click.echo(str(damage))
    runs = len({(damage.task_name, damage.run_id) for damage in found})
    if not found:
        click.echo("No damage found.")
    elif repair:
        click.echo(f"{runs} damaged run{'s' if runs != 1 else ''} marked not finished: the next run redoes "
                   f"{'them' if runs != 1 else 'it'}.")
    else:
        click.echo(f"{runs} damaged run{'s' if runs != 1 else ''}; run again with --repair to have "
                   f"{'them' if runs != 1 else 'it'} redone.")
        raise click.exceptions.Exit(1)


@cli.command()
@click.argument("target", metavar="MODULE:OBJECT")
@store_arguments
@click.option("--force", multiple=True, metavar="TASK",
              help='As flow.run(force=...): a task name, "TASK+" (with its successors) or "all"; repeatable.')
@click.option("--cache", type=click.Choice(["config", "code"]), default="config", show_default=True,
              help="code: a change in a task's code re-runs it (as flow.run(cache=\"code\")).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="table for people; csv, json or markdown for scripts.")
def status(target: str, store: StoreTarget, force: Tuple[str, ...], cache: str, fmt: str) -> None:
    """Show what running the flow OBJECT of MODULE on STORE would do: for every task, whether it
    runs or is cached, and why (new config, code changed: ..., upstream runs: ..., failed last
    time, results missing, ...). Runs nothing and writes nothing.

    \b
    Examples:
      fluidml status examples/digits.py:make_flow fluidml-results
      fluidml status my_project.pipeline:flow results --cache code --force train
    """
    from fluidml.cli._flows import load_flow
    from fluidml.planner import plan_lines

    flow = load_flow(target)
    opened = open_target(store, must_hold_runs=False)
    forced: Optional[list] = list(force) or None
    entries = flow.plan(results_store=opened, force=forced, cache=cache)
    rows = [{"task": e.unique_name, "hash": e.config_hash, "runs": "runs" if e.runs else "cached",
             "reason": e.reason} for e in entries]
    if fmt == "table":
        for line in plan_lines(entries):
            click.echo(line)
    print_rows(["task", "hash", "runs", "reason"], rows, fmt)
