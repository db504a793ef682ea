"""How the ``fluidml`` command prints: rich tables for people; CSV, JSON and Markdown for scripts."""

import csv
import datetime
import io
import json
import sys
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["FORMATS", "cell_text", "print_rows", "print_table", "size_text"]

#: The output formats of the commands that print tables.
FORMATS = ("table", "csv", "json", "markdown")


def size_text(size: Optional[int]) -> str:
    """Bytes for people: ``812 B``, ``4.1 KB``, ``120.0 MB``; ``?`` when unknown."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"  # pragma: no cover - unreachable


def duration_text(seconds: float) -> str:
    """A duration for people: ``371 µs``, ``12.3 ms``, then as the run summary writes them (``4.56s``,
    ``3m 20s``)."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    from fluidml.progress import format_duration

    return format_duration(seconds)


def cell_text(column: str, value: Any) -> str:
    """A table cell as shown in the ``table`` format."""
    if value is None:
        return ""
    if column == "duration" and isinstance(value, (int, float)):
        return duration_text(float(value))
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool) or isinstance(value, (list, dict)):
        return json.dumps(value)
    if isinstance(value, float):
        text = repr(value)
        return text if len(text) <= 10 else f"{value:.6g}"
    return str(value)


def _plain(value: Any) -> Any:
    """A value for CSV and JSON: times as ISO text, the rest as it is."""
    return value.isoformat() if isinstance(value, (datetime.datetime, datetime.date)) else value


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]], title: Optional[str] = None,
                caption: Optional[str] = None, header: bool = True) -> None:
    """Prints text cells as a rich table. Cells are never cut: where stdout is not a terminal the
    table takes the width it needs."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, box=box.SIMPLE_HEAD, show_edge=False, show_header=header, title=title,
                  caption=caption, title_justify="left", caption_justify="left", header_style="bold",
                  title_style="bold", highlight=False)
    for column in table.columns:
        column.no_wrap = True
    for row in rows:
        table.add_row(*row)
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    width = max(sum(widths) + 3 * len(widths), len(title or ""), *(len(line) for line in (caption or "").split("\n")))
    terminal = sys.stdout.isatty()
    console = Console(width=None if terminal else width, highlight=False, soft_wrap=False)
    with console.capture() as captured:
        console.print(table)
    text = captured.get()
    sys.stdout.write(text if terminal else "".join(line.rstrip() + "\n" for line in text.splitlines()))


def print_rows(columns: List[str], rows: List[Dict[str, Any]], fmt: str, total: Optional[int] = None,
               title: Optional[str] = None, note: Optional[str] = None) -> None:
    """Prints table rows in a format of ``FORMATS``; the table says how many of ``total`` rows it
    left out."""
    if fmt == "json":
        print(json.dumps([{c: _plain(row.get(c)) for c in columns} for row in rows], indent=2, default=repr))
    elif fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else _json_cell(_plain(row.get(c))) for c in columns])
        sys.stdout.write(out.getvalue())
    elif fmt == "markdown":
        print("| " + " | ".join(_md(c) for c in columns) + " |")
        print("|" + "|".join(" --- " for _ in columns) + "|")
        for row in rows:
            print("| " + " | ".join(_md(cell_text(c, row.get(c))) for c in columns) + " |")
    else:
        caption = note
        if total is not None and total > len(rows):
            more = f"{total - len(rows)} more rows not shown (--limit 0 shows all)"
            caption = f"{caption}\n{more}" if caption else more
        print_table(columns, [[cell_text(c, row.get(c)) for c in columns] for row in rows], title, caption)


def _json_cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict, bool)) else value


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
