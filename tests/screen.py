"""Helpers for tests that read what a person would see: a pseudo-terminal runner, and a reader of
console graph drawings (boxes, and which boxes each box's edges lead to)."""

import os
import pty
import re
import select
import subprocess
import sys
import time
from typing import Dict, List, Optional, Set, Tuple

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


def run_in_pty(code: str, env: Optional[Dict[str, str]] = None, timeout: float = 60.0) -> Tuple[int, str]:
    """Runs ``python -c code`` with stdin, stdout and stderr on a pseudo-terminal; returns its exit
    code and everything it wrote (escape sequences kept)."""
    master, slave = pty.openpty()
    full_env = {k: v for k, v in os.environ.items() if k not in ("FLUIDML_PROGRESS", "PAGER", "MANPAGER")}
    full_env.update({"COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color", **(env or {})})
    process = subprocess.Popen([sys.executable, "-c", code], stdin=slave, stdout=slave, stderr=slave,
                               env=full_env, close_fds=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    os.close(master)
    return process.wait(timeout=10), b"".join(chunks).decode("utf-8", "replace")


_TO_ASCII = str.maketrans({"│": "|", "─": "-", "▼": "v", **{c: "+" for c in "╭╮╰╯├┤┬┴┼"}})


class Drawing:
    """A console graph drawing read back: its boxes by label, and where each box's edges lead."""

    def __init__(self, text: str):
        self.lines = text.translate(_TO_ASCII).splitlines()
        self.width = max((len(line) for line in self.lines), default=0)
        self.grid = [line.ljust(self.width) for line in self.lines]
        self.boxes: Dict[str, Tuple[int, int, int]] = {}  # label -> (top row, left col, right col)
        self.duplicates: List[str] = []
        for row, line in enumerate(self.grid):
            for match in re.finditer(r"\| (\S+) +\|", line):
                left, right = match.start(), match.end() - 1
                if not self._bordered(row, left, right):
                    continue
                label = match.group(1)
                if label in self.boxes:
                    self.duplicates.append(label)
                self.boxes[label] = (row - 1, left, right)

    def _bordered(self, row: int, left: int, right: int) -> bool:
        border = "+" + "-" * (right - left - 1) + "+"
        return 0 < row < len(self.grid) - 1 and all(self.grid[r][left:right + 1] == border for r in (row - 1, row + 1))

    def _box_at(self, top: int, col: int) -> Optional[str]:
        for label, (box_top, left, right) in self.boxes.items():
            if box_top == top and left < col < right:
                return label
        return None

    def targets(self, label: str) -> Set[str]:
        """The boxes reached by following lines down from below ``label``'s box: down, or along a
        horizontal line; ``|`` crosses a horizontal line, ``+`` is a junction, ``v`` enters a box."""
        top, left, right = self.boxes[label]
        start = top + 3
        if start >= len(self.grid):
            return set()
        stack = [(start, col, "down") for col in range(left + 1, right) if self.grid[start][col] in "|+"]
        seen, reached = set(), set()
        while stack:
            row, col, direction = stack.pop()
            if (row, col, direction) in seen or not (0 <= row < len(self.grid) and 0 <= col < self.width):
                continue
            seen.add((row, col, direction))
            char = self.grid[row][col]
            moves = []
            if char == "v" and direction == "down":
                box = self._box_at(row + 1, col)
                assert box is not None, f"an arrow at row {row}, column {col} points at no box"
                reached.add(box)
            elif char == "|":
                moves.append(direction)  # straight on, or across a horizontal line
            elif char == "-" and direction != "down":
                moves.append(direction)
            elif char == "+":
                moves.append(direction)
                moves += ["left", "right"] if direction == "down" else ["down"]
            for move in moves:
                step = {"down": (1, 0), "left": (0, -1), "right": (0, 1)}[move]
                nrow, ncol = row + step[0], col + step[1]
                if 0 <= nrow < len(self.grid) and 0 <= ncol < self.width:
                    nchar = self.grid[nrow][ncol]
                    if (move == "down" and nchar in "|+v") or (move != "down" and nchar in "-+|"):
                        stack.append((nrow, ncol, move))
        return reached
