"""Reading stores for people: sweep tables (one row per run, pandas optional), run listings, and
checking a store for damaged runs (``verify``).

Everything here works on the public store interface (``ResultsStore.task_names()``, ``runs()``,
``load()``, ``delete_run()``), so every store that lists its runs gets it. The ``fluidml`` command
is built on these functions.
"""

from fluidml.results._columns import duration_seconds, run_extras, run_hash, run_state
from fluidml.results.listing import delete_runs, find_run, select_runs, successor_runs, task_counts
from fluidml.results.tables import MAX_OBJECT_SIZE, SweepRows, sweep_rows, sweep_table
from fluidml.results.verify import verify

__all__ = [
    "MAX_OBJECT_SIZE", "SweepRows", "delete_runs", "duration_seconds", "find_run", "run_extras", "run_hash",
    "run_state", "select_runs", "successor_runs", "sweep_rows", "sweep_table", "task_counts", "verify",
]
