"""Start-up cost of ``fluidml --help``: what the console script runs (``fluidml.cli.main``), as the
median of N fresh interpreters minus the median of N running ``python -c pass`` (as bench_import)."""

from _common import emit, parse_args
from bench_import import start_up

HELP = "import sys; from fluidml.cli import main; sys.argv[0] = 'fluidml'; main(['--help'])"


def main() -> None:
    args = parse_args(__doc__, "number of fresh interpreters N")
    emit({"scenario": "cli_help", "n": args.size, **start_up(["-c", HELP], args.size)})


if __name__ == "__main__":
    main()
