"""How ``status`` looks: a rich table per launch grouped by sweep (state colored, progress per sweep), a
footer with totals, the last and next refresh and any error; and the same data as a JSON document."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from atlas_sweeps.jobstate import DONE, FAILED, PENDING, RUNNING, UNKNOWN, format_duration
from atlas_sweeps.status import LaunchStatus, StatusSnapshot, SweepStatus, TaskRow

_STATE_STYLE = {DONE: "green", RUNNING: "cyan", PENDING: "yellow", FAILED: "bold red", UNKNOWN: "dim"}
# Which rows a height-limited (live) table keeps first.
_ROW_PRIORITY = {RUNNING: 0, FAILED: 1, PENDING: 2, UNKNOWN: 3, DONE: 4}


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


def _task_cells(row: TaskRow) -> list[RenderableType]:
    st = row.state
    state = Text(st.state + (" (last seen)" if st.source == "last-seen" else ""),
                 style=_STATE_STYLE.get(row.category, ""))
    limit = format_duration(st.time_limit)
    elapsed = format_duration(st.elapsed) + (f" / {limit}" if limit else "")
    exit_code = "" if st.exit_code is None else str(st.exit_code)
    return [st.slurm_id, str(row.run), state, st.reason, st.node, elapsed, exit_code,
            Text(row.log_line, no_wrap=True, overflow="ellipsis")]


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


def launch_view(status: LaunchStatus, *, max_rows: int | None = None) -> RenderableType:
    """One launch: its title, then per sweep a progress line and its tasks (the most interesting first
    when ``max_rows`` cuts the list: running, failed, pending, then done)."""
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
                  max_rows: int | None = None) -> RenderableType:
    """The whole view: one table per launch, then the footer."""
    now = time.time() if now is None else now
    parts: list[RenderableType] = []
    per_launch = None if max_rows is None else max(3, max_rows // max(1, len(snapshot.launches)))
    for status in snapshot.launches:
        parts.append(launch_view(status, max_rows=per_launch))
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
