"""The interactive view of a task graph: a bokeh plot (pan, zoom, hover showing each task's config).

In a running Jupyter notebook the plot is shown in the cell; anywhere else it is written to a
self-contained HTML file (bokeh's JavaScript inlined, so it works offline) that is opened in a
browser when one is available. bokeh is the ``viz`` extra and is imported only here, on use.
"""

import html
import json
import logging
import os
import sys
import tempfile
import webbrowser
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import networkx as nx

from fluidml._reduce_groups import key_label
from fluidml.visualization._layout import ComponentLayout, check_graph, layered_layout

__all__ = ["visualize_graph_interactive"]

logger = logging.getLogger(__name__)

_CHAR_PX = 8.5  # approximate width of one label character at 13px
_COMPONENT_GAP = 2.0  # in node widths


def _bokeh() -> Any:
    try:
        import bokeh  # noqa: F401
    except ImportError as error:
        raise ImportError(
            'visualize_graph_interactive needs bokeh, which is not installed: pip install "fluidml[viz]"'
        ) from error
    return bokeh


def _in_notebook() -> bool:
    """True inside a running Jupyter kernel (IPython is only looked at if it is already imported)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _describe(graph: nx.Graph, node: Any) -> Dict[str, str]:
    """What the hover shows for a node: its kind and its config as indented JSON."""
    obj = graph.nodes[node].get("task")
    if obj is None:
        return {"kind": "node", "config": "{}"}
    if hasattr(obj, "expand_fn"):  # a TaskSpec: the grid as declared
        parts = ["task spec"]
        if obj.expand_fn:
            parts.append(f"expand={obj.expand_fn}")
        if obj.reduce:
            parts.append(_reduce_text(obj.reduce_keys))
        config: Any = obj.config
        kind = ", ".join(parts)
    else:
        config = dict(obj.config)
        kind = f"task {obj.name}"
        if getattr(obj, "reduce_keys", None):  # a group reducer: which keys, and the values of its group
            group = ", ".join(f"{key_label(key)}={json.dumps(value, default=repr)}"
                              for key, value in obj._reduce_group or ())
            kind += f", {_reduce_text(obj.reduce_keys)}; group: {group or 'all'}"
    return {"kind": kind, "config": json.dumps(config, indent=2, sort_keys=True, default=repr)}


def _reduce_text(keys: Any) -> str:
    """"reduce" for ``reduce=True``; "reduce over train.seed" for a group reducer."""
    if not keys:
        return "reduce"
    return "reduce over " + ", ".join(key if isinstance(key, str) else key_label(key) for key in keys)


def _place(layouts: List[ComponentLayout], node_height: float) -> List[Dict[str, Any]]:
    """Places the components side by side; returns one dict per slot position (x, y) by id."""
    offset = 0.0
    placed = []
    for layout in layouts:
        widest = max((s.width for layer in layout.layers for s in layer), default=0)
        for rank, layer in enumerate(layout.layers):
            for slot in layer:
                placed.append({"slot": slot, "x": slot.x + offset, "y": -rank * 2.0 * node_height})
        offset += layout.width + _COMPONENT_GAP * widest
    return placed


def build_figure(graph: nx.Graph, plot_width: int = 500, plot_height: int = 200, node_width: int = 50,
                 node_height: int = 50, scale_width: bool = True) -> Any:
    """The bokeh figure of ``graph`` (what ``visualize_graph_interactive`` shows)."""
    _bokeh()
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.models.annotations import Arrow, LabelSet, NormalHead
    from bokeh.plotting import figure

    check_graph(graph, "visualize_graph_interactive")
    layouts = layered_layout(graph, lambda label: int(max(node_width, _CHAR_PX * len(label) + 16)),
                             xspace=node_width / 2, height=node_height, dummy_width=1)
    placed = _place(layouts, node_height)
    where = {id(p["slot"]): (p["x"], p["y"]) for p in placed}
    nodes = [p for p in placed if not p["slot"].dummy]

    described = [_describe(graph, p["slot"].key) for p in nodes]
    node_source = ColumnDataSource({
        "x": [p["x"] for p in nodes],
        "y": [p["y"] for p in nodes],
        "width": [p["slot"].width for p in nodes],
        "name": [p["slot"].label for p in nodes],
        "kind": [d["kind"] for d in described],
        "config": [html.escape(d["config"]) for d in described],
    })
    xs: List[List[float]] = []
    ys: List[List[float]] = []
    arrows: Dict[str, List[float]] = {"x0": [], "y0": [], "x1": [], "y1": []}
    for layout in layouts:
        for chain in layout.edges:
            points = [where[id(slot)] for slot in chain]
            # leave each box at its bottom and enter the target at its top
            points[0] = (points[0][0], points[0][1] - node_height * 0.3)
            points[-1] = (points[-1][0], points[-1][1] + node_height * 0.3)
            xs.append([x for x, _ in points])
            ys.append([y for _, y in points])
            for key, value in zip(("x0", "y0", "x1", "y1"), (*points[-2], *points[-1])):
                arrows[key].append(value)

    plot = figure(
        width=plot_width, height=plot_height, title="Task Graph",
        sizing_mode="scale_width" if scale_width else "fixed",
        tools="pan,wheel_zoom,box_zoom,reset,save", active_scroll="wheel_zoom", match_aspect=True,
    )
    plot.title.text_font_size = "20pt"  # type: ignore[union-attr]
    plot.axis.visible = False
    plot.grid.visible = False
    plot.multi_line(xs, ys, line_color="#6b7280", line_width=1.5)
    plot.add_layout(Arrow(  # type: ignore[call-arg]  # (bokeh's stubs name the line props body_*)
        end=NormalHead(size=9, fill_color="#6b7280", line_color="#6b7280"), source=ColumnDataSource(arrows),
        x_start="x0", y_start="y0", x_end="x1", y_end="y1", line_color="#6b7280", line_width=1.5))
    # the rectangles take the hover; the labels (sized in screen pixels) always fit their text
    boxes = plot.rect("x", "y", width="width", height=node_height, source=node_source,
                      fill_color="#dbeafe", fill_alpha=0.35, line_alpha=0.0)
    plot.add_layout(LabelSet(x="x", y="y", text="name", source=node_source, text_align="center",
                             text_baseline="middle", text_font_size="13px", text_color="#111827",
                             background_fill_color="#dbeafe", border_line_color="#1e3a8a"))
    plot.add_tools(HoverTool(renderers=[boxes], tooltips=(
        '<div style="max-width: 480px"><b>@name</b> <i>(@kind)</i>'
        '<pre style="margin: 4px 0 0; font-size: 11px">@config{safe}</pre></div>'
    )))
    return plot


def visualize_graph_interactive(
    graph: nx.Graph,
    plot_width: int = 500,
    plot_height: int = 200,
    node_width: int = 50,
    node_height: int = 50,
    scale_width: bool = True,
    browser: Optional[str] = None,
    filename: Optional[Union[str, os.PathLike]] = None,
    open_browser: bool = True,
) -> Optional[str]:
    """Shows a task graph (``flow.task_spec_graph`` or ``flow.task_graph``) as an interactive plot.

    In a running Jupyter notebook the plot appears in the cell (and None is returned). Otherwise it
    is written to a self-contained HTML file and opened in a web browser when one is available.

    Args:
        graph: A networkx directed graph.
        plot_width: The width of the plot (pixels).
        plot_height: The height of the plot (pixels).
        node_width: The smallest node width; also sets the horizontal space between nodes.
        node_height: The node height; the vertical space between layers is the same again.
        scale_width: Scale the plot to the page's width (keeping its aspect ratio).
        browser: A browser name known to Python's ``webbrowser`` (e.g. ``"firefox"``); the
            system default when None.
        filename: Where to write the HTML file; a new temporary file when None.
        open_browser: Open the file in a browser (never fails: without one, the path is logged).

    Returns:
        The path of the HTML file, or None when shown in a notebook.

    Raises:
        ImportError: bokeh is not installed (``pip install "fluidml[viz]"``).
    """
    _bokeh()
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    plot = build_figure(graph, plot_width, plot_height, node_width, node_height, scale_width)
    if _in_notebook():
        from bokeh.io import output_notebook, show

        output_notebook(resources=INLINE, hide_banner=True)
        show(plot)
        return None
    if filename is None:
        handle, name = tempfile.mkstemp(prefix="fluidml-task-graph-", suffix=".html")
        os.close(handle)
        path = Path(name)
    else:
        path = Path(filename)
    title = str(graph.graph.get("name") or "task graph")
    page = file_html(plot, resources=INLINE, title=f"fluidml: {title}")
    index = _task_index(graph)
    page = page[:page.rindex("</body>")] + index + page[page.rindex("</body>"):]
    path.write_text(page, encoding="utf-8")
    if open_browser:
        _open(path, browser)
    return str(path)


def _task_index(graph: nx.Graph) -> str:
    """A list of the tasks and their configs under the plot: the canvas's text cannot be searched
    (Ctrl+F) or read by screen readers; this list can."""
    items = []
    for node in graph.nodes:
        described = _describe(graph, node)
        items.append(f'<li><details><summary>{html.escape(str(node))} <i>({html.escape(described["kind"])})</i>'
                     f'</summary><pre>{html.escape(described["config"])}</pre></details></li>')
    return (f'<section id="fluidml-task-index" style="font: 13px sans-serif; margin: 12px 8px">'
            f"<details><summary>{len(items)} tasks</summary><ul>{''.join(items)}</ul></details></section>")


def _open(path: Path, browser: Optional[str]) -> None:
    url = path.resolve().as_uri()
    try:
        opened = webbrowser.get(browser).open(url) if browser else webbrowser.open(url)
    except webbrowser.Error as error:
        logger.warning("Could not open a browser (%s); the task graph is in %s", error, path)
        return
    if not opened:
        logger.info("No browser to open; the task graph is in %s", path)
