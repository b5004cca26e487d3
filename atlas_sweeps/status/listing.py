"""What ``ls`` lists: one line of facts per launch (time, config, cluster, backend, git, sweeps with their
URLs, job counts) and its views: a table when it fits the terminal, else one block per launch, so a pipe or
an 80-column terminal never squeezes cells into single words; URLs are never wrapped."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from atlas_sweeps.state.store import LaunchRecord
from atlas_sweeps.status.document import launch_document
from atlas_sweeps.status.model import LaunchStatus

# ``(W&B run counts per sweep id, error)`` of a launch: the backend's own progress (see backend_progress).
Progress = Callable[[LaunchRecord], tuple[dict[str, dict[str, int]] | None, str | None]]


@dataclass(frozen=True)
class SweepEntry:
    """One sweep of a listed launch."""

    name: str
    url: str | None
    wandb_runs: dict[str, int] | None


@dataclass(frozen=True)
class LaunchEntry:
    """One listed launch, as text ready to show."""

    id: str
    created: str
    config: str
    cluster: str
    backend: str
    git: str
    sweeps: tuple[SweepEntry, ...]
    jobs: str
    polled: bool
    note: str = ""


def compact_counts(counts: dict[str, int]) -> str:
    """``4 done, 1 running / 6``: zero counts left out, so the column stays narrow."""
    parts = [f"{counts[k]} {k}" for k in ("done", "running", "pending", "failed", "unknown") if counts.get(k)]
    return f"{', '.join(parts) or 'none'} / {counts.get('total', 0)}"


def list_launches(statuses: Iterable[LaunchStatus], *, progress: Progress) -> tuple[list[dict[str, Any]],
                                                                                   list[LaunchEntry]]:
    """The JSON documents and the entries of the launches (``progress`` is asked for W&B launches)."""
    docs, entries = [], []
    for status in statuses:
        rec = status.launch
        wandb_runs, wandb_error = progress(rec)
        doc = launch_document(status, tasks=False)
        for sweep in doc["sweeps"]:
            if wandb_runs is not None:
                sweep["wandb_runs"] = wandb_runs.get(sweep["sweep_id"] or "")
        doc.update(status=rec.status, nodes=rec.nodes, total_runs=rec.total_runs, wandb_error=wandb_error)
        docs.append(doc)
        config = rec.options.get("config_name") if rec.options else None
        entries.append(LaunchEntry(
            id=rec.id, created=datetime.fromtimestamp(rec.created).strftime("%Y-%m-%d %H:%M"),
            config=config or rec.config_path, cluster=rec.cluster, backend=rec.backend,
            git=(rec.git_commit or "")[:8] + ("+dirty" if rec.git_dirty else ""),
            sweeps=tuple(SweepEntry(name=s["name"], url=s["url"], wandb_runs=s.get("wandb_runs"))
                         for s in doc["sweeps"]),
            jobs=compact_counts(status.counts) if status.polled else f"{status.counts['total']} jobs, not polled yet",
            polled=bool(status.polled), note=rec.note))
    return docs, entries


def _wandb_text(runs: dict[str, int]) -> str:
    return "W&B: " + ", ".join(f"{n} {s}" for s, n in sorted(runs.items()))


def _sweeps_cell(entry: LaunchEntry) -> Text:
    text = Text()
    for i, sweep in enumerate(entry.sweeps):
        if i:
            text.append("\n")
        text.append(sweep.name)
        if sweep.url:  # a line of its own: the table is shown only when no URL needs wrapping
            text.append(f"\n  {sweep.url}", style="blue")
        if sweep.wandb_runs:
            text.append(f"\n  {_wandb_text(sweep.wandb_runs)}", style="magenta")
    return text


def _table(entries: list[LaunchEntry], *, title: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    notes = any(e.note for e in entries)
    for col in ("launch", "created", "config", "cluster", "backend", "git", "sweeps", "jobs") + (("note",) * notes):
        table.add_column(col, no_wrap=col in ("launch", "created"))
    for e in entries:
        jobs = Text(e.jobs) if e.polled else Text(e.jobs, style="dim")
        table.add_row(e.id, e.created, e.config, e.cluster, e.backend, e.git, _sweeps_cell(e), jobs,
                      *((Text(e.note, style="italic"),) * notes))
    return table


def _line(*parts: tuple[str, str]) -> Text:
    """One line that is never wrapped nor cut (a URL stays whole, to copy)."""
    text = Text(no_wrap=True, overflow="ignore")
    for part, style in parts:
        text.append(part, style=style)
    return text


def _block(entry: LaunchEntry) -> list[Text]:
    lines = [_line((f"launch {entry.id}", "bold"), (f"  {entry.created}  {entry.config}", "")),
             _line((f"  cluster {entry.cluster} · backend {entry.backend}"
                    + (f" · git {entry.git}" if entry.git else ""), "")),
             _line(("  jobs ", ""), (entry.jobs, "")) if entry.polled else _line((f"  {entry.jobs}", "dim"))]
    if entry.note:
        lines.insert(1, _line(("  note ", ""), (entry.note, "italic")))
    for sweep in entry.sweeps:
        lines.append(_line(("  sweep ", ""), (sweep.name, "bold")))
        if sweep.url:
            lines.append(_line(("    ", ""), (sweep.url, "blue")))
        if sweep.wandb_runs:
            lines.append(_line(("    ", ""), (_wandb_text(sweep.wandb_runs), "magenta")))
    return lines


def launches_view(entries: list[LaunchEntry], *, title: str, console: Console) -> RenderableType:
    """The table when the console is a terminal it fits in; otherwise (a pipe, a narrow terminal) one
    block of lines per launch. Print it with ``crop=False``: long URLs run past the edge, whole."""
    table = _table(entries, title=title)
    natural = console.measure(table, options=console.options.update_width(1_000_000)).maximum
    if console.is_terminal and natural <= console.width:
        return table
    parts: list[RenderableType] = [_line((title, "italic"))]
    for i, entry in enumerate(entries):
        if i:
            parts.append(Text(""))
        parts += _block(entry)
    return Group(*parts)
