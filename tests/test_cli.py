"""The `fluidml` command, driven as users run it: the installed console script in a subprocess, against
real stores (a LocalFileStore, the store written by fluidml 0.3.4, the MongoDB test server, and a store
that another process is writing at that moment). Checks output, exit codes, and that the read
commands change nothing."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fluidml.storage import LocalFileStore
from mongo_server import free_port, mongo_db_name
from sweep_pipeline import EVALUATE_ROWS, make_flow

TESTS = Path(__file__).resolve().parent
SCRIPT = shutil.which("fluidml", path=os.path.dirname(sys.executable))
pytestmark = pytest.mark.skipif(
    SCRIPT is None, reason=f"the fluidml console script is not installed next to {sys.executable} "
                           f"(pip install -e '.[test]')")
COMMANDS = ["compare", "graph", "ls", "rm", "show", "status", "verify"]


def fluidml(*args, stdin="", cwd=None):
    """Runs the installed `fluidml` script; returns the completed process (text output)."""
    return subprocess.run([SCRIPT, *map(str, args)], capture_output=True, text=True, input=stdin, timeout=180,
                          cwd=cwd)


def as_json(*args):
    result = fluidml(*args, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def snapshot(path):
    """Every file and directory under ``path`` with its size and modification time."""
    return sorted((str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in Path(path).rglob("*"))


def without_times(rows):
    return [{k: v for k, v in row.items() if k not in ("started", "duration")} for row in rows]


@pytest.fixture
def grid(tmp_path):
    """A LocalFileStore with one run of the sweep pipeline."""
    make_flow().run(num_workers=1, run_name="exp", results_store=LocalFileStore(tmp_path / "grid"), progress=False)
    return tmp_path / "grid"


@pytest.fixture
def failing(tmp_path):
    """A LocalFileStore where the train runs with C=1.0 failed (and their successors did not run)."""
    make_flow(fail_C=1.0).run(num_workers=1, run_name="exp", results_store=LocalFileStore(tmp_path / "failing"),
                              exit_on_error=False, progress=False)
    return tmp_path / "failing"


@pytest.fixture
def original(tmp_path):
    """A copy of the store written by fluidml 0.3.4 (the committed fixture is never touched)."""
    target = tmp_path / "original_store"
    shutil.copytree(TESTS / "fixtures" / "original_store", target)
    return target


def test_every_command_has_help_with_an_example():
    """`fluidml --help` lists the commands; each command's --help shows an example of itself."""
    result = fluidml("--help")
    assert result.returncode == 0 and "Usage: fluidml" in result.stdout
    assert all(f"  {command} " in result.stdout for command in COMMANDS)
    for command in COMMANDS:
        result = fluidml(command, "--help")
        assert result.returncode == 0, result.stderr
        assert "Examples:" in result.stdout and f"fluidml {command} " in result.stdout.split("Examples:")[1]


def test_ls_lists_tasks_with_runs_per_state(failing):
    """`ls STORE` gives each task's run count per state, as a table and as JSON."""
    assert as_json("ls", failing) == [
        {"task": "Featurize", "runs": 2, "finished": 2, "failed": 0},
        {"task": "evaluate", "runs": 2, "finished": 2, "failed": 0},
        {"task": "train", "runs": 4, "finished": 2, "failed": 2},
    ]
    table = fluidml("ls", failing)
    assert table.returncode == 0
    lines = [line.split() for line in table.stdout.splitlines()]
    assert ["task", "runs", "finished", "failed"] in lines and ["train", "4", "2", "2"] in lines


def test_ls_task_lists_its_runs(failing):
    """`ls STORE TASK` lists run, state, start, duration, unique name, hash and the varying config."""
    result = fluidml("ls", failing, "train", "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["run", "state", "started", "duration", "unique_name", "hash", "C", "config.Featurize.n"]
    assert [row[:2] + row[4:] for row in rows[1:]] == [
        ["exp-000", "finished", "train-1", "6xakor9s", "0.1", "16"], ["exp-001", "failed", "train-2", "bmntohw9", "1.0", "16"],
        ["exp-002", "finished", "train-3", "3yy760s7", "0.1", "32"], ["exp-003", "failed", "train-4", "7q7trlw4", "1.0", "32"]]
    failed = as_json("ls", failing, "train", "--state", "failed")
    assert [row["unique_name"] for row in failed] == ["train-2", "train-4"]
    table = fluidml("ls", failing, "train")
    assert "same in every run: seed=42" in table.stdout
    assert [line.split()[:2] for line in table.stdout.splitlines()[3:5]] == [["exp-000", "finished"], ["exp-001", "failed"]]


def test_compare_prints_the_sweep_table(grid):
    """`compare` shows the varying config and the small results; --sort, --ascending, --where,
    --metric and every --format work on the printed column names."""
    rows = as_json("compare", grid, "evaluate", "--sort", "accuracy")
    assert without_times(rows) == sorted(EVALUATE_ROWS, key=lambda row: row["accuracy"], reverse=True)
    assert isinstance(rows[0]["duration"], float) and rows[0]["started"].startswith("20")
    losses = as_json("compare", grid, "evaluate", "--metric", "metrics", "--sort", "metrics.loss", "--ascending",
                     "--where", "config.train.C=1.0")
    assert [(row["unique_name"], row["metrics.loss"]) for row in losses] == [("evaluate-4", 0.34), ("evaluate-2", 0.42)]
    assert "accuracy" not in losses[0] and "config.train.C" not in losses[0]
    markdown = fluidml("compare", grid, "evaluate", "--sort", "accuracy", "--format", "markdown").stdout.splitlines()
    assert markdown[0].startswith("| run | state | started | duration | unique_name | hash | config.Featurize.n |")
    assert markdown[2].startswith("| exp-003 | finished |") and markdown[2].endswith("| 1.32 | 0.66 | 0.34 |")
    table = fluidml("compare", grid, "evaluate", "--sort", "accuracy", "--limit", "1")
    assert table.returncode == 0 and "3 more rows not shown (--limit 0 shows all)" in table.stdout
    assert "same in every run: config.train.seed=42" in table.stdout and "evaluate-4" in table.stdout
    assert "evaluate-1" not in table.stdout


def test_show_prints_config_info_objects_and_errors(failing):
    """`show` prints the unique config, the info with where it ran, the objects with types and sizes,
    and the error and traceback of a failed run; RUN may be a hash prefix; --object prints one object."""
    done = fluidml("show", failing, "train", "6xak")
    assert done.returncode == 0, done.stderr
    facts = {line.split(None, 1)[0]: line.split(None, 1)[1].strip() for line in done.stdout.splitlines()[:6]}
    assert facts == {"task": "train", "run": "exp-000", "state": "finished", "hash": "6xakor9s",
                     "unique": "name   train-1", "started": facts["started"]}
    assert '"C": 0.1' in done.stdout and '"seed": 42' in done.stdout
    assert ["model", "pickle", "2.0", "KB"] in [line.split() for line in done.stdout.splitlines()]
    assert ["worker", "main"] in [line.split() for line in done.stdout.splitlines()]
    failed = fluidml("show", failing, "train", "exp-001")
    assert failed.returncode == 0
    assert "error: ValueError: C=1.0 does not converge" in failed.stdout
    assert 'raise ValueError(f"C={C} does not converge")' in failed.stdout
    assert fluidml("show", failing, "evaluate", "exp-000", "--object", "metrics").stdout == \
        json.dumps({"f1": 0.13, "loss": 0.87}, indent=2) + "\n"
    accuracy = fluidml("show", failing, "evaluate", "exp-000", "--object", "accuracy")
    assert accuracy.stdout.splitlines() == ["builtins.float (pickle, 21 B):", "0.26"]


@pytest.mark.parametrize("args, message", [
    (["ls", "{tmp}/nowhere"], "No store at {tmp}/nowhere: the path does not exist."),
    (["ls", "{tmp}"], "No runs in the store {tmp}: it holds no task runs."),
    (["ls", "{grid}", "nope"], 'The store has no task "nope"; its tasks: Featurize, evaluate, select, train.'),
    (["show", "{grid}", "train", "zz"], 'Task "train" has no run "zz"'),
    (["show", "{grid}", "train", "exp-00"], '"exp-00" fits 4 runs of task "train": exp-000 (6xakor9s)'),
    (["show", "{grid}", "evaluate", "exp-000", "--object", "nope"],
     'Run exp-000 of task "evaluate" saved no object "nope"; its objects: accuracy, metrics.'),
    (["compare", "{grid}", "evaluate", "--where", "C"], "--where 'C' is not COLUMN=VALUE"),
    (["compare", "{grid}", "evaluate", "--sort", "acc"], 'The sweep table of task "evaluate" has no column "acc"'),
    (["compare", "{grid}", "evaluate", "--metric", "nope"], 'No run of task "evaluate" saved an object "nope"'),
    (["compare", "{grid}", "Featurize", "--metric", "features"],
     'The object "features" of run exp-000 of task "Featurize" is a list, not a number, string, bool or dict'),
    (["compare", "{grid}"], "Missing argument 'TASK'. (see: fluidml compare --help)"),
    (["compare", "{grid}", "evaluate", "--format", "xml"], "Invalid value for '--format'"),
    (["ls", "{grid}", "--db", "x"], "--db and --collection apply to mongodb:// stores"),
    (["ls", "s3://bucket/results", "--db", "x"], "--db and --collection apply to mongodb:// stores"),
    (["ls", "s3://bucket/results", "-o", "endpoint_url"], "-o 'endpoint_url' is not KEY=VALUE"),
    (["ls", "{grid}", "-o", "a=b"], "-o storage options apply to object-storage URLs"),
    (["verify", "{tmp}/nowhere"], "No store at {tmp}/nowhere: the path does not exist."),
    (["status", "{tests}/sweep_pipeline.py:nothing", "{grid}"], "has no 'nothing'; it has: "),
    (["status", "{tests}/sweep_pipeline.py:make_flow", "{grid}", "--cache", "tree"], "Invalid value for '--cache'"),
    (["rm", "{grid}", "train"], "Name the runs to delete in one way: RUN..., --where/--state, or --all."),
    (["graph", "nowhere.py:make_flow"], "No Python file nowhere.py."),
    (["graph", "{tests}/sweep_pipeline.py"], "is not MODULE:OBJECT"),
    (["graph", "{tests}/sweep_pipeline.py:nothing"], "has no 'nothing'; it has: "),
    (["graph", "{tests}/sweep_pipeline.py:featurize"], "needs arguments"),
    (["graph", "{tests}/sweep_pipeline.py:os"], "is a module, not a Flow or a function that returns one."),
    (["frobnicate"], "No such command 'frobnicate'."),
])
def test_bad_input_exits_2_with_one_line(tmp_path, grid, args, message):
    """Unknown stores, tasks, runs, objects, columns and malformed arguments: exit code 2 and one line
    on stderr naming the problem (and what exists)."""
    values = {"tmp": tmp_path, "grid": grid, "tests": TESTS}
    (tmp_path / "empty").mkdir()
    values["tmp"] = tmp_path / "empty"
    result = fluidml(*[arg.format(**values) for arg in args])
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ")
    assert message.format(**values) in result.stderr


def test_read_commands_never_write(grid, original):
    """ls, show and compare leave every file and directory as it was (the 0.3.4 store gets no index)."""
    for store, task, run in ((grid, "evaluate", "exp-001"), (original, "combine", "orig-002")):
        before = snapshot(store)
        for args in (["ls", store], ["ls", store, task], ["compare", store, task], ["show", store, task, run],
                     ["compare", store, task, "--format", "json", "--sort", "hash"]):
            assert fluidml(*args).returncode == 0
        assert snapshot(store) == before
    assert not (original / ".fluidml").exists()


def test_a_store_written_by_fluidml_0_3_4(original):
    """The original's store lists, compares and shows (it recorded no unique names)."""
    assert as_json("ls", original) == [{"task": "combine", "runs": 4, "finished": 4},
                                       {"task": "gather", "runs": 1, "finished": 1},
                                       {"task": "source", "runs": 2, "finished": 2}]
    rows = as_json("compare", original, "combine", "--sort", "total")
    assert [(r["run"], r["y"], r["config.source.x"], r["total"]) for r in rows] == [
        ("orig-003", 4, 2, 26), ("orig-002", 3, 2, 25), ("orig-001", 4, 1, 15), ("orig-000", 3, 1, 14)]
    assert "unique_name" not in rows[0]
    shown = fluidml("show", original, "gather", "orig")
    assert shown.returncode == 0 and '"x": [\n      1,\n      2\n    ]' in shown.stdout
    assert ["totals", "json", "16", "B"] in [line.split() for line in shown.stdout.splitlines()]


def test_rm_deletes_chosen_runs_after_asking(failing, grid):
    """rm deletes the runs chosen by state (with --yes), asks first otherwise (no: nothing changes), and
    with --with-successors deletes the runs built on them too."""
    gone = fluidml("rm", failing, "train", "--state", "failed", "--yes")
    assert gone.returncode == 0, gone.stderr
    assert gone.stdout.splitlines() == ["2 runs to delete:", "  train/exp-001 (config bmntohw9)",
                                        "  train/exp-003 (config 7q7trlw4)", "deleted train/exp-001",
                                        "deleted train/exp-003"]
    assert [row["run"] for row in as_json("ls", failing, "train")] == ["exp-000", "exp-002"]
    before = snapshot(grid)
    refused = fluidml("rm", grid, "train", "exp-000", "--with-successors", stdin="n\n")
    assert refused.returncode == 1 and "Aborted: nothing was changed." in refused.stderr
    assert snapshot(grid) == before
    done = fluidml("rm", grid, "train", "exp-000", "--with-successors", stdin="y\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:4] == ["3 runs to delete:", "  evaluate/exp-000 (config de0rz21f)",
                                            "  select/exp-000 (config dyosp5v2)", "  train/exp-000 (config 6xakor9s)"]
    assert as_json("ls", grid) == [{"task": "Featurize", "runs": 2, "finished": 2},
                                   {"task": "evaluate", "runs": 3, "finished": 3},
                                   {"task": "train", "runs": 3, "finished": 3}]
    nothing = fluidml("rm", grid, "train", "--where", "C=5", "--yes")
    assert (nothing.returncode, nothing.stdout) == (0, 'No run of task "train" matches; nothing deleted.\n')


def test_graph_draws_a_flow(tmp_path):
    """graph draws the expanded task graph of a Flow-returning function (or the spec graph), in ASCII,
    unicode or HTML."""
    pipeline = TESTS / "sweep_pipeline.py"
    drawn = fluidml("graph", f"{pipeline}:make_flow")
    assert drawn.returncode == 0, drawn.stderr
    assert all(name in drawn.stdout for name in ("Featurize-1", "Featurize-2", "train-4", "evaluate-4", "select"))
    assert "|" in drawn.stdout and "╭" not in drawn.stdout
    assert "╭" in fluidml("graph", f"{pipeline}:make_flow", "--unicode").stdout
    specs = fluidml("graph", f"{pipeline}:make_flow", "--specs").stdout
    assert "train" in specs and "train-1" not in specs
    html = fluidml("graph", f"{pipeline}:make_flow", "--html", tmp_path / "graph.html")
    assert html.returncode == 0 and html.stdout == f"wrote {tmp_path / 'graph.html'}\n"
    assert "<html" in (tmp_path / "graph.html").read_text() and "evaluate-4" in (tmp_path / "graph.html").read_text()
    by_module = fluidml("graph", "sweep_pipeline:make_flow", cwd=TESTS)
    assert by_module.returncode == 0 and "evaluate-4" in by_module.stdout


def test_a_store_that_another_process_is_writing(tmp_path):
    """While a flow runs in another process, ls/show/compare answer and show its run in progress as
    running; after it ends, every run is finished."""
    store, gate = tmp_path / "live", tmp_path / "gate"
    writer = subprocess.Popen([sys.executable, str(TESTS / "sweep_pipeline.py"), str(store), str(gate)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not Path(f"{gate}.started").exists():
            assert writer.poll() is None and time.monotonic() < deadline, writer.stdout.read() if writer.poll() else ""
            time.sleep(0.05)
        runs = as_json("ls", store, "train")
        assert [(row["run"], row["state"]) for row in runs] == [("exp-000", "running")]
        assert fluidml("show", store, "train", runs[0]["run"]).stdout.split("\n")[2].split() == ["state", "running"]
        assert as_json("ls", store) == [{"task": "Featurize", "runs": 2, "finished": 2, "running": 0},
                                        {"task": "train", "runs": 1, "finished": 0, "running": 1}]
        assert fluidml("compare", store, "Featurize").returncode == 0
    finally:
        Path(f"{gate}.release").touch()
        output, _ = writer.communicate(timeout=120)
    assert writer.returncode == 0, output
    assert {row["state"] for row in as_json("ls", store, "train")} == {"finished"}
    assert [(row["task"], row["runs"]) for row in as_json("ls", store)] == [
        ("Featurize", 2), ("evaluate", 4), ("select", 1), ("train", 4)]


@pytest.mark.mongo
def test_mongodb_store(mongo_server, tmp_path):
    """ls, compare and show read a MongoDB store (URI with --db, or the database in the URI) and change
    none of its documents; an empty database is exit code 2, an unreachable server 1, without secrets."""
    import pymongo

    from fluidml.storage import MongoDBStore

    db = mongo_db_name(tmp_path)
    with MongoDBStore(db, host=mongo_server.uri) as store:
        make_flow().run(num_workers=1, run_name="exp", results_store=store, progress=False)
    client = pymongo.MongoClient(mongo_server.uri)
    try:
        def documents():
            return {name: sorted(map(repr, client[db][name].find({}))) for name in client[db].list_collection_names()}

        before = documents()
        assert as_json("ls", mongo_server.uri, "--db", db) == [
            {"task": "Featurize", "runs": 2, "finished": 2}, {"task": "evaluate", "runs": 4, "finished": 4},
            {"task": "select", "runs": 1, "finished": 1}, {"task": "train", "runs": 4, "finished": 4}]
        rows = as_json("compare", f"{mongo_server.uri}/{db}", "evaluate", "--sort", "accuracy")
        assert [(row["unique_name"], row["accuracy"], row["metrics.f1"]) for row in rows] == [
            ("evaluate-4", 1.32, 0.66), ("evaluate-2", 1.16, 0.58), ("evaluate-3", 0.42, 0.21), ("evaluate-1", 0.26, 0.13)]
        shown = fluidml("show", mongo_server.uri, "--db", db, "train", "6xakor9s")
        assert shown.returncode == 0 and "train-1" in shown.stdout
        assert ["model", "pickle", "2.0", "KB"] in [line.split() for line in shown.stdout.splitlines()]
        assert documents() == before
    finally:
        client.close()
    empty = fluidml("ls", mongo_server.uri, "--db", "nothing_here")
    assert empty.returncode == 2 and 'database "nothing_here", collection "task_result"' in empty.stderr
    secret = f"mongodb://user:s3cret@127.0.0.1:{free_port()}/x?serverSelectionTimeoutMS=300"
    gone = fluidml("ls", secret)
    assert gone.returncode == 1 and "is not reachable" in gone.stderr and "s3cret" not in gone.stderr + gone.stdout


def test_verify_lists_damage_exits_1_and_repair_makes_the_next_run_redo_it(grid):
    """`fluidml verify` finds nothing in a clean store (exit 0), one line per damaged run after a file is
    deleted (exit 1, nothing changed), and with --repair marks it so that a flow runs it again."""
    clean = fluidml("verify", grid)
    assert (clean.returncode, clean.stdout) == (0, "No damage found.\n")
    victim = grid / "evaluate" / "exp-000" / "accuracy.p"
    victim.unlink()
    before = snapshot(grid)
    found = fluidml("verify", grid)
    assert found.returncode == 1
    assert found.stdout.splitlines() == [
        f'task "evaluate", run {victim.parent.name}: is missing ({victim})',
        "1 damaged run; run again with --repair to have it redone."]
    assert snapshot(grid) == before  # read-only without --repair
    repaired = fluidml("verify", grid, "--repair")
    assert repaired.returncode == 0 and repaired.stdout.splitlines()[-1] == (
        "1 damaged run marked not finished: the next run redoes it.")
    info = json.loads((victim.parent / "fluidml_info.json").read_text())
    assert info["state"] == "failed" and info["fluidml"]["damage"]["location"] == str(victim)


def test_status_says_what_a_run_would_do_and_why_without_writing(grid):
    """`fluidml status MODULE:OBJECT STORE` prints one line per task name and a row per task with its
    reason; it writes nothing. A missing object makes its task run again, and what is built on it."""
    flow = f"{TESTS}/sweep_pipeline.py:make_flow"
    cached = fluidml("status", flow, grid)
    assert cached.returncode == 0, cached.stderr
    assert cached.stdout.splitlines()[:4] == ["Featurize: 2 cached, 0 to run", "train: 4 cached, 0 to run",
                                              "evaluate: 4 cached, 0 to run", "select: 1 cached, 0 to run"]
    (grid / "train" / "exp-000" / "model.p").unlink()
    before = snapshot(grid)
    rows = {row["task"]: row for row in as_json("status", flow, grid)}
    assert snapshot(grid) == before
    assert [name for name, row in rows.items() if row["runs"] == "runs"] == ["train-1", "evaluate-1", "select"]
    assert (rows["train-1"]["reason"], rows["evaluate-1"]["reason"], rows["select"]["reason"]) == (
        "results missing", "upstream runs: train", "upstream runs: evaluate")
    forced = {row["task"]: row["reason"] for row in as_json("status", flow, grid, "--force", "select")}
    assert forced["select"] == "forced" and forced["train-2"] == "cached"
    new = as_json("status", flow, grid.parent / "no-store-yet")
    assert {row["reason"] for row in new} == {"new config"}


@pytest.mark.s3
def test_the_command_reads_an_object_store_given_by_url(s3_server, tmp_path):
    """STORE may be an s3:// URL; storage options come with -o (the credentials from the environment,
    as boto reads them); nothing secret is printed."""
    from fluidml.storage import FsspecStore
    from s3_server import CREDENTIALS

    url = f"s3://fluidml-tests/cli-{tmp_path.name}"
    make_flow().run(num_workers=1, run_name="exp", results_store=FsspecStore(url, **s3_server.options()),
                    progress=False)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": CREDENTIALS["key"], "AWS_SECRET_ACCESS_KEY": CREDENTIALS["secret"]}
    listed = subprocess.run([SCRIPT, "ls", url, "-o", f"endpoint_url={s3_server.endpoint}", "--format", "json"],
                            capture_output=True, text=True, timeout=180, env=env)
    assert listed.returncode == 0, listed.stderr
    assert {row["task"]: row["finished"] for row in json.loads(listed.stdout)} == {
        "Featurize": 2, "evaluate": 4, "select": 1, "train": 4}
    verified = subprocess.run([SCRIPT, "verify", url, "-o", f"endpoint_url={s3_server.endpoint}"],
                              capture_output=True, text=True, timeout=180, env=env)
    assert (verified.returncode, verified.stdout) == (0, "No damage found.\n")
    assert CREDENTIALS["secret"] not in listed.stdout + listed.stderr + verified.stdout + verified.stderr
