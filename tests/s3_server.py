"""A local S3 API server for the tests and the benchmarks: moto in server mode (``moto[server]``, in
the ``test`` extra) started as a subprocess on a free 127.0.0.1 port and stopped by its PID, plus a
TCP proxy in front of it that a test can stop and start again (an endpoint that goes away mid-run and
comes back, while the server keeps its data).

    python s3_server.py proxy LISTEN_PORT TARGET_PORT   # the proxy's own process
"""

import asyncio
import collections
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Optional

#: moto accepts any credentials unless IAM authentication is switched on (``enforce_auth``).
CREDENTIALS = {"key": "fluidml-test-key", "secret": "fluidml-test-secret"}
_REQUEST_LINE = re.compile(r'"(GET|PUT|HEAD|POST|DELETE) (\S+) HTTP/[\d.]+"')
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _http(method: str, url: str, data: bytes = b"") -> int:
    request = urllib.request.Request(url, data=data if method in ("PUT", "POST") else None, method=method,
                                     headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _stop(process: Optional[subprocess.Popen], sig: int, timeout: float) -> None:
    if process is None or process.poll() is not None:
        return
    os.kill(process.pid, sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


class S3TestServer:
    """One moto server process. ``start()`` returns once it answers; ``stop()`` ends it by its PID.

    Its request log (one line per HTTP request) goes to ``log_path``; ``requests()`` counts them.
    """

    def __init__(self, log_path: Path, port: Optional[int] = None, python: str = sys.executable):
        self.log_path = Path(log_path)
        self.port = port if port is not None else free_port()
        self.python = python
        self.process: Optional[subprocess.Popen] = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server is not running"
        return self.process.pid

    def options(self, endpoint: Optional[str] = None) -> Dict[str, str]:
        """FsspecStore storage options for this server (or for ``endpoint``, e.g. a proxy)."""
        return {"endpoint_url": endpoint or self.endpoint, **CREDENTIALS}

    def start(self, timeout: float = 60.0) -> "S3TestServer":
        """Starts the server and waits until it answers (at most ``timeout`` seconds)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "NO_COLOR": "1", "AWS_ACCESS_KEY_ID": CREDENTIALS["key"],
               "AWS_SECRET_ACCESS_KEY": CREDENTIALS["secret"]}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [self.python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with code {self.process.returncode} before answering on "
                                   f"port {self.port}:\n{self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                _http("GET", self.endpoint + "/moto-api/data.json")
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server did not answer on {self.endpoint} within {timeout:g} s; "
                                       f"its output is in {self.log_path}.") from None
                time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Sends ``sig`` to the server's PID and waits for it to end (SIGKILL after ``timeout`` s)."""
        _stop(self.process, sig, timeout)
        self.process = None

    def make_bucket(self, name: str) -> None:
        status = _http("PUT", f"{self.endpoint}/{name}")
        if status not in (200, 409):
            raise RuntimeError(f"creating bucket {name} on {self.endpoint} answered HTTP {status}")

    def enforce_auth(self, on: bool) -> None:
        """Switches IAM authentication and authorization on (every request from now) or off."""
        status = _http("POST", self.endpoint + "/moto-api/reset-auth", b"0" if on else b"inf")
        if status != 200:
            raise RuntimeError(f"moto reset-auth answered HTTP {status}")

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def requests(self, since: int = 0) -> Dict[str, int]:
        """Requests logged since the log offset ``since``, by kind: LIST, GET, HEAD, PUT, DELETE, POST."""
        time.sleep(0.2)  # the server writes its line after answering
        with open(self.log_path, "rb") as log:
            log.seek(since)
            text = _ANSI.sub("", log.read().decode("utf-8", "replace"))
        counts: Dict[str, int] = collections.Counter()
        for method, target in _REQUEST_LINE.findall(text):
            if target.startswith("/moto-api"):
                continue
            counts["LIST" if method == "GET" and "list-type=" in target else method] += 1
        return dict(counts)

    def __enter__(self) -> "S3TestServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class TcpProxy:
    """A TCP proxy process from a free 127.0.0.1 port to ``target_port``: ``stop()`` kills it (the
    endpoint is gone: connections are refused), ``start()`` brings it back on the same port."""

    def __init__(self, target_port: int, python: str = sys.executable):
        self.port = free_port()
        self.target_port = target_port
        self.python = python
        self.process: Optional[subprocess.Popen] = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "TcpProxy":
        self.process = subprocess.Popen([self.python, __file__, "proxy", str(self.port), str(self.target_port)],
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            if self.process.poll() is not None:
                raise RuntimeError(f"the proxy exited with code {self.process.returncode}")
            time.sleep(0.05)
        raise RuntimeError(f"the proxy did not listen on port {self.port} within {timeout:g} s")

    def stop(self) -> None:
        """Kills the proxy (SIGKILL): open connections break, new ones are refused."""
        _stop(self.process, signal.SIGKILL, 10.0)
        self.process = None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _proxy(listen_port: int, target_port: int) -> None:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port, reuse_address=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1:2] == ["proxy"]:
        asyncio.run(_proxy(int(sys.argv[2]), int(sys.argv[3])))
