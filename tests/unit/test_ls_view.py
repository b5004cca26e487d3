"""``ls`` stays readable at any width: a table when it fits the terminal, else one block per launch, and
a URL is never wrapped or cut."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from atlas_sweeps.state.store import JobRecord, LaunchRecord, StateDB, SweepRecord, TaskSeen
from atlas_sweeps.status.listing import LaunchEntry, launches_view, list_launches
from atlas_sweeps.status.stored import stored_status

URL = "https://wandb.example.org/my-entity/my-project/sweeps/k3x9q2abcdefgh"


def _entries(tmp_path: Path) -> tuple[list[dict[str, Any]], list[LaunchEntry]]:
    db = StateDB(tmp_path / "state.db")
    for i, lid in enumerate(("k3x9q2", "p8m2z1")):
        db.add_launch(LaunchRecord(id=lid, created=time.time() + i, config_path="/p/configs/composite_grid.yml",
                                   config_text="", cluster="sandbox-cluster", backend="local", nodes=2,
                                   remote_dir="/r", snapshot="", status="submitted", total_runs=3, total_hours=1.0,
                                   git_commit="abcdef1234", git_dirty=True, options={"config_name": "composite_grid.yml"}))
        db.add_sweep(SweepRecord(launch_id=lid, name="composite_grid_iso_tests-hp1_iso", tags=("iso_tests",), runs=3,
                                 jobs=1, config={}, log_dir="/l", sweep_id=f"{lid}/s", url=URL))
        db.add_job(JobRecord(launch_id=lid, sweep_name="composite_grid_iso_tests-hp1_iso", chunk=0, job_id=str(10 + i),
                             job_name="x", array_spec="0-2", task_offset=0, task_count=3, output="/l/%A_%a.out",
                             error="/l/%A_%a.err", script="/s", submitted=time.time()))
    db.save_task_states("k3x9q2", [TaskSeen(launch_id="k3x9q2", job_id="10", task=t, state="COMPLETED")
                                   for t in range(3)], polled=time.time(), accounting=True)
    return list_launches([stored_status(db, rec) for rec in db.launches()], progress=lambda rec: (None, None))


def _print(entries: list[LaunchEntry], *, width: int, terminal: bool) -> str:
    console = Console(file=io.StringIO(), width=width, force_terminal=terminal, color_system=None)
    console.print(launches_view(entries, title="launches (state.db)", console=console), crop=False)
    return console.file.getvalue()  # type: ignore[attr-defined]


def _assert_blocks(out: str) -> None:
    lines = out.splitlines()
    assert "…" not in out  # nothing squeezed into cut cells
    assert lines.count(f"    {URL}") == 2  # each URL whole, on a line of its own
    assert "launch k3x9q2" in out and "launch p8m2z1" in out
    assert "  cluster sandbox-cluster · backend local · git abcdef12+dirty" in lines
    assert "  jobs 3 done / 3" in lines and "  3 jobs, not polled yet" in lines
    assert "  sweep composite_grid_iso_tests-hp1_iso" in lines


def test_an_80_column_terminal_gets_one_block_per_launch(tmp_path: Path) -> None:
    docs, entries = _entries(tmp_path)
    _assert_blocks(_print(entries, width=80, terminal=True))
    assert [d["id"] for d in docs] == ["p8m2z1", "k3x9q2"] and "tasks" not in docs[0]["sweeps"][0]


def test_a_pipe_gets_blocks_whatever_its_width(tmp_path: Path) -> None:
    _, entries = _entries(tmp_path)
    _assert_blocks(_print(entries, width=200, terminal=False))


def test_a_wide_terminal_keeps_the_table(tmp_path: Path) -> None:
    _, entries = _entries(tmp_path)
    out = _print(entries, width=200, terminal=True)
    header = next(line for line in out.splitlines() if "launch" in line and "created" in line)
    assert header.split() == ["launch", "created", "config", "cluster", "backend", "git", "sweeps", "jobs"]
    assert "─" in out and "…" not in out and URL in out
    assert "composite_grid.yml" in out and "sandbox-cluster" in out and "3 done / 3" in out
