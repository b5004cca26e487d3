"""``launch --note``: the hypothesis is recorded with the launch (schema 4), shown by ls and status, and is
the W&B sweep's description."""

from __future__ import annotations

import io
import time
from pathlib import Path

from rich.console import Console

from atlas_sweeps.backends.wandb.backend import sweep_config
from atlas_sweeps.config.composite import SweepSpec
from atlas_sweeps.launch.plan import PlannedSweep
from atlas_sweeps.state.store import MIGRATIONS, LaunchRecord, StateDB
from atlas_sweeps.status.document import launch_document
from atlas_sweeps.status.listing import launches_view, list_launches
from atlas_sweeps.status.model import StatusSnapshot
from atlas_sweeps.status.stored import stored_status
from atlas_sweeps.status.view import render_status

NOTE = "warmup fixes the lr=3e-4 divergence"


def _sweep(config: dict) -> PlannedSweep:
    return PlannedSweep(spec=SweepSpec(name="s", tags=("a",), config=config, num_nodes=None, line=1), runs=2,
                        jobs=1, hours=2.0)


def test_the_note_is_the_wandb_sweeps_description_before_the_files_own() -> None:
    assert sweep_config(_sweep({"method": "grid"}), launch_id="l1", note=NOTE)["description"] == NOTE
    both = sweep_config(_sweep({"method": "grid", "description": "iso tests"}), launch_id="l1", note=NOTE)
    assert both["description"] == f"{NOTE}\n\niso tests"
    assert "description" not in sweep_config(_sweep({"method": "grid"}), launch_id="l1")


def _db(tmp_path: Path) -> StateDB:
    db = StateDB(tmp_path / "state.db")
    db.add_launch(LaunchRecord(id="k3x9q2", created=time.time(), config_path="c.yml", config_text="", cluster="c",
                               backend="local", nodes=1, remote_dir="/r", snapshot="", status="submitted",
                               total_runs=0, total_hours=0.0, note=NOTE))
    return db


def test_ls_and_status_show_the_note(tmp_path: Path) -> None:
    db = _db(tmp_path)
    status = stored_status(db, db.launch("k3x9q2"))  # type: ignore[arg-type]
    docs, entries = list_launches([status], progress=lambda rec: (None, None))
    assert docs[0]["note"] == NOTE and launch_document(status)["note"] == NOTE
    for terminal in (True, False):
        console = Console(file=io.StringIO(), width=200 if terminal else 80, force_terminal=terminal,
                          color_system=None)
        console.print(launches_view(entries, title="launches", console=console), crop=False)
        assert NOTE in console.file.getvalue()  # type: ignore[attr-defined]
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(render_status(StatusSnapshot(launches=(status,), refreshed=time.time())))
    assert f"note: {NOTE}" in console.file.getvalue()  # type: ignore[attr-defined]


def test_a_version_3_database_gets_an_empty_note(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    old = StateDB(path, migrations=MIGRATIONS[:3])
    old._db.execute("INSERT INTO launches (id, created, config_path, config_text, cluster, backend, nodes, remote_dir, "
                    "snapshot, status, total_runs, total_hours, options) VALUES ('l', 0, 'c', '', 'c', 'local', 1, "
                    "'/r', '', 'submitted', 0, 0, '{}')")
    old._db.commit()
    old.close()
    assert StateDB(path).launch("l").note == ""  # type: ignore[union-attr]
