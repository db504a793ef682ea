"""Several drivers on one persistent store: claims (a lease with a holder and a heartbeat) make
each task run once; a claim whose holder is gone is taken over."""

import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from fluidml.storage import LocalFileStore, MongoDBStore
from fluidml.storage import _claims
from fluidml.storage._claims import Claims
from mongo_server import mongo_db_name

CONFIG = {"train": {"lr": 0.1}}


@pytest.fixture(params=["file", pytest.param("mongo", marks=pytest.mark.mongo)])
def shared_store(request, tmp_path):
    """A factory of stores on one place (a directory, or a database of the test server)."""
    if request.param == "mongo":
        server = request.getfixturevalue("mongo_server")
        return lambda: MongoDBStore(mongo_db_name(tmp_path), host=server.uri)
    return lambda: LocalFileStore(str(tmp_path / "store"))


def test_a_live_claim_keeps_others_off_until_it_is_released(shared_store, caplog):
    caplog.set_level("INFO", logger="fluidml")
    first, second = Claims(shared_store().claims(), "first"), Claims(shared_store().claims(), "second")
    try:
        assert first.claim("train", "train-1", CONFIG)
        assert first.claim("train", "train-1", CONFIG)  # held already
        assert not second.claim("train", "train-1", CONFIG)
        assert f'Task "train-1" is being run by run "first" (pid {os.getpid()} on ' in caplog.text
        first.release("train", CONFIG)
        assert second.claim("train", "train-1", CONFIG)
        assert not first.claim("train", "train-1", CONFIG)
    finally:
        first.close()
        second.close()


def test_a_claim_whose_process_is_gone_is_taken_over(shared_store, caplog):
    """A holder on this host whose process ended (e.g. a driver killed with SIGKILL) is stale."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    backend = shared_store().claims()
    holder = {"kind": "driver", "token": "gone-driver", "host": _claims._host(), "pid": dead.pid, "started": None,
              "run": "old"}
    backend.beat(holder)
    assert backend.acquire("train", CONFIG, holder) is None
    claims = Claims(shared_store().claims(), "new")
    try:
        assert claims.claim("train", "train-1", CONFIG)
        assert (f'Task "train-1": taking over its claim from run "old" (pid {dead.pid} on {_claims._host()}), as its '
                f"process (pid {dead.pid}) is gone.") in caplog.text
    finally:
        claims.close()


def test_a_holder_on_another_host_lives_while_its_heartbeat_is_fresh(shared_store, monkeypatch, caplog):
    backend = shared_store().claims()
    holder = {"kind": "driver", "token": "far-away", "host": "elsewhere", "pid": 1, "run": "far"}
    backend.beat(holder)
    backend.acquire("train", CONFIG, holder)
    claims = Claims(shared_store().claims(), "near")
    try:
        assert not claims.claim("train", "train-1", CONFIG)
        monkeypatch.setattr(_claims, "STALE_AFTER", -1.0)  # every heartbeat is too old now
        assert claims.claim("train", "train-1", CONFIG)
        assert "taking over its claim from run \"far\" (pid 1 on elsewhere), as its last heartbeat is" in caplog.text
    finally:
        claims.close()


def test_other_kinds_of_holders_are_judged_by_their_registered_check(shared_store, monkeypatch):
    """A claim held by e.g. a Slurm job lives as long as the check registered for its kind says."""
    queued = {"4242"}
    monkeypatch.setitem(_claims.LIVENESS, "slurm", lambda holder, age_of: (holder["job"] in queued, "its job ended"))
    backend = shared_store().claims()
    backend.acquire("train", CONFIG, {"kind": "slurm", "token": "slurm-4242", "job": "4242"})
    claims = Claims(shared_store().claims(), "driver")
    try:
        assert not claims.claim("train", "train-1", CONFIG)
        queued.clear()
        assert claims.claim("train", "train-1", CONFIG)
    finally:
        claims.close()


def test_closing_releases_claims_and_ends_the_heartbeat(tmp_path):
    store = LocalFileStore(str(tmp_path))
    claims = Claims(store.claims(), "run")
    token = claims.holder["token"]
    claims.claim("train", "train-1", CONFIG)
    meta = tmp_path / ".fluidml"
    assert len(list((meta / "claims" / "train").iterdir())) == 1 and (meta / "drivers" / f"{token}.json").exists()
    claims.close()
    assert list((meta / "claims" / "train").iterdir()) == [] and not (meta / "drivers" / f"{token}.json").exists()


DRIVER = """
import os, sys, time
from pathlib import Path
from fluidml import Flow, TaskSpec, configure_logging
from fluidml.storage import LocalFileStore, MongoDBStore

OUT = Path(sys.argv[1])

def note(name):
    with open(OUT / "ran.log", "a") as log:
        log.write(f"{name} {os.getpid()}\\n")

def work(value, task):
    note(f"work-{value}")
    time.sleep(0.5)
    task.save(value, "v")

def total(v, task):
    note("total")
    task.save(sum(sweep.value for sweep in v), "sum")

if __name__ == "__main__":
    configure_logging("INFO", rich_logging=False)
    store = LocalFileStore(str(OUT / "store")) if sys.argv[2] == "file" else MongoDBStore(sys.argv[3], host=sys.argv[4])
    work_spec = TaskSpec(task=work, config={"value": list(range(1, 17))}, expand="product")
    total_spec = TaskSpec(task=total, reduce=True)
    total_spec.requires(work_spec)
    results = Flow([work_spec, total_spec]).run(num_workers=1, results_store=store, return_results="latest")
    print("TOTAL", results["total"][0].results["sum"])
"""


@pytest.mark.parametrize("drivers", [2, 3])
@pytest.mark.parametrize("kind", ["file", pytest.param("mongo", marks=pytest.mark.mongo)])
def test_several_drivers_on_one_store_run_each_task_once(tmp_path, request, kind, drivers):
    """N drivers started together on one store share the sweep: each task runs exactly once (counted
    by the lines the tasks append to a file), the work is spread over the drivers, and each driver
    gets the reducer's result."""
    args = [kind]
    if kind == "mongo":
        args += [mongo_db_name(tmp_path), request.getfixturevalue("mongo_server").uri]
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(DRIVER))
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path), *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=tmp_path) for _ in range(drivers)]
    outputs = [proc.communicate(timeout=180) for proc in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert "TOTAL 136" in out
    lines = [line.split() for line in (tmp_path / "ran.log").read_text().splitlines()]
    runs = Counter(name for name, _ in lines)
    assert runs == Counter([f"work-{value}" for value in range(1, 17)] + ["total"])
    assert len({pid for _, pid in lines}) >= 2, lines
    assert any("is being run by run" in err for _, err in outputs)
