"""How ``status`` looks: a rich table per launch grouped by sweep (state colored, progress per sweep), a
footer with totals, the last and next refresh and any error. Columns come from ``columns.TASK_COLUMNS``;
large one-shot views print them as aligned plain text (``plain.PlainSweepTable``)."""

from __future__ import annotations

import time
from datetime import datetime

from rich import box
from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from atlas_sweeps.slurm.states import DONE, FAILED, PENDING, RUNNING, STATES, UNKNOWN
from atlas_sweeps.status.columns import TABLE_COLUMNS
from atlas_sweeps.status.model import LaunchStatus, StatusSnapshot, SweepStatus, TaskRow
from atlas_sweeps.status.plain import PlainSweepTable

_STATE_STYLE = {DONE: "green", RUNNING: "cyan", PENDING: "yellow", FAILED: "bold red", UNKNOWN: "dim"}
# Which rows a height-limited (live) table keeps first.
_ROW_PRIORITY = {RUNNING: 0, FAILED: 1, PENDING: 2, UNKNOWN: 3, DONE: 4}
_STATE_PRIORITY = {state: _ROW_PRIORITY[cat] for state, cat in STATES.items()}  # the rest: UNKNOWN's
PLAIN_ROWS = 200  # above this many rows, a one-shot view is plain aligned text instead of rich tables


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
    if rec.note:
        title.append(f"\n  note: {rec.note}", style="italic")
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


def _task_cells(row: TaskRow) -> list[Text]:
    """The row's cells for rich's Table: the colored column styled, the shrinking one cut with an ellipsis."""
    out: list[Text] = []
    for col in TABLE_COLUMNS:
        text = col.cell(row) if col.cell else ""
        if col.colored:
            out.append(Text(text, style=_STATE_STYLE.get(row.category, "")))
        elif col.shrinks:
            out.append(Text(text, no_wrap=True, overflow="ellipsis"))
        else:
            out.append(Text(text))
    return out


def _sweep_table(sweep: SweepStatus, *, keep: set[int] | None, stale: bool) -> Table:
    table = Table(title=_sweep_header(sweep), title_justify="left", style="dim" if stale else None,
                  pad_edge=False, box=box.SIMPLE_HEAD, show_edge=False)
    shown = [row for row in sweep.tasks if keep is None or id(row) in keep]
    cells = [_task_cells(row) for row in shown]
    # Only the shrinking column may (its cells are no_wrap Text with an ellipsis): rich would otherwise
    # squeeze the short id columns to nothing on a narrow terminal. The others' widths are measured here,
    # as rich would (their cells are one line each), which spares rich measuring every cell.
    for i, col in enumerate(TABLE_COLUMNS):
        width = None
        if not col.shrinks:
            width = max([cell_len(col.header or ""), *(cell_len(row[i].plain) for row in cells)])
            width = width if col.max_width is None else min(width, col.max_width)
        table.add_column(col.header or "", justify=col.justify, no_wrap=not col.shrinks, max_width=col.max_width,
                         width=width)
    for row in cells:
        table.add_row(*row)
    if keep is not None and len(shown) < len(sweep.tasks):
        hidden: dict[str, int] = {}
        for row in sweep.tasks:
            if id(row) not in keep:
                hidden[row.category] = hidden.get(row.category, 0) + 1
        what = ", ".join(f"{n} {cat}" for cat, n in hidden.items())
        table.caption = f"… {sum(hidden.values())} more tasks hidden ({what}); --once shows all"
        table.caption_justify = "left"
    return table


def _most_interesting(rows: list[TaskRow], count: int) -> set[int]:
    """``id`` of the first ``count`` rows by priority (running, failed, pending, unknown, done), in order
    within each: one pass, however many rows there are."""
    buckets: dict[int, list[TaskRow]] = {}
    priority, unknown = _STATE_PRIORITY, _ROW_PRIORITY[UNKNOWN]
    for row in rows:
        buckets.setdefault(priority.get(row.state.state, unknown), []).append(row)
    keep: set[int] = set()
    for rank in sorted(buckets):
        keep.update(id(row) for row in buckets[rank][:count - len(keep)])
    return keep


def launch_view(status: LaunchStatus, *, max_rows: int | None = None, plain: bool = False) -> RenderableType:
    """One launch: its title, then per sweep a progress line and its tasks (the most interesting first
    when ``max_rows`` cuts the list: running, failed, pending, then done); ``plain``: every task as
    aligned text (fast for thousands of tasks)."""
    parts: list[RenderableType] = [_launch_title(status)]
    if plain:
        parts += [PlainSweepTable(sweep, header=_sweep_header(sweep), styles=_STATE_STYLE, stale=status.stale)
                  for sweep in status.sweeps]
    else:
        rows = [t for s in status.sweeps for t in s.tasks]
        keep = _most_interesting(rows, max(0, max_rows)) if max_rows is not None and len(rows) > max_rows else None
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
    for cluster, how in snapshot.connections:
        text.append(f"\n{cluster}: {how}", style="dim")
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
