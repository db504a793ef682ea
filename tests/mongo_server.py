"""A local MongoDB wire-protocol server for the tests and the benchmark: nx-27017 (from PyPI, the
`test` extra) started as a subprocess on a free 127.0.0.1 port with its data in a given directory,
and stopped by its PID."""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

#: How the server is started: its own entry point, under the given interpreter.
_MAIN = "from nx_27017.nx_27017 import main; main()"


def mongo_db_name(tmp_path: Path) -> str:
    """A database of its own for each test (the same for every store the test makes)."""
    return "t_" + hashlib.md5(str(tmp_path).encode()).hexdigest()[:16]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MongoTestServer:
    """One nx-27017 process. ``start()`` returns once it answers a ping; ``stop()`` ends it."""

    def __init__(self, data_dir: Path, port: Optional[int] = None, python: str = sys.executable):
        self.data_dir = Path(data_dir)
        self.port = port if port is not None else free_port()
        self.python = python
        self.process: Optional[subprocess.Popen] = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server is not running"
        return self.process.pid

    def start(self, timeout: float = 30.0) -> "MongoTestServer":
        """Starts the server and waits until it answers a ping (at most ``timeout`` seconds)."""
        import pymongo
        import pymongo.errors

        self.data_dir.mkdir(parents=True, exist_ok=True)
        output = self.data_dir / "server-output.txt"
        with open(output, "ab") as out:
            self.process = subprocess.Popen(
                [self.python, "-c", _MAIN, "--data-dir", str(self.data_dir), "--host", "127.0.0.1",
                 "--port", str(self.port), "--log-file", str(self.data_dir / "server.log"),
                 "--pid-file", str(self.data_dir / "server.pid")],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                tail = output.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"nx-27017 exited with code {self.process.returncode} before answering on "
                                   f"port {self.port}:\n{tail}")
            client = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=250, connectTimeoutMS=250)
            try:
                client.admin.command("ping")
                return self
            except pymongo.errors.ConnectionFailure:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"nx-27017 did not answer a ping on {self.uri} within {timeout:g} s; "
                                       f"its output is in {output}.") from None
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Sends ``sig`` to the server's PID and waits for it to end (SIGKILL after ``timeout`` s)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def __enter__(self) -> "MongoTestServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
