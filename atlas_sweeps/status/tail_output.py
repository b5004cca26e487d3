"""What ``tail`` writes: the log's lines as they came (a progress bar's redraw ends with ``\\r``, so a
terminal shows its latest state), the job's state changes on stderr, and how it ended, with the exit code
``tail`` exits with."""

from __future__ import annotations

from typing import TextIO

from rich.console import Console

from atlas_sweeps.errors import RemoteError, UsageError
from atlas_sweeps.state.store import TaskSeen
from atlas_sweeps.status.tail import TailEvent, cancelled_note, exit_status


class TailPrinter:
    """Passes each event of ``follow`` on: log lines to ``out``, state changes to ``err``."""

    def __init__(self, *, slurm_id: str, out: TextIO, err: Console) -> None:
        self.slurm_id = slurm_id
        self.out = out
        self.err = err
        self._redrawing = False  # the last log line ended with \r: end it before printing anything else

    def __call__(self, event: TailEvent) -> None:
        if event.kind == "line":
            self.out.write(event.text + event.end)
            self.out.flush()
            self._redrawing = event.end == "\r"
            return
        self.end_redraw()
        if event.kind == "state":
            why = f" ({event.reason})" if event.reason else ""
            waiting = "; waiting for it to start" if event.state == "PENDING" else ""
            self.err.print(f"[dim]job {self.slurm_id} is {event.state}{why}{waiting}[/]", highlight=False)

    def end_redraw(self) -> None:
        if self._redrawing:
            self.out.write("\n")
            self.out.flush()
            self._redrawing = False


def tail_result(final: TailEvent | None, *, job: str, slurm_id: str, cluster: str, seen: TaskSeen | None,
                err: Console) -> int:
    """Say how the job ended and return tail's exit code; a job nobody knows is a ``UsageError``, a lost
    stream a ``RemoteError``. ``seen`` is the state database's last state of the job, if it knows one."""
    if final is None:
        raise RemoteError(f"lost the log stream of job {slurm_id} on {cluster}", hint="run tail again")
    if seen is not None and (final.kind == "missing" or final.state == "UNKNOWN"):
        note = cancelled_note(slurm_id, state=seen.state, start=seen.start)
        if note:
            err.print(note, highlight=False)
            return 1
    if final.kind == "missing":
        raise UsageError(f"no job {job} on cluster '{cluster}' (neither slurmctld nor sacct knows it)",
                         hint="'atlas-sweeps status' lists the jobs of your launches")
    style = "green" if final.state == "COMPLETED" else "red"
    shown = "" if final.exit_code is None else f", exit code {final.exit_code}"
    err.print(f"job {slurm_id} [{style}]{final.state}[/]{shown}", highlight=False)
    return exit_status(final)
