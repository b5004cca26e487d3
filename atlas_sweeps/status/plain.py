"""Large one-shot views (``--once``, ``--wait``'s final table) as aligned plain text with the table's
columns and colors: rich's Table costs about a millisecond per row, this about fifty times less."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from atlas_sweeps.status.columns import TABLE_COLUMNS, Column, task_cells
from atlas_sweeps.status.model import SweepStatus

GAP = "  "  # between columns, as the rich table pads them


def one_line(text: str) -> str:
    """A cell on one line: control characters would break the alignment."""
    return text if text.isprintable() else "".join(c if c.isprintable() else " " for c in text)


def cells(text: str) -> int:
    """Terminal cells ``text`` takes (the ASCII shortcut keeps thousands of rows cheap)."""
    return len(text) if text.isascii() else cell_len(text)


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells, ending in an ellipsis when cut."""
    if cells(text) <= width:
        return text
    return set_cell_size(text, max(0, width - 1)) + "…" if width > 0 else ""


def _pad(text: str, width: int, column: Column) -> str:
    gap = " " * (width - cells(text))
    return gap + text if column.justify == "right" else text + gap


class PlainSweepTable:
    """A sweep's tasks as aligned text. Only the last log line is cut (with an ellipsis) to the console's
    width; the other columns never are, beyond their own ``max_width``."""

    def __init__(self, sweep: SweepStatus, *, header: Text, styles: Mapping[str, str], stale: bool = False) -> None:
        self.sweep = sweep
        self.header = header
        self.styles = styles  # category -> style of the colored column
        self.stale = stale

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        columns = TABLE_COLUMNS
        fixed = columns[:-1] if columns[-1].shrinks else columns
        rows = [[one_line(c) for c in task_cells(row)] for row in self.sweep.tasks]
        widths = [len(c.header or "") for c in fixed]
        for i, col in enumerate(fixed):
            for row in rows:
                if col.max_width is not None and cells(row[i]) > col.max_width:
                    row[i] = fit(row[i], col.max_width)
                widths[i] = max(widths[i], cells(row[i]))
        room = max(0, options.max_width - sum(widths) - len(GAP) * len(fixed))
        last = (columns[-1].header or "") if len(fixed) < len(columns) else ""
        used = min(room, max([len(last), *(cells(row[-1]) for row in rows)])) if last else 0
        base = Style(dim=True) if self.stale else Style()
        header = self.header.copy()
        header.no_wrap, header.overflow = True, "ignore"
        header.stylize(base)
        yield header
        names = [_pad(c.header or "", widths[i], c) for i, c in enumerate(fixed)] + ([fit(last, room)] if last else [])
        yield Segment(GAP.join(names).rstrip(), base + Style(bold=True))
        yield Segment.line()
        yield Segment("─" * (sum(widths) + len(GAP) * len(fixed) + used), base + Style(dim=True))
        yield Segment.line()
        colored = {i for i, c in enumerate(fixed) if c.colored}
        styles = {cat: base + console.get_style(style) for cat, style in self.styles.items()}
        newline = Segment.line()
        for task, row in zip(self.sweep.tasks, rows, strict=True):
            parts = [_pad(row[i], widths[i], c) for i, c in enumerate(fixed)]
            if last:
                parts.append(fit(row[-1], room))
            yield from _segments(parts, colored, base=base, style=styles.get(task.category, base))
            yield newline


def _segments(parts: list[str], colored: set[int], *, base: Style, style: Style) -> Iterator[Segment]:
    """One row's cells joined by ``GAP``, the ``colored`` ones in ``style``, the end of the line stripped."""
    plain = ""
    for i, text in enumerate(parts):
        sep = GAP if i else ""
        if i in colored:
            yield Segment(plain + sep, base)
            yield Segment(text, style)
            plain = ""
        else:
            plain += sep + text
    yield Segment(plain.rstrip(), base)
