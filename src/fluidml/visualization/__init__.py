"""Views of a task graph: ``visualize_graph_in_console`` (ASCII or unicode boxes and edges) and
``visualize_graph_interactive`` (an interactive bokeh plot: a notebook cell or a self-contained
HTML file). bokeh is optional (``pip install "fluidml[viz]"``) and only imported when the
interactive view is drawn.
"""

from fluidml.visualization.console import render_graph, visualize_graph_in_console
from fluidml.visualization.interactive import visualize_graph_interactive

__all__ = ["render_graph", "visualize_graph_in_console", "visualize_graph_interactive"]
