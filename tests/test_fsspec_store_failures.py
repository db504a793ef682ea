"""FsspecStore when object storage misbehaves, against real S3 API servers on 127.0.0.1: a missing bucket,
credentials without permission, an unreachable endpoint, and an endpoint that goes away in the middle
of a run and comes back. Every error names the URL and what to do, and never a secret."""

import json
import logging
import traceback
from pathlib import Path

import pytest

from fluidml import Flow, TaskSpec
from fluidml.exception import ResultsStoreError, StoredResultDamaged
from fluidml.storage import FsspecStore
from fsspec_kinds import Raw
from s3_server import S3TestServer, TcpProxy, free_port

pytestmark = pytest.mark.s3

SECRET = "fluidml-very-secret-value-42"


def source(x, task):
    task.save(x * 10, "value")


def double(value, task):
    task.save(value * 2, "doubled")


def grid_flow():
    a = TaskSpec(task=source, config={"x": [1, 2, 3]}, expand="product")
    b = TaskSpec(task=double)
    b.requires(a)
    return Flow([a, b])


def error_of(store, caplog) -> ResultsStoreError:
    """The error of a flow run on ``store``, checked to keep the secret out of message, traceback and logs."""
    with caplog.at_level(logging.DEBUG), pytest.raises(ResultsStoreError) as info:
        grid_flow().run(num_workers=1, results_store=store)
    text = "".join(traceback.format_exception(info.value))
    assert SECRET not in text and SECRET not in caplog.text and SECRET not in repr(store)
    return info.value


def test_a_missing_bucket_is_named_with_what_to_do(s3_server, caplog):
    store = FsspecStore("s3://no-such-bucket/sweeps", endpoint_url=s3_server.endpoint, key="k", secret=SECRET)
    error = error_of(store, caplog)
    assert 'The bucket "no-such-bucket" of s3://no-such-bucket/sweeps at http://127.0.0.1:' in str(error)
    assert "does not exist" in str(error) and "aws s3 mb s3://no-such-bucket" in str(error)


def test_an_unreachable_endpoint_is_named_with_what_to_do(caplog):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = FsspecStore("s3://bucket/sweeps", endpoint_url=endpoint, key="k", secret=SECRET)
    error = error_of(store, caplog)
    assert f"The storage service at {endpoint} cannot be reached while opening s3://bucket/sweeps" in str(error)
    assert "Check that it is running" in str(error)


@pytest.fixture(scope="module")
def iam_server(tmp_path_factory):
    """A moto server of its own that checks credentials and IAM policies: user "reader" may list and
    read the bucket "locked", user "nobody" may do nothing."""
    import boto3

    with S3TestServer(tmp_path_factory.mktemp("s3-iam") / "requests.log") as server:
        server.make_bucket("locked")
        iam = boto3.client("iam", endpoint_url=server.endpoint, region_name="us-east-1",
                           aws_access_key_id="admin", aws_secret_access_key="admin")
        users = {}
        for name, actions in (("reader", ["s3:GetObject", "s3:ListBucket"]), ("nobody", [])):
            iam.create_user(UserName=name)
            if actions:
                policy = {"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": actions, "Resource": ["arn:aws:s3:::locked", "arn:aws:s3:::locked/*"]}]}
                iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
            key = iam.create_access_key(UserName=name)["AccessKey"]
            users[name] = {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
        server.enforce_auth(True)
        yield server, users
        server.enforce_auth(False)


@pytest.mark.parametrize("user, action", [("nobody", "opening s3://locked/sweeps"),
                                          ("reader", "creating s3://locked/sweeps/source/")])
def test_missing_permissions_are_named_with_what_to_do(iam_server, user, action, caplog):
    """Credentials that may not list the bucket fail at once; read-only ones at the first write."""
    server, users = iam_server
    credentials = users[user]
    store = FsspecStore("s3://locked/sweeps", endpoint_url=server.endpoint, **credentials)
    with caplog.at_level(logging.DEBUG), pytest.raises(ResultsStoreError) as info:
        grid_flow().run(num_workers=1, results_store=store)
    message = str(info.value)
    assert message.startswith(f"Access denied while {action}") and "need to read, write, list and delete" in message
    assert credentials["secret"] not in "".join(traceback.format_exception(info.value)) + caplog.text


def cut_the_line(value, task, proxy_pid, marker):
    """Stops the endpoint (kills the proxy) the first time it runs, then saves."""
    import os
    import signal

    if not Path(marker).exists():
        Path(marker).write_text("cut")
        os.kill(proxy_pid, signal.SIGKILL)
    task.save(value * 2, "doubled")


def test_the_endpoint_going_away_fails_the_task_and_a_later_run_finishes(s3_server, tmp_path, recorder):
    """The endpoint (a proxy in front of the server) goes away while a task runs: the task fails with an
    error naming the endpoint, the results finished before stay, and once the endpoint is back a second
    run executes only what was not finished."""
    proxy = TcpProxy(s3_server.port).start()
    try:
        url = f"s3://fluidml-tests/gone-{tmp_path.name}"
        store = FsspecStore(url, **s3_server.options(proxy.endpoint))
        a = TaskSpec(task=source, config={"x": [1, 2, 3]}, expand="product")
        b = TaskSpec(task=cut_the_line, config={"_proxy_pid": proxy.process.pid, "_marker": str(tmp_path / "cut")},
                     config_ignore_prefix="_")
        b.requires(a)
        with pytest.raises(ResultsStoreError, match=f"The storage service at {proxy.endpoint} cannot be reached"):
            Flow([a, b]).run(num_workers=1, results_store=store, observers=[recorder])
        failed = [name for name, state, _ in recorder.ended if state == "failed"]
        assert len(failed) == 1 and failed[0].startswith("cut_the_line")
        direct = FsspecStore(url, **s3_server.options())  # the server itself kept everything finished
        assert all(direct.is_finished("source", {"source": {"x": x}}) for x in (1, 2, 3))
        proxy.stop()
        proxy.start()
        again = type(recorder)()
        results = Flow([a, b]).run(num_workers=1, results_store=store, observers=[again], return_results="all")
        assert again.executed and all(name.startswith("cut_the_line") for name in again.executed)
        assert sorted(r.results["doubled"] for r in results["cut_the_line"]) == [20, 40, 60]
    finally:
        proxy.stop()


def test_a_deleted_input_is_an_error_to_load_and_its_producer_runs_again(s3_server, tmp_path):
    """An object the store lists but cannot read is StoredResultDamaged when loaded, naming the task,
    the object and its URL (never None); a flow finds it while planning and runs its producer (and
    what is built on it) again."""
    url = f"s3://fluidml-tests/damaged-{tmp_path.name}"
    store = FsspecStore(url, **s3_server.options())
    grid_flow().run(num_workers=1, run_name="r", results_store=store)
    Raw(url, s3_server.options()).remove("source/r-001/value.p")
    with pytest.raises(StoredResultDamaged, match=rf'"value" of task "source" .* at {url}/source/r-001/value.p is '
                                                  r"missing\. Run the task again"):
        FsspecStore(url, **s3_server.options()).load("value", "source", {"source": {"x": 2}})
    results = grid_flow().run(num_workers=1, results_store=FsspecStore(url, **s3_server.options()),
                              return_results="all")
    assert sorted(r.results["doubled"] for r in results["double"]) == [20, 40, 60]
