"""Ray runtimes for the tests: a local one in this process, and a real head node in its own process.

Ray keeps its files (sockets, logs, the auth token under ``~/.ray``) in a temporary directory that
is removed afterwards: ``HOME`` and Ray's temp dir point there. Ray advertises 127.0.0.1 only
(``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``). What a test starts is stopped by its PID (the head's
process group) or ``ray.shutdown()``, never by process name.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Optional

TESTS_DIR = str(Path(__file__).resolve().parent)

#: The local runtime's resources: 2 CPUs, one (logical) GPU and a custom resource, so that
#: requests for GPUs, fractions of one and custom resources can be placed on any machine.
LOCAL_RESOURCES = {"num_cpus": 2, "num_gpus": 1, "resources": {"licence": 2}}


def ray_environment(home: Path) -> Dict[str, str]:
    """The environment variables that keep Ray on loopback and its files under ``home``."""
    return {"HOME": str(home), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_DEDUP_LOGS": "0"}


def ray_runtime_env() -> Dict[str, Any]:
    """Ray workers import the tests' task modules (``pipelines`` and the like) from this directory."""
    return {"env_vars": {"PYTHONPATH": driver_environment(Path("."))["PYTHONPATH"]}}


def driver_environment(home: Path) -> Dict[str, str]:
    """The environment of a Ray process started by a test: Ray's settings, and the tests' modules
    importable (by the process and by the Ray workers it starts)."""
    python_path = os.pathsep.join([TESTS_DIR, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # (RAY_* settings of this process, e.g. those a local runtime set up, belong to that runtime)
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    return {**inherited, **ray_environment(home), "PYTHONPATH": python_path}


def short_temp_dir(prefix: str) -> Path:
    """A temporary directory with a short path (Ray's unix sockets live under it; their paths are
    limited to 107 bytes)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RayHead:
    """A Ray head node started with ``ray start --head --block`` on 127.0.0.1 in its own process
    group; ``stop()`` ends that group by the PID of ``ray start``."""

    def __init__(self, num_cpus: int = 2):
        self.dir = short_temp_dir("fml-head-")
        self.port = free_port()
        self.client_port = free_port()
        self.env = driver_environment(self.dir)
        self.log = open(self.dir / "head.log", "w")
        self.address = f"127.0.0.1:{self.port}"
        self.client_address = f"ray://127.0.0.1:{self.client_port}"
        self.process: Optional[subprocess.Popen] = self._ray_start(
            "--head", f"--port={self.port}", f"--ray-client-server-port={self.client_port}", f"--num-cpus={num_cpus}",
            "--include-dashboard=false", f"--temp-dir={self.dir / 'tmp'}", "--disable-usage-stats")

    def _ray_start(self, *args: str) -> subprocess.Popen:
        # Ray's own console script, run by this python (its ``ray`` file may sit in another bin/,
        # e.g. in a virtual environment made with --system-site-packages)
        ray_cli = [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.argv[0] = 'ray'; "
                                         "sys.exit(main())"]
        try:
            return subprocess.Popen([*ray_cli, "start", "--block", "--node-ip-address=127.0.0.1", *args],
                                    env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        except BaseException:
            self.log.close()
            raise

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Waits until the head accepts a driver (its GCS and client ports listen)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.process.returncode}:\n{self.output()}")
            if all(_listening(port) for port in (self.port, self.client_port)):
                return
            time.sleep(0.2)
        raise TimeoutError(f"the Ray head did not come up within {timeout:.0f} s:\n{self.output()}")

    def output(self) -> str:
        """The end of what ``ray start`` printed."""
        self.log.flush()
        return (self.dir / "head.log").read_text(errors="replace")[-4000:]

    def client_server_logs(self) -> str:
        """The tails of the Ray Client server's logs (for a failing test's message)."""
        logs = sorted((self.dir / "tmp").glob("session_*/logs/ray_client_server*"))
        return "\n".join(f"--- {log.name}:\n{log.read_text(errors='replace')[-3000:]}" for log in logs)

    def stop(self) -> None:
        """Ends the head's process group, then removes its files."""
        if self.process is None:
            return
        end_group(self.process)
        self.process = None
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def end_group(process: subprocess.Popen, grace: float = 3.0) -> None:
    """Ends the process group led by ``process``: SIGTERM, then SIGKILL for what is left after
    ``grace`` seconds."""
    group = process.pid
    for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(group, signum)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(group):
            time.sleep(0.1)
        if not _group_alive(group):
            break
    process.wait(10)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    # a group whose members are all zombies (waiting for this process to reap them) is ended
    out = subprocess.run(["ps", "-o", "stat=", "--sid", str(group)], capture_output=True, text=True).stdout.split()
    return any(not stat.startswith("Z") for stat in out)
