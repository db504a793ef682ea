"""The console view of a task graph: boxes and edges drawn with ASCII or unicode characters.

Nodes are laid out in layers (grandalf's Sugiyama layout, every connected component), top to
bottom in the direction of the edges. Edges are drawn as vertical and horizontal lines: below each
node, its edges go down to one horizontal bus that reaches all its successors, and each successor
is entered from above through an arrow. Where a line only crosses a bus, the vertical line is drawn
through it; ``+`` (or a unicode junction) marks where lines really meet. Labels are never cut:
lines are as wide as the drawing needs, and several components are placed side by side as long as
they fit the terminal's width.
"""

import logging
import os
import shutil
import subprocess
import sys
from typing import Any, Dict, FrozenSet, List, Optional, Set, Tuple

import networkx as nx

from fluidml.visualization._layout import ComponentLayout, Slot, check_graph, layered_layout

__all__ = ["render_graph", "visualize_graph_in_console"]

logger = logging.getLogger(__name__)

_U, _D, _L, _R = "U", "D", "L", "R"
_GAP = 3  # columns between boxes of one layer
_COMPONENT_GAP = 4


class _Charset:
    def __init__(self, unicode: bool):
        self.unicode = unicode
        if unicode:
            self.box = "╭╮╰╯─│"
            self.arrow = "▼"
        else:
            self.box = "++++-|"
            self.arrow = "v"

    def line(self, dirs: FrozenSet[str]) -> str:
        vertical, horizontal = bool(dirs & {_U, _D}), bool(dirs & {_L, _R})
        if not self.unicode:
            return "+" if vertical and horizontal else ("|" if vertical else "-")
        if not horizontal:
            return "│"
        if not vertical:
            return "─"
        return _UNICODE_JUNCTIONS[dirs]


_UNICODE_JUNCTIONS = {
    frozenset("DR"): "╭", frozenset("DL"): "╮", frozenset("UR"): "╰", frozenset("UL"): "╯",
    frozenset("UDR"): "├", frozenset("UDL"): "┤", frozenset("LRD"): "┬", frozenset("LRU"): "┴",
    frozenset("UDLR"): "┼",
}


def render_graph(graph: nx.Graph, use_unicode: bool = False, max_width: Optional[int] = None) -> str:
    """Draws ``graph`` as text (no trailing spaces; rows joined with newlines).

    Args:
        graph: A task spec graph or expanded task graph (any acyclic networkx graph).
        use_unicode: Box-drawing characters instead of ASCII.
        max_width: Components are placed side by side while the drawing fits this many columns
            (default: the terminal's width); a component wider than that is drawn whole on its own.
    """
    check_graph(graph, "render_graph")
    if graph.number_of_nodes() == 0:
        return "(empty graph)"
    if max_width is None:
        max_width = shutil.get_terminal_size((120, 24)).columns
    charset = _Charset(use_unicode)
    layouts = layered_layout(graph, lambda label: len(label) + 4, xspace=_GAP)
    blocks = [_draw_component(layout, charset) for layout in layouts]
    lines: List[str] = []
    if graph.graph.get("name"):
        lines.append(str(graph.graph["name"]))
    for shelf in _shelves(blocks, max_width):
        if len(lines) > (1 if graph.graph.get("name") else 0):
            lines.append("")
        height = max(len(block) for block in shelf)
        for row in range(height):
            parts = []
            for block in shelf:
                width = max(len(line) for line in block)
                parts.append((block[row] if row < len(block) else "").ljust(width))
            lines.append((" " * _COMPONENT_GAP).join(parts).rstrip())
    return "\n".join(lines)


def _shelves(blocks: List[List[str]], max_width: int) -> List[List[List[str]]]:
    shelves: List[List[List[str]]] = []
    used = 0
    for block in blocks:
        width = max(len(line) for line in block)
        if shelves and used + _COMPONENT_GAP + width <= max_width:
            shelves[-1].append(block)
            used += _COMPONENT_GAP + width
        else:
            shelves.append([block])
            used = width
    return shelves


class _Canvas:
    """Line cells by owner: ("out", slot) below a node, ("in", slot) above one, ("bus", slot) for
    the horizontal line that carries a node's edges; a dummy slot's line is ("pass", slot)."""

    def __init__(self) -> None:
        self.cells: Dict[Tuple[int, int], Dict[tuple, Set[str]]] = {}

    def mark(self, row: int, col: int, owner: tuple, dirs: str) -> None:
        self.cells.setdefault((row, col), {}).setdefault(owner, set()).update(dirs)

    def vertical(self, col: int, top: int, bottom: int, owner: tuple) -> None:
        for row in range(top, bottom + 1):
            self.mark(row, col, owner, (_U if row > top else "") + (_D if row < bottom else ""))

    def horizontal(self, row: int, left: int, right: int, owner: tuple) -> None:
        for col in range(left, right + 1):
            self.mark(row, col, owner, (_L if col > left else "") + (_R if col < right else ""))


def _out_key(slot: Slot) -> tuple:
    return ("pass" if slot.dummy else "out", id(slot))


class _Net:
    """The edges between two layers that share one horizontal bus: those of a node with several
    successors, or all edges into one node from nodes without other successors. Each net enters
    each of its targets through a column of its own, so a column below a bus leads to one place."""

    def __init__(self) -> None:
        self.sources: List[Slot] = []
        self.targets: List[Slot] = []
        self.entry: Dict[int, int] = {}  # target id -> the column this net enters it by
        self.left = self.right = 0
        self.track = -1  # -1: a straight vertical line, no bus

    def in_key(self, target: Slot) -> tuple:
        return ("in", id(self), id(target))


def _draw_component(layout: ComponentLayout, charset: _Charset) -> List[str]:
    layers = layout.layers
    left: Dict[int, int] = {}
    for layer in layers:
        edge = -_GAP
        for slot in layer:  # boxes are placed by their centre column, so that equal centres line up
            left[id(slot)] = max(int(slot.x + 0.5) - slot.width // 2, edge + _GAP)
            edge = left[id(slot)] + slot.width
    canvas = _Canvas()
    related: Dict[tuple, Set[tuple]] = {}
    arrows: List[Tuple[int, int]] = []
    kept: List[_Net] = []
    top = 0
    tops: List[int] = []
    for rank, layer in enumerate(layers):
        tops.append(top)
        if rank == len(layers) - 1:
            break
        lower = layers[rank + 1]
        nets = _nets(layer)
        kept.extend(nets)  # cells name nets by id(): keep them alive so that no id is reused
        _choose_entries(layer, lower, nets, left)
        out_port = _choose_exits(layer, nets, left)
        n_tracks = _assign_tracks(nets, out_port)
        stub, arrow = top + 3, top + 4 + n_tracks
        for net in nets:
            row = arrow if net.track < 0 else top + 4 + net.track
            for source in net.sources:
                owner = _out_key(source) if net.track >= 0 else net.in_key(net.targets[0])
                canvas.vertical(out_port[id(source)], top if source.dummy else stub, row, owner)
            for target in net.targets:
                canvas.vertical(net.entry[id(target)], row, arrow, net.in_key(target))
                if target.dummy:  # the long edge goes on through the layer's rows
                    canvas.vertical(net.entry[id(target)], arrow, arrow + 3, net.in_key(target))
                else:
                    arrows.append((arrow, net.entry[id(target)]))
            if net.track >= 0:
                bus = ("bus", id(net))
                canvas.horizontal(row, net.left, net.right, bus)
                related[bus] = {_out_key(s) for s in net.sources} | {net.in_key(t) for t in net.targets}
        for target in lower:  # a dummy's line continues below as its own out line
            if target.dummy:
                net = next(n for n in nets if target in n.targets)
                canvas.vertical(net.entry[id(target)], arrow + 1, arrow + 3, _out_key(target))
        top = arrow + 1
    height = top + 3
    width = max(left[id(s)] + s.width for layer in layers for s in layer)
    grid = [[" "] * width for _ in range(height)]
    for (row, col), owners in canvas.cells.items():
        grid[row][col] = charset.line(_cell_dirs(owners, related))
    for rank, layer in enumerate(layers):
        for slot in layer:
            if not slot.dummy:
                _draw_box(grid, tops[rank], left[id(slot)], slot, charset)
    for row, col in arrows:
        grid[row][col] = charset.arrow
    return ["".join(row).rstrip() for row in grid]


def _nets(layer: List[Slot]) -> List[_Net]:
    nets: Dict[Any, _Net] = {}
    for slot in layer:
        if not slot.succ:
            continue
        key = ("into", id(slot.succ[0])) if len(slot.succ) == 1 else ("from", id(slot))
        net = nets.setdefault(key, _Net())
        net.sources.append(slot)
        for target in slot.succ:
            if target not in net.targets:
                net.targets.append(target)
    return list(nets.values())


def _inner_columns(slot: Slot, left: Dict[int, int]) -> List[int]:
    """The columns inside a box, nearest to its centre first (a dummy has its one column)."""
    if slot.dummy:
        return [left[id(slot)]]
    centre, first, last = left[id(slot)] + slot.width // 2, left[id(slot)] + 1, left[id(slot)] + slot.width - 2
    return [c for d in range(slot.width) for c in ((centre - d, centre + d) if d else (centre,)) if first <= c <= last]


def _choose_entries(upper: List[Slot], lower: List[Slot], nets: List[_Net], left: Dict[int, int]) -> None:
    """Gives each (net, target) its entry column: different nets enter a node by different columns,
    away from long edges that pass above the node on their way elsewhere."""
    passing = {left[id(d)]: d for d in upper if d.dummy}
    feeding: Dict[int, List[_Net]] = {}
    for net in nets:
        for target in net.targets:
            feeding.setdefault(id(target), []).append(net)
    for target in lower:
        into = feeding.get(id(target), [])
        if not into:
            continue
        inner = _inner_columns(target, left)
        rest = []
        for net in into:  # a long edge that comes down right above the node goes straight in
            col = next((left[id(s)] for s in net.sources if s.dummy and left[id(s)] in inner), None)
            if col is None:
                rest.append(net)
            else:
                net.entry[id(target)] = col
        used = set(passing) | {net.entry[id(target)] for net in into if id(target) in net.entry}
        free = [c for c in inner if c not in used] or inner
        rest.sort(key=lambda n: sum(left[id(s)] for s in n.sources) / len(n.sources))
        if len(free) >= len(rest):
            columns = sorted(free[:len(rest)])
        else:
            columns = [free[i % len(free)] for i in range(len(rest))]
        for net, col in zip(rest, columns):
            net.entry[id(target)] = col


def _choose_exits(upper: List[Slot], nets: List[_Net], left: Dict[int, int]) -> Dict[int, int]:
    """Each node leaves by one column: straight above one of its own entries when it can, and
    never above another net's entry (two lines never share a column)."""
    taken = {col for net in nets for col in net.entry.values()}
    out_port: Dict[int, int] = {}
    for net in nets:
        own = set(net.entry.values())
        for source in net.sources:
            inner = _inner_columns(source, left)
            straight = [c for c in inner if c in own]
            out_port[id(source)] = next((c for c in straight + inner if c not in taken or c in own), inner[0])
    return out_port


def _assign_tracks(nets: List[_Net], out_port: Dict[int, int]) -> int:
    """Gives each bus a row (buses that would touch get different rows); returns the row count."""
    ends: List[int] = []  # rightmost column used on each track
    for net in sorted(nets, key=lambda n: min(out_port[id(s)] for s in n.sources)):
        cols = [out_port[id(s)] for s in net.sources] + list(net.entry.values())
        net.left, net.right = min(cols), max(cols)
        if net.left == net.right:
            continue
        for track, used in enumerate(ends):
            if net.left > used + 2:  # two free columns between buses on one row
                break
        else:
            track = len(ends)
            ends.append(-10)
        ends[track] = net.right
        net.track = track
    return len(ends)


def _cell_dirs(owners: Dict[tuple, Set[str]], related: Dict[tuple, Set[tuple]]) -> FrozenSet[str]:
    buses = [o for o in owners if o[0] == "bus"]
    lines = [o for o in owners if o[0] != "bus"]
    if buses and lines:
        joined = [o for o in lines if o in related.get(buses[0], ())]
        chosen = buses + joined if joined else lines  # a crossing draws the vertical line
    else:
        chosen = list(owners)
    dirs: Set[str] = set()
    for owner in chosen:
        dirs |= owners[owner]
    return frozenset(dirs or {_U, _D})


def _draw_box(grid: List[List[str]], top: int, left: int, slot: Slot, charset: _Charset) -> None:
    tl, tr, bl, br, h, v = tuple(charset.box)
    inner = slot.width - 2
    grid[top][left:left + slot.width] = list(tl + h * inner + tr)
    grid[top + 1][left:left + slot.width] = list(v + f" {slot.label} ".ljust(inner) + v)
    grid[top + 2][left:left + slot.width] = list(bl + h * inner + br)


def _can_encode(text: str) -> bool:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def visualize_graph_in_console(graph: nx.Graph, use_pager: bool = True, use_unicode: bool = False) -> None:
    """Draws a task graph (``flow.task_spec_graph`` or ``flow.task_graph``) in the console.

    Every connected component is drawn, labels are never cut. With ``use_pager`` and a terminal on
    stdin and stdout, the drawing goes through ``$MANPAGER`` / ``$PAGER`` / ``less`` (less chops
    long lines: scroll sideways with the arrow keys; quit with ``q``); otherwise it is printed.

    Args:
        graph: A networkx directed graph.
        use_pager: Show the drawing in a pager when stdout is a terminal.
        use_unicode: Use box-drawing characters (when stdout's encoding has them; ASCII otherwise).
    """
    if use_unicode and not _can_encode("╭─╮│▼┼"):
        logger.warning("stdout's encoding (%s) has no box-drawing characters; drawing the graph in ASCII.",
                       getattr(sys.stdout, "encoding", None))
        use_unicode = False
    text = render_graph(graph, use_unicode=use_unicode)
    if use_pager and sys.stdout.isatty() and sys.stdin.isatty() and _page(text):
        return
    print(text)


def _pager_command() -> Optional[str]:
    """The user's pager as a shell command (``$MANPAGER``, ``$PAGER``, else less or more); None if none."""
    if os.environ.get("TERM") in ("dumb", "emacs"):
        return None
    command = (os.environ.get("MANPAGER") or os.environ.get("PAGER") or "").strip()
    if not command:
        command = "less" if shutil.which("less") else ("more" if shutil.which("more") else "")
    if not command:
        return None
    if command == "less" or command.startswith("less "):
        command += " --chop-long-lines --RAW-CONTROL-CHARS"  # wide graphs scroll sideways, never wrap
    return command


def _page(text: str) -> bool:
    """Shows ``text`` in the user's pager; False when there is none (then the caller prints)."""
    command = _pager_command()
    if command is None:
        return False
    try:
        subprocess.run(command, shell=True, input=text + "\n", text=True, check=False)
    except OSError as error:
        logger.warning("Could not start the pager %r (%s); printing the graph.", command, error)
        return False
    return True
