"""tmux panes that show each worker's log while a run goes on (``Flow.run(log_to_tmux=True)``)."""

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import List, Optional

from fluidml.exception import TmuxError

__all__ = ["TmuxPanes", "tmux_available"]

logger = logging.getLogger(__name__)


def tmux_available() -> bool:
    """True if a working ``tmux`` is on the PATH."""
    if shutil.which("tmux") is None:
        return False
    return subprocess.run(["tmux", "-V"], capture_output=True).returncode == 0


def _tmux(*args: str) -> str:
    result = subprocess.run(["tmux", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise TmuxError(f"tmux {' '.join(args)} failed: {result.stderr.strip() or result.returncode}")
    return result.stdout


class TmuxPanes:
    """A detached tmux session with one pane per worker, each following that worker's log file.

    ``close()`` ends the session and deletes the log files.
    """

    def __init__(self, session: str, directory: str, log_files: List[str]):
        self.session = session
        self.directory = directory
        self.log_files = log_files

    @classmethod
    def open(cls, session: str, num_workers: int, max_panes_per_window: int) -> Optional["TmuxPanes"]:
        """Creates the session (named ``session``, made unique), or warns and returns None when tmux
        is missing."""
        if not tmux_available():
            logger.warning("log_to_tmux=True, but tmux is not installed or does not work; worker logs only go "
                           "to this console. Install tmux (e.g. `apt-get install tmux`) to get one pane per worker.")
            return None
        session = _unique_session_name(session)
        directory = tempfile.mkdtemp(prefix="fluidml-tmux-")
        log_files = [os.path.join(directory, f"worker-{i + 1}.log") for i in range(num_workers)]
        for path in log_files:
            open(path, "w").close()
        panes = cls(session, directory, log_files)
        # GNU tail ends with this process (--pid), so the panes close even if it is killed
        follow = f"--pid={os.getpid()} " if sys.platform.startswith("linux") else ""
        try:
            for i, path in enumerate(log_files):
                command = (f"printf 'worker-{i + 1}\\n'; tail -n +1 -F {follow}{_quote(path)}; "
                           f"rm -rf {_quote(directory)}")
                if i == 0:
                    _tmux("new-session", "-d", "-s", session, "-x", "200", "-y", "50", command)
                elif i % max_panes_per_window == 0:
                    _tmux("new-window", "-t", session, command)
                else:
                    _tmux("split-window", "-t", session, command)
                _tmux("select-layout", "-t", session, "even-vertical")
        except TmuxError:
            panes.close()
            raise
        logger.info('Worker logs are shown in tmux session "%s" (tmux attach -t %s).', session, session)
        return panes

    def close(self) -> None:
        """Ends the session and removes the log files."""
        subprocess.run(["tmux", "kill-session", "-t", self.session], capture_output=True)
        shutil.rmtree(self.directory, ignore_errors=True)


def _unique_session_name(name: str) -> str:
    base = re.sub(r"[.:\s]+", "-", name) or "fluidml"  # tmux does not allow "." or ":" in names
    candidate, number = base, 1
    while subprocess.run(["tmux", "has-session", "-t", f"={candidate}"], capture_output=True).returncode == 0:
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def _quote(path: str) -> str:
    return "'" + path.replace("'", "'\\''") + "'"
