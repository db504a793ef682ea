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


def _in_key(slot: Slot) -> tuple:
    return ("pass" if slot.dummy else "in", id(slot))


def _draw_component(layout: ComponentLayout, charset: _Charset) -> List[str]:
    layers = layout.layers
    left: Dict[int, int] = {}
    for layer in layers:
        edge = -_GAP
        for slot in layer:  # boxes are placed by their centre column, so that equal centres line up
            left[id(slot)] = max(int(slot.x + 0.5) - slot.width // 2, edge + _GAP)
            edge = left[id(slot)] + slot.width
    in_port = {id(s): left[id(s)] + s.width // 2 for layer in layers for s in layer}
    out_port = dict(in_port)
    for upper, lower in zip(layers, layers[1:]):
        _choose_out_ports(upper, lower, left, in_port, out_port)

    canvas = _Canvas()
    related: Dict[tuple, Set[tuple]] = {}
    top = 0
    tops: List[int] = []
    for rank, layer in enumerate(layers):
        tops.append(top)
        if rank == len(layers) - 1:
            break
        nets = _nets(layer, out_port, in_port)
        n_tracks = max((net.track for net in nets), default=-1) + 1
        stub, arrow = top + 3, top + 4 + n_tracks
        for index, net in enumerate(nets):
            row = arrow if net.track < 0 else top + 4 + net.track
            for source in net.sources:
                # a straight line belongs to its target, so that it joins the target's other edges
                owner = _out_key(source) if net.track >= 0 else _in_key(net.targets[0])
                canvas.vertical(out_port[id(source)], top if source.dummy else stub, row, owner)
            for target in net.targets:
                canvas.vertical(in_port[id(target)], row, arrow, _in_key(target))
            if net.track >= 0:
                bus = ("bus", rank, index)
                canvas.horizontal(row, net.left, net.right, bus)
                related[bus] = {_out_key(s) for s in net.sources} | {_in_key(t) for t in net.targets}
        for slot in layers[rank + 1]:
            if slot.dummy:  # the long edge goes on through the layer's rows
                canvas.vertical(in_port[id(slot)], arrow, arrow + 3, _in_key(slot))
        top = arrow + 1
    height = top + 3
    width = max(left[id(s)] + s.width for layer in layers for s in layer)
    grid = [[" "] * width for _ in range(height)]
    for (row, col), owners in canvas.cells.items():
        grid[row][col] = charset.line(_cell_dirs(owners, related))
    for rank, layer in enumerate(layers):
        for slot in layer:
            if slot.dummy:
                continue
            _draw_box(grid, tops[rank], left[id(slot)], slot, charset)
            if rank > 0 and slot.pred:
                grid[tops[rank] - 1][in_port[id(slot)]] = charset.arrow
    return ["".join(row).rstrip() for row in grid]


def _choose_out_ports(upper: List[Slot], lower: List[Slot], left: Dict[int, int], in_port: Dict[int, int],
                      out_port: Dict[int, int]) -> None:
    """A node's edges leave from a column that no unrelated line below uses (so two lines never
    share a column); a node with one successor that has one predecessor right below it goes straight."""
    taken = {in_port[id(s)] for s in lower}
    for slot in upper:
        if slot.dummy or not slot.succ:
            continue
        only = slot.succ[0] if len(slot.succ) == 1 and len(slot.succ[0].pred) == 1 else None
        first, last = left[id(slot)] + 1, left[id(slot)] + slot.width - 2
        centre = in_port[id(slot)]
        candidates = [centre] + [c for d in range(1, slot.width) for c in (centre - d, centre + d)]
        if only is not None:  # straight down into its only successor when it is below this box
            candidates.insert(0, in_port[id(only)])
        for col in candidates:
            if first <= col <= last and (col not in taken or (only is not None and in_port[id(only)] == col)):
                out_port[id(slot)] = col
                break


class _Net:
    """Lines between two layers that share one bus: the edges of a node with several successors,
    or all edges into one node from nodes that have no other successor."""

    def __init__(self) -> None:
        self.sources: List[Slot] = []
        self.targets: List[Slot] = []
        self.left = self.right = 0
        self.track = -1  # -1: a straight vertical line, no bus


def _nets(layer: List[Slot], out_port: Dict[int, int], in_port: Dict[int, int]) -> List["_Net"]:
    """Groups the edges below ``layer`` into nets and gives each bus a row (buses that would touch
    get different rows)."""
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
    ends: List[int] = []  # rightmost column used on each track
    for net in sorted(nets.values(), key=lambda n: min(out_port[id(s)] for s in n.sources)):
        cols = [out_port[id(s)] for s in net.sources] + [in_port[id(t)] for t in net.targets]
        net.left, net.right = min(cols), max(cols)
        if net.left == net.right:
            continue
        for track, used in enumerate(ends):
            if net.left > used + 1:
                break
        else:
            track = len(ends)
            ends.append(-10)
        ends[track] = net.right
        net.track = track
    return list(nets.values())


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
