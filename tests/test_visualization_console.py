"""The console graph view: boxes and edges read back from the text, every component, large graphs,
unicode, the pager on a terminal."""

import logging
import sys

import networkx as nx
import pytest

from fluidml import Flow, TaskSpec
from fluidml.visualization import render_graph, visualize_graph_in_console
from screen import Drawing, run_in_pty


def split():
    pass


def featurize(n):
    pass


def train(c):
    pass


def evaluate():
    pass


def select():
    pass


def model_selection_flow(n_features=2, n_c=3):
    """split -> featurize (grid) -> train (grid, also requires split) -> evaluate -> select (reduce)."""
    s = TaskSpec(task=split)
    f = TaskSpec(task=featurize, config={"n": list(range(n_features))}, expand="product")
    t = TaskSpec(task=train, config={"c": list(range(n_c))}, expand="product")
    e = TaskSpec(task=evaluate)
    sel = TaskSpec(task=select, reduce=True)
    f.requires(s)
    t.requires(s, f)
    e.requires(t)
    sel.requires(e)
    return Flow([s, f, t, e, sel])


def successors(graph):
    return {str(node): {str(s) for s in graph.successors(node)} for node in graph.nodes}


def assert_drawn_faithfully(graph, text):
    """Every node is one intact box, and following the lines from each box reaches exactly its successors."""
    drawing = Drawing(text)
    assert drawing.duplicates == []
    assert set(drawing.boxes) == {str(node) for node in graph.nodes}
    for node, expected in successors(graph).items():
        assert drawing.targets(node) == expected, node


@pytest.mark.parametrize("use_unicode", [False, True])
@pytest.mark.parametrize("which", ["task_spec_graph", "task_graph"])
def test_edges_lead_to_the_successors(which, use_unicode):
    """Spec and task graphs: each edge can be followed from its source box to its target box."""
    graph = getattr(model_selection_flow(), which)
    assert_drawn_faithfully(graph, render_graph(graph, use_unicode=use_unicode))


def test_ascii_drawing_of_a_chain():
    """A chain is drawn as boxes joined by vertical lines with arrows, under the graph's name."""
    graph = nx.DiGraph(name="chain")
    graph.add_edges_from([("load", "train"), ("train", "report")])
    lines = render_graph(graph).splitlines()
    assert lines[0] == "chain"
    assert [line.strip() for line in lines[1:]] == [
        "+------+", "| load |", "+------+", "|", "v",
        "+-------+", "| train |", "+-------+", "|", "v",
        "+--------+", "| report |", "+--------+",
    ]


def test_unicode_drawing_uses_box_drawing_characters():
    """The unicode set has rounded boxes, box-drawing lines and ▼ arrows; no ASCII line characters."""
    text = render_graph(model_selection_flow().task_graph, use_unicode=True)
    assert "╭─" in text and "─╯" in text and "▼" in text and "┴" in text
    assert not set(text) & set("+|v-*") - set("".join(str(n) for n in model_selection_flow().task_graph))


def test_every_connected_component_is_drawn():
    """Independent branches (a-1 -> b-1, a-2 -> b-2) are all drawn, side by side."""
    a = TaskSpec(task=featurize, name="a", config={"n": [1, 2]}, expand="product")
    b = TaskSpec(task=train, name="b", config={"c": 1})
    b.requires(a)
    graph = Flow([a, b]).task_graph
    text = render_graph(graph, max_width=200)
    assert_drawn_faithfully(graph, text)
    rows = {Drawing(text).boxes[name][0] for name in ("a-1", "a-2")}
    assert len(rows) == 1  # on the same rows: side by side


def test_labels_are_never_cut():
    """A label wider than the terminal is drawn whole."""
    graph = nx.DiGraph()
    long_name = "a_task_with_a_very_long_name_" * 6
    graph.add_edge(long_name, "short")
    text = render_graph(graph, max_width=40)
    assert f"| {long_name} |" in text
    assert_drawn_faithfully(graph, text)


def test_200_independent_tasks_wrap_into_rows_that_fit_the_width():
    """100 two-task branches: all 200 boxes drawn, no line wider than the given width."""
    a = TaskSpec(task=featurize, name="prepare", config={"n": list(range(100))}, expand="product")
    b = TaskSpec(task=train, name="fit", config={"c": 1})
    b.requires(a)
    graph = Flow([a, b]).task_graph
    assert graph.number_of_nodes() == 200
    text = render_graph(graph, max_width=100)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert_drawn_faithfully(graph, text)


def test_200_tasks_in_one_component_stay_readable():
    """split -> 2 features -> 98 trainings -> 98 evaluations -> select: every box intact, every edge
    followable, and the fan-in to the reducer takes a single horizontal line."""
    graph = model_selection_flow(n_features=2, n_c=49).task_graph
    assert graph.number_of_nodes() == 200
    text = render_graph(graph)
    assert_drawn_faithfully(graph, text)
    drawing = Drawing(text)
    select_top = drawing.boxes["select"][0]
    evaluate_bottom = max(drawing.boxes[f"evaluate-{i}"][0] for i in range(1, 99)) + 2
    assert select_top - evaluate_bottom == 4  # stub row, one bus row, arrow row


def test_empty_graph_and_bad_input():
    """An empty graph draws as a note; a non-graph or a cycle is a clear error."""
    assert render_graph(nx.DiGraph()) == "(empty graph)"
    with pytest.raises(TypeError, match="networkx graph"):
        render_graph({"a": ["b"]})
    with pytest.raises(ValueError, match="cycle: a -> b"):
        render_graph(nx.DiGraph([("a", "b"), ("b", "a")]))


def test_printed_when_stdout_is_not_a_terminal(capsys):
    """With use_pager=True but no terminal, the drawing is printed."""
    graph = model_selection_flow().task_spec_graph
    visualize_graph_in_console(graph, use_pager=True)
    assert capsys.readouterr().out == render_graph(graph) + "\n"


def test_unicode_falls_back_to_ascii_when_stdout_cannot_encode_it(monkeypatch, capsys, caplog):
    """On an ASCII-only stdout, use_unicode draws ASCII and says why."""
    import io

    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", stream)
    graph = model_selection_flow().task_spec_graph
    with caplog.at_level(logging.WARNING, logger="fluidml"):
        visualize_graph_in_console(graph, use_pager=False, use_unicode=True)
    stream.flush()
    assert stream.buffer.getvalue().decode("ascii") == render_graph(graph) + "\n"
    assert "box-drawing" in caplog.text


PAGER_SCRIPT = """
import networkx as nx
from fluidml.visualization import visualize_graph_in_console
visualize_graph_in_console(nx.DiGraph([("load", "train")]), use_pager={use_pager}, use_unicode=True)
print("after")
"""


def test_pager_gets_the_drawing_on_a_terminal(tmp_path):
    """On a terminal, the drawing goes through $PAGER, not straight to the screen."""
    paged = tmp_path / "paged.txt"
    code, out = run_in_pty(PAGER_SCRIPT.format(use_pager=True), env={"PAGER": f"cat > {paged}"})
    assert code == 0, out
    expected = render_graph(nx.DiGraph([("load", "train")]), use_unicode=True)
    assert paged.read_text(encoding="utf-8") == expected + "\n"
    assert "│ load │" not in out and "after" in out


def test_no_pager_on_a_terminal_when_asked(tmp_path):
    """use_pager=False prints on the terminal even when a pager is set."""
    paged = tmp_path / "paged.txt"
    code, out = run_in_pty(PAGER_SCRIPT.format(use_pager=False), env={"PAGER": f"cat > {paged}"})
    assert code == 0, out
    assert "│ load │" in out and not paged.exists()
