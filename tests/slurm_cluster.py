"""A real single-node Slurm cluster for the tests and the benchmark: munged, slurmctld and slurmd
from Debian's ``munge`` and ``slurm-wlm``, run as root on 127.0.0.1.

Everything lives in a temporary directory: the munge key and socket, ``slurm.conf``, the state,
spool and log directories. Clients find the cluster through ``SLURM_CONF`` (``SlurmCluster.env``).
The daemons run in the foreground as children of this process and are stopped by their PIDs.
The node declares more CPUs than the machine has (trivial jobs share the cores), two count-only
GPUs and a custom ``licence`` resource, so that requests can be placed and checked on any machine.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

#: The daemons and clients the cluster needs, by Debian package.
PROGRAMS = {"munged": "munge", "mungekey": "munge", "slurmctld": "slurmctld", "slurmd": "slurmd",
            "sbatch": "slurm-client", "squeue": "slurm-client", "scancel": "slurm-client",
            "scontrol": "slurm-client"}
NODE = "fmlnode"
PARTITION = "debug"
CPUS = 8
MEMORY_MB = 4000
GPUS = 2
LICENCES = 4
#: Job states in which a job holds or waits for the node.
ALIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED"}


def missing_programs() -> List[str]:
    """What is missing on this machine to start the cluster (empty: nothing), e.g. ``["slurmd (slurmd)"]``."""
    missing = [f"{name} (Debian package {package})" for name, package in PROGRAMS.items()
               if shutil.which(name) is None and not Path("/usr/sbin", name).exists()]
    if not missing and os.geteuid() != 0:
        missing.append("root (slurmd runs jobs as their users and must run as root)")
    return missing


def _program(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SlurmCluster:
    """munged + slurmctld + slurmd in a temporary directory; ``stop()`` ends them by PID and
    removes the directory. Use as a context manager."""

    def __init__(self, cpus: int = CPUS) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="fml-slurm-", dir="/tmp"))
        self.cpus = cpus
        self.conf = self.dir / "slurm.conf"
        self.munge_socket = self.dir / "munge" / "munge.socket"
        self.env: Dict[str, str] = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.processes: Dict[str, subprocess.Popen] = {}

    # ------------------------------------------------------------------------------ life cycle

    def start(self, timeout: float = 60.0) -> "SlurmCluster":
        """Starts the three daemons and waits until the node takes jobs."""
        try:
            self._write_files()
            self._start_munge()
            self._spawn("slurmctld", [_program("slurmctld"), "-D", "-f", str(self.conf)])
            self._spawn("slurmd", [_program("slurmd"), "-D", "-f", str(self.conf), "-N", NODE])
            self._wait_idle(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _write_files(self) -> None:
        for sub in ("munge", "state", "spool", "log"):
            (self.dir / sub).mkdir()
        self.dir.chmod(0o755)  # clients of any user reach the munge socket
        key = self.dir / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        ctld_port, slurmd_port = _free_port(), _free_port()
        lines = [
            "ClusterName=fluidmltest",
            f"SlurmctldHost={socket.gethostname()}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={self.dir / 'state'}",
            f"SlurmdSpoolDir={self.dir / 'spool'}",
            f"SlurmctldPidFile={self.dir / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.dir / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.dir / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={self.dir / 'log' / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=debug",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU_Memory",
            "DefMemPerCPU=100",  # MB; a job that asks for no memory does not take the whole node
            "SlurmdParameters=config_overrides",  # the node may declare more than the machine has
            "SchedulerType=sched/builtin",  # first in, first out: a job starts as soon as it fits
            "SchedulerParameters=batch_sched_delay=0",  # (default: batch jobs may wait 3 s to be scheduled)
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "MailProg=/bin/true",
            "SwitchType=switch/none",
            "ReturnToService=2",
            "KillWait=5",  # seconds between SIGTERM and SIGKILL when a job is cancelled
            "MinJobAge=300",  # ended jobs stay listed by squeue for 5 minutes
            "InactiveLimit=0",
            "MessageTimeout=20",
            "GresTypes=gpu,licence",
            f"NodeName={NODE} NodeAddr=127.0.0.1 NodeHostname={socket.gethostname()} CPUs={self.cpus} "
            f"RealMemory={MEMORY_MB} Gres=gpu:{GPUS},licence:{LICENCES} State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        devices = self.dir / "dev"  # stand-ins for GPU device files: Slurm counts them and sets CUDA_VISIBLE_DEVICES
        devices.mkdir()
        for number in range(GPUS):
            (devices / f"nvidia{number}").touch()
        (self.dir / "gres.conf").write_text(
            f"AutoDetect=off\nNodeName={NODE} Name=gpu File={devices}/nvidia[0-{GPUS - 1}]\n"
            f"NodeName={NODE} Name=licence Count={LICENCES}\n")

    def _start_munge(self) -> None:
        munge = self.dir / "munge"
        self._spawn("munged", [_program("munged"), "--foreground", "--force", f"--socket={self.munge_socket}",
                               f"--key-file={munge / 'munge.key'}", f"--pid-file={munge / 'munged.pid'}",
                               f"--log-file={munge / 'munged.log'}", f"--seed-file={munge / 'munged.seed'}"])
        deadline = time.monotonic() + 20
        while not self.munge_socket.exists():
            self._check_alive("munged")
            if time.monotonic() > deadline:
                raise TimeoutError(f"munged did not create its socket within 20 s:\n{self.logs()}")
            time.sleep(0.05)

    def _spawn(self, name: str, command: List[str]) -> None:
        log = open(self.dir / "log" / f"{name}.stdout", "w")
        self.processes[name] = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()

    def _check_alive(self, name: str) -> None:
        process = self.processes[name]
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.logs()}")

    def _wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for name in self.processes:
                self._check_alive(name)
            state = self.run("sinfo", "-h", "-n", NODE, "-o", "%t", check=False).stdout.strip()
            if state in ("idle", "mix", "alloc"):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Slurm node is {state or 'unknown'!r} after {timeout:.0f} s:\n{self.logs()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Cancels the jobs still there and lets their job steps end, then ends the daemons by PID
        (slurmd, slurmctld, munged), kills by PID any job step of this cluster that outlived them
        (a slurmstepd whose slurmd is gone waits for it forever), and removes the directory."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            self._drain()
        for name in ("slurmd", "slurmctld", "munged"):
            process = self.processes.pop(name, None)
            if process is None:
                continue
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        for pid in self._job_steps():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def _drain(self, timeout: float = 15.0) -> None:
        try:
            job_ids = [job_id for job_id, _, state in self.jobs() if state in ALIVE]
            if job_ids:
                self.run("scancel", *job_ids, check=False)
        except (subprocess.SubprocessError, OSError):
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (self._job_steps() or any(
                state in ALIVE for _, _, state in self.jobs())):
            time.sleep(0.2)

    def _job_steps(self) -> List[int]:
        """The PIDs of this cluster's job steps (slurmstepd processes started by its slurmd)."""
        marker = f"SLURM_CONF={self.conf}".encode()
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if Path("/proc", entry, "comm").read_text().strip() != "slurmstepd":
                    continue
                if marker in Path("/proc", entry, "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry))
            except OSError:
                continue
        return pids

    def __enter__(self) -> "SlurmCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --------------------------------------------------------------------------------- helpers

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        """Runs a Slurm client command against this cluster (``SLURM_CONF`` set)."""
        program = _program(command[0])
        return subprocess.run([program, *command[1:]], env=self.env, capture_output=True, text=True, check=check,
                              timeout=60)

    def show_job(self, job_id: str) -> Dict[str, str]:
        """``scontrol show job`` as a dict of its ``Key=Value`` fields."""
        out = self.run("scontrol", "show", "job", "--oneliner", job_id).stdout
        fields: Dict[str, str] = {}
        for item in out.split():
            key, sep, value = item.partition("=")
            if sep:
                fields[key] = value
        return fields

    def jobs(self) -> List[Tuple[str, str, str]]:
        """Every job the controller lists (queued, running and recently ended): (job id, name, state)."""
        out = self.run("squeue", "-h", "-r", "--states=all", "-o", "%i|%j|%T").stdout
        return [tuple(line.split("|")) for line in out.splitlines() if line.strip()]  # type: ignore[misc]

    def job_states(self) -> Dict[str, str]:
        """Every job the controller lists: job id -> state."""
        return {job_id: state for job_id, _, state in self.jobs()}

    def logs(self, chars: int = 3000) -> str:
        """The end of each daemon's log (for a failing test's message)."""
        parts = []
        for path in sorted((self.dir / "log").glob("*")) + sorted((self.dir / "munge").glob("*.log")):
            parts.append(f"--- {path.name}:\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)


def slurm_environment(cluster: Optional[SlurmCluster]) -> Dict[str, str]:
    """The environment variables a driver needs to reach ``cluster``."""
    return {} if cluster is None else {"SLURM_CONF": str(cluster.conf)}
