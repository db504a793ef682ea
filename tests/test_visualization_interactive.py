"""The interactive graph view: the HTML file as a real headless browser (chromium) shows it, the
browser hand-off, and the error without bokeh."""

import html
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from fluidml import Flow, TaskSpec
from fluidml.visualization import visualize_graph_interactive

pytest.importorskip("bokeh", reason='bokeh is not installed here (pip install "fluidml[viz]")')

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed on this machine (.ci/run installs Debian's 'chromium')"
)


def prepare(source):
    pass


def train(lr, task):
    pass


def report():
    pass


def small_flow():
    """prepare -> train (lr grid of 3) -> report (reduce)."""
    p = TaskSpec(task=prepare, name="prepare")
    t = TaskSpec(task=train, name="train", config={"lr": [0.1, 0.01, 0.001]}, expand="product")
    r = TaskSpec(task=report, name="report", reduce=True)
    t.requires(p)
    r.requires(t)
    return Flow([p, t, r])


def chromium(tmp_path, *args):
    """Runs headless chromium with a throw-away profile; returns its stdout."""
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", *args],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def pixel_colours(png_path):
    from PIL import Image

    with Image.open(png_path) as image:
        rgb = image.convert("RGB")
        return rgb.size, {colour: count for count, colour in rgb.getcolors(maxcolors=1 << 24)}


@needs_chromium
def test_html_renders_the_graph_in_a_headless_browser(tmp_path):
    """The page draws the plot (boxes and edges in the screenshot) and lists every task."""
    flow = small_flow()
    path = visualize_graph_interactive(flow.task_graph, filename=tmp_path / "graph.html", open_browser=False)
    assert path == str(tmp_path / "graph.html")
    page = (tmp_path / "graph.html").read_text(encoding="utf-8")
    assert "<script" in page and "cdn.bokeh.org" not in page  # inline resources: works offline

    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1000,600", (tmp_path / "graph.html").as_uri())
    size, colours = pixel_colours(shot)
    assert size == (1000, 600)
    assert len(colours) > 50  # not blank: text, lines and boxes are antialiased into many colours
    label_fill = colours.get((0xDB, 0xEA, 0xFE), 0)
    edge_grey = sum(n for (r, g, b), n in colours.items() if abs(r - 0x6B) < 12 and abs(g - 0x72) < 12
                    and abs(b - 0x80) < 12)
    assert label_fill > 500 and edge_grey > 200, (label_fill, edge_grey)

    dom = chromium(tmp_path, "--dump-dom", (tmp_path / "graph.html").as_uri())
    assert 'class="bk-Figure"' in dom  # BokehJS ran and built the figure
    body = dom[dom.index('id="fluidml-task-index"'):]
    for name in ["prepare", "train-1", "train-2", "train-3", "report"]:
        assert f"<summary>{name} <i>" in body
    assert '"lr": 0.01' in body  # each task's config


def test_spec_graph_hover_data_holds_the_declared_grid(tmp_path):
    """For a spec graph, the hover text is the grid as declared, with its expand mode."""
    from fluidml.visualization.interactive import build_figure

    figure = build_figure(small_flow().task_spec_graph)
    data = next(r.data_source.data for r in figure.renderers if "config" in r.data_source.data)
    row = list(data["name"]).index("train")
    assert data["kind"][row] == "task spec, expand=product"
    assert html.unescape(data["config"][row]) == '{\n  "lr": [\n    0.1,\n    0.01,\n    0.001\n  ]\n}'
    assert data["kind"][list(data["name"]).index("report")] == "task spec, reduce"


def test_written_to_a_temporary_file_and_opened_in_the_browser(tmp_path):
    """Without a filename the page goes to a new temporary file, which is handed to $BROWSER."""
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.py"
    browser.write_text(f"import sys\nopen({str(opened)!r}, 'w').write(sys.argv[1])\n")
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_visualization_interactive import small_flow
        from fluidml.visualization import visualize_graph_interactive
        print(visualize_graph_interactive(small_flow().task_graph))
    """)
    env = {**os.environ, "BROWSER": f"{sys.executable} {browser} %s"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          check=True)
    path = done.stdout.strip()
    try:
        assert os.path.basename(path).startswith("fluidml-task-graph-") and path.endswith(".html")
        assert opened.read_text() == "file://" + path
        with open(path, encoding="utf-8") as page:
            assert "train-3" in page.read()
    finally:
        os.unlink(path)


def test_no_browser_is_not_an_error(tmp_path, caplog):
    """An unknown browser name is logged, not raised; the file is still written."""
    path = visualize_graph_interactive(small_flow().task_graph, filename=tmp_path / "g.html",
                                       browser="no-such-browser")
    assert os.path.getsize(path) > 100_000  # bokeh's JavaScript is inlined
    assert "Could not open a browser" in caplog.text and str(tmp_path / "g.html") in caplog.text


def test_without_bokeh_the_error_says_how_to_install_it():
    """fluidml.visualization imports without bokeh; the interactive view then names the extra."""
    code = textwrap.dedent("""
        import sys
        sys.modules["bokeh"] = None  # as if bokeh were not installed
        import networkx as nx
        from fluidml.visualization import render_graph, visualize_graph_interactive
        assert render_graph(nx.DiGraph([("a", "b")])).count("|") == 5
        try:
            visualize_graph_interactive(nx.DiGraph([("a", "b")]))
        except ImportError as error:
            print(error)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == ('visualize_graph_interactive needs bokeh, which is not installed: '
                                   'pip install "fluidml[viz]"')
