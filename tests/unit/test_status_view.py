"""The one-shot view of a large launch (plain aligned text): every task on its own line with its state and
exit code, columns aligned, long log lines cut, colors only on a color console; small launches keep the
rich table."""

from __future__ import annotations

import io
import re
import time

from rich.console import Console

from atlas_sweeps.slurm.task import TaskState
from atlas_sweeps.state.store import JobRecord, LaunchRecord, SweepRecord
from atlas_sweeps.status.model import LaunchStatus, StatusSnapshot, build_launch_status
from atlas_sweeps.status.view import PLAIN_ROWS, render_status

TASKS = 3000
STATES = ("COMPLETED", "FAILED", "RUNNING", "PENDING", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY")


def _launch(tasks: int, *, log: str = "step 7 loss=0.25") -> LaunchStatus:
    launch = LaunchRecord(id="big", created=time.time(), config_path="big.yml", config_text="", cluster="c",
                          backend="local", nodes=100, remote_dir="/r", snapshot="", status="submitted",
                          total_runs=tasks, total_hours=1.0)
    halves = {"big_a": (0, tasks // 2), "big_b": (tasks // 2, tasks - tasks // 2)}
    sweeps = [SweepRecord(launch_id="big", name=name, tags=("a", "b"), runs=count, jobs=100, config={},
                          log_dir="/l") for name, (_, count) in halves.items()]
    jobs = [JobRecord(launch_id="big", sweep_name=name, chunk=0, job_id=str(700 + i), job_name=f"atlas-{name}",
                      array_spec=f"0-{count - 1}%100", task_offset=offset, task_count=count, output="/l/%A_%a.out",
                      error="/l/%A_%a.err", script="/s", submitted=time.time())
            for i, (name, (offset, count)) in enumerate(halves.items())]
    states = {}
    for job in jobs:
        for t in range(job.task_count):
            state = STATES[t % len(STATES)]
            running = state in ("RUNNING", "PENDING")
            states[(job.job_id, t)] = TaskState(
                job_id=job.job_id, task=t, state=state, node="" if state == "PENDING" else f"node{t % 13}",
                reason="JobArrayTaskLimit" if state == "PENDING" else "", elapsed=65, time_limit=3600,
                exit_code=None if running else (0 if state == "COMPLETED" else t % 7 + 1),
                source="squeue" if running else "sacct")
    logs = {(job.job_id, t): log for job in jobs for t in range(job.task_count)}
    return build_launch_status(launch, sweeps, jobs, states=states, log_lines=logs, polled=time.time(),
                               accounting=True)


def _print(snapshot: StatusSnapshot, *, width: int, color: bool = False) -> str:
    console = Console(file=io.StringIO(), width=width, color_system="standard" if color else None,
                      force_terminal=color)
    console.print(render_status(snapshot, live=False), crop=False)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_a_large_launch_shows_every_task_with_its_state_and_exit_code() -> None:
    status = _launch(TASKS)
    out = _print(StatusSnapshot(launches=(status,), refreshed=time.time()), width=120)
    lines = {line.split()[0]: line for line in out.splitlines() if re.match(r"^\d+_\d+ ", line)}
    assert len(lines) == TASKS
    for row in status.tasks:
        line = lines[row.state.slurm_id]
        cells = line.split()
        assert cells[1] == str(row.run) and cells[2] == row.state.state
        assert ("1:05 / 1:00:00" in line) and line.rstrip().endswith("step 7 loss=0.25")
        if row.state.exit_code is None:
            assert not re.search(r"1:00:00\s+\d+\s", line), line
        else:
            assert re.search(rf"1:00:00\s+{row.state.exit_code}\s", line), line
    # Aligned: every row's state column starts where the header's does.
    header = next(line for line in out.splitlines() if line.startswith("job "))
    column = header.index("state")
    assert all(line[column:].split()[0] in STATES for line in lines.values())
    assert "big_a [a,b]" in out and "big_b [a,b]" in out and f"/ {TASKS}" in out


def test_a_narrow_view_cuts_only_the_log_line() -> None:
    status = _launch(PLAIN_ROWS + 1, log="x" * 300)
    out = _print(StatusSnapshot(launches=(status,), refreshed=time.time()), width=100)
    rows = [line for line in out.splitlines() if re.match(r"^\d+_\d+ ", line)]
    assert len(rows) == PLAIN_ROWS + 1
    assert all(len(line) == 100 and line.endswith("x…") for line in rows)
    failed = next(line for line in rows if " FAILED " in line)
    assert re.search(r" FAILED .* \d+ +x", failed)  # the exit code survives (then the empty cause column)


def test_states_are_colored_only_on_a_color_console() -> None:
    snapshot = StatusSnapshot(launches=(_launch(PLAIN_ROWS + 1),), refreshed=time.time())
    colored = _print(snapshot, width=120, color=True)
    assert "\x1b[1;31mFAILED" in colored and "\x1b[32mCOMPLETED" in colored
    assert "\x1b[" not in _print(snapshot, width=120)


def test_a_small_launch_keeps_the_rich_table() -> None:
    out = _print(StatusSnapshot(launches=(_launch(10),), refreshed=time.time()), width=120)
    assert "─" in out and " state " in out and len([x for x in out.splitlines() if re.match(r"^\s*\d+_\d+ ", x)]) == 10
