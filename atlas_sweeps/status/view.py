"""How ``status`` looks: a rich table per launch grouped by sweep (state colored, progress per sweep), a
footer with totals, the last and next refresh and any error; and the same data as a JSON document.
Large one-shot views (``--once``, ``--wait``'s final table) use aligned plain text with the same columns:
rich's Table costs about a millisecond per row, this path about fifty times less."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from rich import box
from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text

from atlas_sweeps.slurm.durations import format_duration
from atlas_sweeps.slurm.states import DONE, FAILED, PENDING, RUNNING, UNKNOWN
from atlas_sweeps.status.model import LaunchStatus, StatusSnapshot, SweepStatus, TaskRow

_STATE_STYLE = {DONE: "green", RUNNING: "cyan", PENDING: "yellow", FAILED: "bold red", UNKNOWN: "dim"}
# Which rows a height-limited (live) table keeps first.
_ROW_PRIORITY = {RUNNING: 0, FAILED: 1, PENDING: 2, UNKNOWN: 3, DONE: 4}
PLAIN_ROWS = 200  # above this many rows, a one-shot view is plain aligned text instead of rich tables
_COLUMNS = ("job", "run", "state", "reason", "node", "elapsed/limit", "exit", "last log line")
_RIGHT = frozenset({"run", "exit"})
_MAX_WIDTH = {"reason": 18, "node": 12}
_GAP = "  "  # between columns, as the rich table pads them


def _clock(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S") if ts else "never"


def progress_text(counts: dict[str, int]) -> Text:
    """``3 done · 1 running · 2 pending · 0 failed / 6``, colored."""
    text = Text()
    for i, cat in enumerate((DONE, RUNNING, PENDING, FAILED)):
        if i:
            text.append(" · ", style="dim")
        text.append(f"{counts.get(cat, 0)} {cat}", style=_STATE_STYLE[cat] if counts.get(cat) else "dim")
    if counts.get(UNKNOWN):
        text.append(f" · {counts[UNKNOWN]} unknown", style="dim")
    text.append(f" / {counts.get('total', 0)}")
    return text


def _launch_title(status: LaunchStatus) -> Text:
    rec = status.launch
    title = Text()
    title.append(f"launch {rec.id}", style="bold")
    config = rec.options.get("config_name") if rec.options else None
    title.append(f"  {config or rec.config_path} · {rec.cluster} · {rec.backend} · "
                 f"{datetime.fromtimestamp(rec.created).strftime('%Y-%m-%d %H:%M')}")
    if rec.git_commit:
        title.append(f" · git {rec.git_commit[:8]}{'+dirty' if rec.git_dirty else ''}")
    if status.stale:
        title.append("  (stale)", style="bold yellow")
    return title


def _sweep_header(sweep: SweepStatus) -> Text:
    text = Text()
    text.append(sweep.name, style="bold")
    if sweep.tags:
        text.append(f" [{','.join(sweep.tags)}]", style="dim")
    text.append("  ")
    text.append_text(progress_text(sweep.counts))
    if sweep.wandb_runs is not None:
        runs = ", ".join(f"{n} {state}" for state, n in sorted(sweep.wandb_runs.items())) or "no runs yet"
        text.append(f"  W&B: {runs}", style="magenta")
    if sweep.url:
        text.append(f"  {sweep.url}", style="blue")
    return text


def _task_strings(row: TaskRow) -> list[str]:
    """The row's cells as text, in ``_COLUMNS`` order."""
    st = row.state
    limit = format_duration(st.time_limit)
    elapsed = format_duration(st.elapsed) + (f" / {limit}" if limit else "")
    exit_code = "" if st.exit_code is None else str(st.exit_code)
    return [st.slurm_id, str(row.run), st.state + (" (last seen)" if st.source == "last-seen" else ""),
            st.reason or "", st.node or "", elapsed, exit_code, row.log_line or ""]


def _task_cells(row: TaskRow) -> list[RenderableType]:
    job, run, state, reason, node, elapsed, exit_code, log = _task_strings(row)
    return [job, run, Text(state, style=_STATE_STYLE.get(row.category, "")), reason, node, elapsed, exit_code,
            Text(log, no_wrap=True, overflow="ellipsis")]


def _one_line(text: str) -> str:
    """A cell on one line: control characters would break the alignment."""
    return text if text.isprintable() else "".join(c if c.isprintable() else " " for c in text)


def _cells(text: str) -> int:
    """Terminal cells ``text`` takes (the ASCII shortcut keeps thousands of rows cheap)."""
    return len(text) if text.isascii() else cell_len(text)


def _fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells, ending in an ellipsis when cut."""
    if _cells(text) <= width:
        return text
    return set_cell_size(text, max(0, width - 1)) + "…" if width > 0 else ""


class PlainSweepTable:
    """A sweep's tasks as aligned text: the table's columns and colors at a fraction of its cost. Only the
    last log line is cut (with an ellipsis) to the console's width; the other columns never are."""

    def __init__(self, sweep: SweepStatus, *, stale: bool = False) -> None:
        self.sweep = sweep
        self.stale = stale

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        rows = [[_one_line(c) for c in _task_strings(row)] for row in self.sweep.tasks]
        fixed = len(_COLUMNS) - 1
        widths = [len(name) for name in _COLUMNS[:fixed]]
        for i, name in enumerate(_COLUMNS[:fixed]):
            cap = _MAX_WIDTH.get(name)
            for cells in rows:
                if cap is not None and _cells(cells[i]) > cap:
                    cells[i] = _fit(cells[i], cap)
                widths[i] = max(widths[i], _cells(cells[i]))
        room = max(0, options.max_width - sum(widths) - len(_GAP) * fixed)
        used = min(room, max([len(_COLUMNS[-1]), *(_cells(cells[-1]) for cells in rows)]))
        base = Style(dim=True) if self.stale else Style()
        header = _sweep_header(self.sweep)
        header.no_wrap, header.overflow = True, "ignore"
        header.stylize(base)
        yield header
        names = _GAP.join(_pad(name, widths[i], name) for i, name in enumerate(_COLUMNS[:fixed]))
        yield Segment(f"{names}{_GAP}{_fit(_COLUMNS[-1], room)}".rstrip(), base + Style(bold=True))
        yield Segment.line()
        yield Segment("─" * (sum(widths) + len(_GAP) * fixed + used), base + Style(dim=True))
        yield Segment.line()
        state_col = _COLUMNS.index("state")
        styles = {cat: base + console.get_style(style) for cat, style in _STATE_STYLE.items()}
        newline = Segment.line()
        for row, cells in zip(self.sweep.tasks, rows, strict=True):
            before = _GAP.join(_pad(cells[i], widths[i], _COLUMNS[i]) for i in range(state_col))
            after = _GAP.join(_pad(cells[i], widths[i], _COLUMNS[i]) for i in range(state_col + 1, fixed))
            yield Segment(before + _GAP, base)
            yield Segment(_pad(cells[state_col], widths[state_col], "state"), styles.get(row.category, base))
            yield Segment(f"{_GAP}{after}{_GAP}{_fit(cells[-1], room)}".rstrip(), base)
            yield newline


def _pad(text: str, width: int, column: str) -> str:
    gap = " " * (width - _cells(text))
    return gap + text if column in _RIGHT else text + gap


def _sweep_table(sweep: SweepStatus, *, keep: set[tuple[str, int]] | None, stale: bool) -> Table:
    table = Table(title=_sweep_header(sweep), title_justify="left", style="dim" if stale else None,
                  pad_edge=False, box=box.SIMPLE_HEAD, show_edge=False)
    # Only the log column may shrink (its cells are no_wrap Text with an ellipsis): rich would otherwise
    # squeeze the short id columns to nothing on a narrow terminal.
    for name, kw in (("job", {"no_wrap": True}), ("run", {"justify": "right", "no_wrap": True}),
                     ("state", {"no_wrap": True}), ("reason", {"no_wrap": True, "max_width": 18}),
                     ("node", {"no_wrap": True, "max_width": 12}), ("elapsed/limit", {"no_wrap": True}),
                     ("exit", {"justify": "right", "no_wrap": True}), ("last log line", {})):
        table.add_column(name, **kw)
    hidden: dict[str, int] = {}
    for row in sweep.tasks:
        if keep is None or (row.state.job_id, row.state.task) in keep:
            table.add_row(*_task_cells(row))
        else:
            hidden[row.category] = hidden.get(row.category, 0) + 1
    if hidden:
        what = ", ".join(f"{n} {cat}" for cat, n in hidden.items())
        table.caption = f"… {sum(hidden.values())} more tasks hidden ({what}); --once shows all"
        table.caption_justify = "left"
    return table


def launch_view(status: LaunchStatus, *, max_rows: int | None = None, plain: bool = False) -> RenderableType:
    """One launch: its title, then per sweep a progress line and its tasks (the most interesting first
    when ``max_rows`` cuts the list: running, failed, pending, then done); ``plain``: every task as
    aligned text (fast for thousands of tasks)."""
    if plain:
        parts: list[RenderableType] = [_launch_title(status)]
        parts += [PlainSweepTable(sweep, stale=status.stale) for sweep in status.sweeps]
        parts += [Text(note, style="yellow") for note in status.notes]
        if status.error:
            parts.append(Text(f"stale: {status.error}", style="yellow"))
        return Group(*parts)
    keep: set[tuple[str, int]] | None = None
    rows = [t for s in status.sweeps for t in s.tasks]
    if max_rows is not None and len(rows) > max_rows:
        ranked = sorted(range(len(rows)), key=lambda i: (_ROW_PRIORITY.get(rows[i].category, 9), i))
        keep = {(rows[i].state.job_id, rows[i].state.task) for i in ranked[:max(0, max_rows)]}
    parts: list[RenderableType] = [_launch_title(status)]
    parts += [_sweep_table(sweep, keep=keep, stale=status.stale) for sweep in status.sweeps]
    parts += [Text(note, style="yellow") for note in status.notes]
    if status.error:
        parts.append(Text(f"stale: {status.error}", style="yellow"))
    return Group(*parts)


def footer(snapshot: StatusSnapshot, *, now: float, live: bool) -> Text:
    """Totals, last and next refresh, and the error being retried."""
    text = Text()
    text.append("total ")
    text.append_text(progress_text(snapshot.counts))
    text.append(f"   last refresh {_clock(snapshot.refreshed)}")
    if live and snapshot.next_refresh:
        wait = max(0, int(round(snapshot.next_refresh - now)))
        text.append(f" · next {_clock(snapshot.next_refresh)} (in {wait} s)")
    if snapshot.error:
        text.append("\n")
        if live and snapshot.next_refresh:
            wait = max(0, int(round(snapshot.next_refresh - now)))
            text.append(f"retry {snapshot.failures} in {wait} s", style="bold yellow")
            text.append(" (showing the last good data, stale): ", style="yellow")
        text.append(snapshot.error, style="red")
    return text


def render_status(snapshot: StatusSnapshot, *, now: float | None = None, live: bool = False,
                  max_rows: int | None = None, plain: bool | None = None) -> RenderableType:
    """The whole view: one table per launch, then the footer. ``plain`` (default: a one-shot view of more
    than ``PLAIN_ROWS`` tasks) prints every task as aligned text instead of rich tables."""
    now = time.time() if now is None else now
    parts: list[RenderableType] = []
    per_launch = None if max_rows is None else max(3, max_rows // max(1, len(snapshot.launches)))
    if plain is None:
        plain = not live and max_rows is None and sum(len(s.tasks) for s in snapshot.launches) > PLAIN_ROWS
    for status in snapshot.launches:
        parts.append(launch_view(status, max_rows=per_launch, plain=plain))
    parts.append(footer(snapshot, now=now, live=live))
    return Group(*parts)


def status_document(snapshot: StatusSnapshot) -> dict[str, Any]:
    """The JSON ``status --json`` prints: the same data as the table."""
    return {
        "refreshed": snapshot.refreshed, "stale": snapshot.stale, "error": snapshot.error,
        "counts": snapshot.counts, "remote_calls": snapshot.remote_calls,
        "launches": [launch_document(s) for s in snapshot.launches],
    }


def launch_document(status: LaunchStatus) -> dict[str, Any]:
    rec = status.launch
    return {
        "id": rec.id, "created": rec.created, "config": rec.config_path, "cluster": rec.cluster,
        "backend": rec.backend, "git_commit": rec.git_commit, "git_dirty": rec.git_dirty,
        "polled": status.polled, "accounting": status.accounting, "stale": status.stale, "error": status.error,
        "notes": list(status.notes), "finished": status.finished, "counts": status.counts,
        "sweeps": [{
            "name": s.name, "tags": list(s.tags), "sweep_id": s.sweep_id, "url": s.url, "runs": s.runs,
            "counts": s.counts, "wandb_runs": s.wandb_runs,
            "tasks": [{
                "job_id": t.state.slurm_id, "array_job_id": t.state.job_id, "task": t.state.task, "run": t.run,
                "state": t.state.state, "category": t.category, "reason": t.state.reason, "node": t.state.node,
                "elapsed": t.state.elapsed, "time_limit": t.state.time_limit, "exit_code": t.state.exit_code,
                "start": t.state.start, "end": t.state.end, "source": t.state.source, "log_line": t.log_line,
            } for t in s.tasks],
        } for s in status.sweeps],
    }
