"""The ``fluidml`` command: look into results stores (``ls``, ``show``, ``compare``, ``rm``), check
them (``verify``), say what a run of a flow would do (``status``) and draw flows (``graph``). Each command is a thin layer over ``fluidml.results`` and
``fluidml.visualization``; heavy modules are imported only by the command that needs them, so
``fluidml --help`` starts quickly.
"""

import sys
from typing import NoReturn, Optional, Sequence

from fluidml.cli import checks, commands  # noqa: F401  (registers the commands on the group)
from fluidml.cli._app import cli, run_command

__all__ = ["cli", "main"]


def main(args: Optional[Sequence[str]] = None) -> NoReturn:
    """Entry point of the ``fluidml`` console script."""
    sys.exit(run_command(args))
