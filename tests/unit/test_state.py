"""The state database keeps launches, sweeps and jobs across processes, and forgets nothing by accident:
older files are migrated with their data, newer or damaged ones are refused in one line and left unchanged."""

from __future__ import annotations

import os
import random
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from atlas_sweeps.errors import StateError
from atlas_sweeps.state.store import (
    MIGRATIONS,
    JobRecord,
    LaunchRecord,
    PollRecord,
    StateDB,
    SweepRecord,
    TaskSeen,
)

ROOT = Path(__file__).resolve().parents[2]


def _launch(launch_id: str, created: float) -> LaunchRecord:
    return LaunchRecord(id=launch_id, created=created, config_path="/p/c.yml", config_text="program: x\n",
                        cluster="c", backend="local", nodes=2, remote_dir="/r", snapshot="", status="recorded",
                        total_runs=3, total_hours=3.0, git_commit="abc", git_branch="main", git_dirty=True,
                        options={"nodes": 2})


def test_round_trip_across_connections(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "s" / "state.db")
    db.add_launch(_launch("a1", 1.0))
    db.add_launch(_launch("b2", 2.0))
    db.add_sweep(SweepRecord(launch_id="a1", name="s", tags=("x", "y"), runs=3, jobs=2, config={"k": [1]},
                             log_dir=""))
    db.set_sweep_id("a1", "s", sweep_id="a1/s", url=None, log_dir="/r/logs/a1/s")
    db.add_job(JobRecord(launch_id="a1", sweep_name="s", chunk=0, job_id="77", job_name="atlas-a1-s",
                         array_spec="0-2%2", task_offset=0, task_count=3, output="/o/%A_%a.out",
                         error="/o/%A_%a.err", script="/r/job.sbatch", submitted=3.0))
    db.update_launch("a1", status="submitted", snapshot="/r/snapshots/a1")
    db.close()
    again = StateDB(tmp_path / "s" / "state.db")
    assert [launch.id for launch in again.launches()] == ["b2", "a1"]
    launch = again.launch("a1")
    assert launch is not None and launch.status == "submitted" and launch.git_dirty is True
    assert launch.options == {"nodes": 2}
    [sweep] = again.sweeps("a1")
    assert sweep.tags == ("x", "y") and sweep.config == {"k": [1]} and sweep.sweep_id == "a1/s"
    job = again.job_by_id("77_1")
    assert job is not None and job.sweep_name == "s"
    assert again.job_by_id("78") is None
    again.delete_launch("b2")
    assert [launch.id for launch in again.launches()] == ["a1"]


# The schema exactly as the files written before schema versions hold it (user_version 0). Frozen: such
# files exist on users' machines, and every later version must open them.
UNVERSIONED_SCHEMA = """
CREATE TABLE IF NOT EXISTS launches (
    id TEXT PRIMARY KEY, created REAL NOT NULL, config_path TEXT NOT NULL, config_text TEXT NOT NULL,
    cluster TEXT NOT NULL, backend TEXT NOT NULL, nodes INTEGER NOT NULL, remote_dir TEXT NOT NULL,
    snapshot TEXT NOT NULL, git_commit TEXT, git_branch TEXT, git_dirty INTEGER,
    status TEXT NOT NULL, total_runs INTEGER NOT NULL, total_hours REAL NOT NULL, options TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sweeps (
    launch_id TEXT NOT NULL REFERENCES launches(id), name TEXT NOT NULL, tags TEXT NOT NULL,
    sweep_id TEXT, url TEXT, runs INTEGER NOT NULL, jobs INTEGER NOT NULL, config TEXT NOT NULL,
    log_dir TEXT NOT NULL, PRIMARY KEY (launch_id, name)
);
CREATE TABLE IF NOT EXISTS jobs (
    launch_id TEXT NOT NULL REFERENCES launches(id), sweep_name TEXT NOT NULL, chunk INTEGER NOT NULL,
    job_id TEXT NOT NULL, job_name TEXT NOT NULL, array_spec TEXT NOT NULL, task_offset INTEGER NOT NULL,
    task_count INTEGER NOT NULL, output TEXT NOT NULL, error TEXT NOT NULL, script TEXT NOT NULL,
    submitted REAL NOT NULL, PRIMARY KEY (launch_id, sweep_name, chunk)
);
CREATE INDEX IF NOT EXISTS jobs_by_id ON jobs (job_id);
-- last-seen task states: written by status, read by status, ls and cancel
CREATE TABLE IF NOT EXISTS task_states (
    launch_id TEXT NOT NULL, job_id TEXT NOT NULL, task INTEGER NOT NULL, state TEXT NOT NULL,
    reason TEXT NOT NULL, node TEXT NOT NULL, elapsed INTEGER, time_limit INTEGER, exit_code INTEGER,
    start TEXT NOT NULL, "end" TEXT NOT NULL, source TEXT NOT NULL, log_line TEXT NOT NULL, seen REAL NOT NULL,
    PRIMARY KEY (launch_id, job_id, task)
);
CREATE TABLE IF NOT EXISTS launch_polls (
    launch_id TEXT PRIMARY KEY, polled REAL NOT NULL, accounting INTEGER
);
"""


def _unversioned_db(path: Path) -> None:
    """A database as atlas-sweeps wrote it before schema versions: one row in every table, readable by all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(UNVERSIONED_SCHEMA)
    with db:
        db.execute("INSERT INTO launches VALUES ('a1', 1.5, '/p/c.yml', 'program: x\n', 'c', 'local', 2, '/r',"
                   " '/r/snapshots/a1', 'abc', 'main', 1, 'submitted', 3, 3.0, '{\"nodes\": 2}')")
        db.execute("INSERT INTO sweeps VALUES ('a1', 's', '[\"x\"]', 'a1/s', NULL, 3, 1, '{\"k\": [1]}', '/r/l')")
        db.execute("INSERT INTO jobs VALUES ('a1', 's', 0, '77', 'atlas-a1-s', '0-2', 0, 3, '/o/%A_%a.out',"
                   " '/o/%A_%a.err', '/r/job.sbatch', 3.0)")
        db.execute("INSERT INTO task_states VALUES ('a1', '77', 1, 'FAILED', '', 'n1', 5, 60, 1, 's', 'e', 'sacct',"
                   " 'boom', 9.0)")
        db.execute("INSERT INTO launch_polls VALUES ('a1', 9.0, 1)")
    db.close()
    path.chmod(0o644)


def _assert_unversioned_rows_survive(db: StateDB) -> None:
    assert db.launches() == [LaunchRecord(
        id="a1", created=1.5, config_path="/p/c.yml", config_text="program: x\n", cluster="c", backend="local",
        nodes=2, remote_dir="/r", snapshot="/r/snapshots/a1", status="submitted", total_runs=3, total_hours=3.0,
        git_commit="abc", git_branch="main", git_dirty=True, options={"nodes": 2})]
    assert db.sweeps("a1") == [SweepRecord(launch_id="a1", name="s", tags=("x",), runs=3, jobs=1,
                                           config={"k": [1]}, log_dir="/r/l", sweep_id="a1/s")]
    assert db.job_by_id("77_2") == JobRecord(
        launch_id="a1", sweep_name="s", chunk=0, job_id="77", job_name="atlas-a1-s", array_spec="0-2", task_offset=0,
        task_count=3, output="/o/%A_%a.out", error="/o/%A_%a.err", script="/r/job.sbatch", submitted=3.0)
    assert db.task_states("a1") == [TaskSeen(launch_id="a1", job_id="77", task=1, state="FAILED", node="n1",
                                             elapsed=5, time_limit=60, exit_code=1, start="s", end="e",
                                             source="sacct", log_line="boom", seen=9.0)]
    assert db.last_poll("a1") == PollRecord(launch_id="a1", polled=9.0, accounting=True)


def test_a_database_from_before_schema_versions_opens_with_its_data_and_becomes_private(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _unversioned_db(path)
    db = StateDB(path)
    assert db.version == len(MIGRATIONS)
    _assert_unversioned_rows_survive(db)
    db.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert StateDB(path).version == len(MIGRATIONS)  # opening a current file changes nothing


def test_a_migration_adding_columns_keeps_rows_and_fills_defaults_then_older_code_refuses(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _unversioned_db(path)
    add_columns = ("ALTER TABLE launches ADD COLUMN resumed INTEGER NOT NULL DEFAULT 0",
                   "ALTER TABLE jobs ADD COLUMN verified REAL")
    newer = StateDB(path, migrations=(*MIGRATIONS, add_columns))
    assert newer.version == len(MIGRATIONS) + 1
    _assert_unversioned_rows_survive(newer)
    newer.close()
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT resumed, verified FROM launches JOIN jobs ON jobs.launch_id = launches.id").fetchall() \
        == [(0, None)]
    raw.close()
    before = path.read_bytes()
    with pytest.raises(StateError) as info:
        StateDB(path)
    assert str(info.value) == (
        f"state database {path} has schema version {len(MIGRATIONS) + 1}, written by a newer atlas-sweeps "
        f"(this one knows up to version {len(MIGRATIONS)}) (upgrade atlas-sweeps to use it; the file was left unchanged)")
    assert path.read_bytes() == before


def test_a_new_database_is_private_and_current(tmp_path: Path) -> None:
    path = tmp_path / "state" / "state.db"
    StateDB(path).close()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert StateDB(path).version == len(MIGRATIONS)


def _truncated(path: Path) -> None:
    db = StateDB(path)
    for i in range(200):
        db.add_launch(_launch(f"l{i}", float(i)))
    db.close()
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _foreign(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
    db.close()


DAMAGED = {
    "random bytes": (lambda p: p.write_bytes(random.Random(7).randbytes(8192)), "is damaged (file is not a database)"),
    "truncated": (_truncated, "is damaged (database disk image is malformed)"),
    "text file": (lambda p: p.write_text('{"launches": []}\n' * 10), "is damaged (file is not a database)"),
    "another program's": (_foreign, "is an SQLite database of another program (tables: moz_places)"),
}


@pytest.mark.parametrize("kind", DAMAGED)
def test_a_damaged_file_is_named_in_one_line_and_left_unchanged(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    make, message = DAMAGED[kind]
    make(path)
    before = path.read_bytes()
    with pytest.raises(StateError) as info:
        StateDB(path).launches()
    assert f"{path} {message}" in str(info.value) and "\n" not in str(info.value)
    assert "the file was left unchanged" in str(info.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db"]


def _newer(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()


@pytest.mark.parametrize(("make", "expected"), ids=["damaged", "newer"], argvalues=[
    (lambda p: p.write_bytes(random.Random(3).randbytes(4096)),
     "error: state database {path} is damaged (file is not a database) "
     "(move it aside to start a new one; the file was left unchanged)"),
    (_newer, "error: state database {path} has schema version 99, written by a newer atlas-sweeps "
             f"(this one knows up to version {len(MIGRATIONS)}) (upgrade atlas-sweeps to use it; "
             "the file was left unchanged)"),
])
@pytest.mark.parametrize("command", [("ls",), ("status", "--once")], ids=" ".join)
def test_cli_says_in_one_line_which_state_file_it_cannot_use(make: Callable[[Path], None], expected: str,
                                                              command: tuple[str, ...], tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    make(state / "state.db")
    before = (state / "state.db").read_bytes()
    env = {**os.environ, "ATLAS_SWEEPS_STATE_DIR": str(state), "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "atlas_sweeps", *command], capture_output=True, text=True,
                            env=env, timeout=60, cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", expected.format(path=state / "state.db") + "\n")
    assert (state / "state.db").read_bytes() == before
