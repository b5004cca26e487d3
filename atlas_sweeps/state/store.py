"""The local state database (SQLite): every launch, its sweeps and its jobs, so ``status``, ``tail`` and
``cancel`` work from any terminal and ``launch --resume`` knows exactly what was submitted. Never holds secrets."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, fields
from operator import attrgetter
from pathlib import Path
from typing import Any

from atlas_sweeps.errors import StateError
from atlas_sweeps.slurm.task import TaskState

# The schema, as the migrations that build it: entry i takes a database from version i to i + 1
# (``PRAGMA user_version``). Append an entry to change the schema (adding a column is one
# ``ALTER TABLE t ADD COLUMN c ... DEFAULT ...``); never edit one that has shipped. Version 1 is the
# schema of the files written before versions existed, so it creates only what is missing.
Migration = tuple[str, ...]
MIGRATIONS: tuple[Migration, ...] = (
    (
        """CREATE TABLE IF NOT EXISTS launches (
            id TEXT PRIMARY KEY, created REAL NOT NULL, config_path TEXT NOT NULL, config_text TEXT NOT NULL,
            cluster TEXT NOT NULL, backend TEXT NOT NULL, nodes INTEGER NOT NULL, remote_dir TEXT NOT NULL,
            snapshot TEXT NOT NULL, git_commit TEXT, git_branch TEXT, git_dirty INTEGER,
            status TEXT NOT NULL, total_runs INTEGER NOT NULL, total_hours REAL NOT NULL, options TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS sweeps (
            launch_id TEXT NOT NULL REFERENCES launches(id), name TEXT NOT NULL, tags TEXT NOT NULL,
            sweep_id TEXT, url TEXT, runs INTEGER NOT NULL, jobs INTEGER NOT NULL, config TEXT NOT NULL,
            log_dir TEXT NOT NULL, PRIMARY KEY (launch_id, name))""",
        """CREATE TABLE IF NOT EXISTS jobs (
            launch_id TEXT NOT NULL REFERENCES launches(id), sweep_name TEXT NOT NULL, chunk INTEGER NOT NULL,
            job_id TEXT NOT NULL, job_name TEXT NOT NULL, array_spec TEXT NOT NULL, task_offset INTEGER NOT NULL,
            task_count INTEGER NOT NULL, output TEXT NOT NULL, error TEXT NOT NULL, script TEXT NOT NULL,
            submitted REAL NOT NULL, PRIMARY KEY (launch_id, sweep_name, chunk))""",
        "CREATE INDEX IF NOT EXISTS jobs_by_id ON jobs (job_id)",
        # last-seen task states: written by status, read by status, ls and cancel
        """CREATE TABLE IF NOT EXISTS task_states (
            launch_id TEXT NOT NULL, job_id TEXT NOT NULL, task INTEGER NOT NULL, state TEXT NOT NULL,
            reason TEXT NOT NULL, node TEXT NOT NULL, elapsed INTEGER, time_limit INTEGER, exit_code INTEGER,
            start TEXT NOT NULL, "end" TEXT NOT NULL, source TEXT NOT NULL, log_line TEXT NOT NULL,
            seen REAL NOT NULL, PRIMARY KEY (launch_id, job_id, task))""",
        """CREATE TABLE IF NOT EXISTS launch_polls (
            launch_id TEXT PRIMARY KEY, polled REAL NOT NULL, accounting INTEGER)""",
    ),
    (
        # what launch --resume needs to submit nothing twice: the MaxArraySize the launch's arrays were cut
        # with (their job names and task ranges), and when a submission was last attempted (None: never, so
        # no array can exist); a launch from before this that got as far as submitting may have arrays
        "ALTER TABLE launches ADD COLUMN max_array_size INTEGER",
        "ALTER TABLE launches ADD COLUMN submit_started REAL",
        "UPDATE launches SET submit_started = created WHERE status IN ('submitting', 'partial')",
    ),
    (
        # each run's parameters where the plan knows them (local backend: a JSON list, by run index), and why
        # a task that did not complete ended: its cause, once final, so its log is never read again
        "ALTER TABLE sweeps ADD COLUMN run_params TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE task_states ADD COLUMN cause TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE task_states ADD COLUMN error TEXT NOT NULL DEFAULT ''",
    ),
    (
        # the hypothesis the launch tests (launch --note): ls, status and report show it
        "ALTER TABLE launches ADD COLUMN note TEXT NOT NULL DEFAULT ''",
    ),
    (
        # retry rounds: a chunk's array of attempt N > 1 holds only the array task ids (= the runs, less the
        # chunk's offset) that had not completed; SQLite cannot change a primary key, so the table is rebuilt
        """CREATE TABLE jobs_v5 (
            launch_id TEXT NOT NULL REFERENCES launches(id), sweep_name TEXT NOT NULL, chunk INTEGER NOT NULL,
            job_id TEXT NOT NULL, job_name TEXT NOT NULL, array_spec TEXT NOT NULL, task_offset INTEGER NOT NULL,
            task_count INTEGER NOT NULL, output TEXT NOT NULL, error TEXT NOT NULL, script TEXT NOT NULL,
            submitted REAL NOT NULL, attempt INTEGER NOT NULL DEFAULT 1, task_ids TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (launch_id, sweep_name, chunk, attempt))""",
        "INSERT INTO jobs_v5 (launch_id, sweep_name, chunk, job_id, job_name, array_spec, task_offset, task_count, output, error, script, submitted) SELECT launch_id, sweep_name, chunk, job_id, job_name, array_spec, task_offset, task_count, output, error, script, submitted FROM jobs ORDER BY rowid",
        "DROP TABLE jobs",
        "ALTER TABLE jobs_v5 RENAME TO jobs",
        "CREATE INDEX IF NOT EXISTS jobs_by_id ON jobs (job_id)",
    ),
    (
        # the W&B run an agent task was last on, "<run id> <parameters as JSON>" (status.agent_runs)
        "ALTER TABLE task_states ADD COLUMN agent_run TEXT NOT NULL DEFAULT ''",
    ),
    (
        # how often a task was requeued (preemption, time limit): squeue's RestartCnt, kept once it left squeue
        "ALTER TABLE task_states ADD COLUMN restarts INTEGER NOT NULL DEFAULT 0",
    ),
    (
        # packed tasks (launch --runs-per-job): each run's own exit record as its task wrote it ("R" while it
        # runs, then its exit code) and its log's last line, so status shows one row per run from any terminal
        """CREATE TABLE IF NOT EXISTS run_records (
            launch_id TEXT NOT NULL, job_id TEXT NOT NULL, task INTEGER NOT NULL, run INTEGER NOT NULL,
            record TEXT NOT NULL, log_line TEXT NOT NULL DEFAULT '', PRIMARY KEY (launch_id, job_id, task, run))""",
    ),
)


def state_dir() -> Path:
    """Where the database lives: ``$ATLAS_SWEEPS_STATE_DIR``, else ``$XDG_STATE_HOME/atlas-sweeps``."""
    override = os.environ.get("ATLAS_SWEEPS_STATE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "atlas-sweeps"


@dataclass(frozen=True)
class LaunchRecord:
    """One ``launch`` invocation."""

    id: str
    created: float
    config_path: str
    config_text: str
    cluster: str
    backend: str
    nodes: int
    remote_dir: str
    snapshot: str
    status: str
    total_runs: int
    total_hours: float
    git_commit: str | None = None
    git_branch: str | None = None
    git_dirty: bool | None = None
    options: dict[str, Any] = field(default_factory=dict)
    max_array_size: int | None = None  # fixed before the first sbatch: the chunking of every sweep
    submit_started: float | None = None  # when submitting last began (None: never)
    note: str = ""  # what the launch is meant to find out (launch --note)


@dataclass(frozen=True)
class SweepRecord:
    """One sweep of a launch; ``sweep_id`` is set the moment the backend created it."""

    launch_id: str
    name: str
    tags: tuple[str, ...]
    runs: int
    jobs: int
    config: dict[str, Any]
    log_dir: str
    sweep_id: str | None = None
    url: str | None = None
    run_params: tuple[dict[str, Any], ...] = ()  # by run index; empty when the backend picks them (W&B)


@dataclass(frozen=True)
class JobRecord:
    """One submitted job array (a sweep, or one chunk of a large sweep)."""

    launch_id: str
    sweep_name: str
    chunk: int
    job_id: str
    job_name: str
    array_spec: str
    task_offset: int
    task_count: int
    output: str
    error: str
    script: str
    submitted: float
    attempt: int = 1  # 1: the launch's own array; N > 1: retry round N - 1
    task_ids: tuple[int, ...] = ()  # a retry's array task ids; empty: 0 .. task_count - 1

    @property
    def tasks(self) -> tuple[int, ...]:
        """The array's task ids."""
        return self.task_ids or tuple(range(self.task_count))


def _row(cls: type, row: sqlite3.Row) -> Any:
    values = dict(row)
    for name in ("tags", "run_params", "task_ids"):
        if name in values:
            values[name] = tuple(json.loads(values[name]))
    for name in ("config", "options"):
        if name in values:
            values[name] = json.loads(values[name])
    if "git_dirty" in values and values["git_dirty"] is not None:
        values["git_dirty"] = bool(values["git_dirty"])
    return cls(**{f.name: values[f.name] for f in fields(cls)})


class StateDB:
    """A thin wrapper over the SQLite file; every write commits at once, so nothing is lost on a crash.
    Opening it brings an older file up to the latest schema and refuses a newer or damaged one unchanged."""

    def __init__(self, path: Path, *, migrations: tuple[Migration, ...] = MIGRATIONS) -> None:
        """``migrations`` is the schema; only tests pass a longer list, to write as a newer version would."""
        self.path = path
        self._migrations = migrations
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not path.exists():  # private from its first byte: launches name paths, hosts and projects
                os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        except OSError as exc:
            raise StateError(f"cannot create the state database {path}: {exc.strerror}",
                             hint="set ATLAS_SWEEPS_STATE_DIR to a writable directory") from None
        with self._guard():
            self._db = sqlite3.connect(str(path), timeout=30)
        self._db.row_factory = sqlite3.Row
        try:
            with self._guard():
                self._migrate()
        except BaseException:
            self._db.close()
            raise
        mode = path.stat()
        if mode.st_mode & 0o077 and mode.st_uid == os.getuid():
            with suppress(OSError):
                path.chmod(0o600)  # a file from a version that left it readable to others

    @classmethod
    def open_default(cls) -> StateDB:
        """The user's database."""
        return cls(state_dir() / "state.db")

    @property
    def version(self) -> int:
        """The file's schema version (``PRAGMA user_version``)."""
        row = self._one("PRAGMA user_version")
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        """Apply the migrations the file lacks, all in one transaction with the new version number."""
        latest = len(self._migrations)
        if self._check_version() == latest:
            return
        self._db.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then see it done
        try:
            current = self._check_version()
            if current == 0:
                self._check_ours()
            for migration in self._migrations[current:]:
                for statement in migration:
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {latest}")
        except BaseException:
            self._db.rollback()
            raise
        self._db.commit()

    def _check_version(self) -> int:
        current = self.version
        if current > len(self._migrations):
            raise StateError(
                f"state database {self.path} has schema version {current}, written by a newer atlas-sweeps "
                f"(this one knows up to version {len(self._migrations)})",
                hint="upgrade atlas-sweeps to use it; the file was left unchanged")
        return current

    def _check_ours(self) -> None:
        """A file without a version is ours (from before versions) or new, never another program's database."""
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "launches" not in tables:
            raise StateError(f"{self.path} is an SQLite database of another program (tables: "
                             f"{', '.join(sorted(tables))}), not an atlas-sweeps state database",
                             hint="move it aside or set ATLAS_SWEEPS_STATE_DIR; the file was left unchanged")

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn SQLite's errors about the file into one-line errors naming it; leave programming errors be."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            hint = ("another atlas-sweeps command is using it; try again when it ends" if "locked" in str(exc)
                    else "check the file, its directory's permissions and the free disk space")
            raise StateError(f"cannot use the state database {self.path}: {exc}", hint=hint) from None
        except sqlite3.DatabaseError as exc:
            if type(exc) is not sqlite3.DatabaseError:  # IntegrityError and friends: a bug, not the file
                raise
            raise StateError(f"state database {self.path} is damaged ({exc})",
                             hint="move it aside to start a new one; the file was left unchanged") from None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._guard(), self._db:
            yield self._db

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._guard():
            return self._db.execute(sql, params).fetchall()

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def close(self) -> None:
        self._db.close()

    # -- writes -----------------------------------------------------------------------------------
    def add_launch(self, rec: LaunchRecord) -> None:
        values = asdict(rec)
        values["options"] = json.dumps(rec.options)
        values["git_dirty"] = None if rec.git_dirty is None else int(rec.git_dirty)
        cols = ", ".join(values)
        with self._tx() as db:
            db.execute(f"INSERT INTO launches ({cols}) VALUES ({', '.join('?' * len(values))})",
                       tuple(values.values()))

    def update_launch(self, launch_id: str, **changes: Any) -> None:
        cols = ", ".join(f"{k} = ?" for k in changes)
        with self._tx() as db:
            db.execute(f"UPDATE launches SET {cols} WHERE id = ?", (*changes.values(), launch_id))

    def add_sweep(self, rec: SweepRecord) -> None:
        values = asdict(rec)
        values["tags"] = json.dumps(list(rec.tags))
        values["config"] = json.dumps(rec.config)
        values["run_params"] = json.dumps(list(rec.run_params))
        cols = ", ".join(values)
        with self._tx() as db:
            db.execute(f"INSERT OR REPLACE INTO sweeps ({cols}) VALUES ({', '.join('?' * len(values))})",
                       tuple(values.values()))

    def set_sweep_id(self, launch_id: str, name: str, *, sweep_id: str, url: str | None, log_dir: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE sweeps SET sweep_id = ?, url = ?, log_dir = ? WHERE launch_id = ? AND name = ?",
                       (sweep_id, url, log_dir, launch_id, name))

    def delete_launch(self, launch_id: str) -> None:
        """Forget a launch that created nothing anywhere."""
        with self._tx() as db:
            for table, col in (("task_states", "launch_id"), ("run_records", "launch_id"),
                               ("launch_polls", "launch_id"), ("jobs", "launch_id"),
                               ("sweeps", "launch_id"), ("launches", "id")):
                db.execute(f"DELETE FROM {table} WHERE {col} = ?", (launch_id,))

    def add_job(self, rec: JobRecord) -> None:
        """Record a submitted array; a second array for the same chunk and attempt is refused, never replaces
        the first (the replaced one would run on, invisible to ``status`` and ``cancel``)."""
        values = asdict(rec)
        values["task_ids"] = json.dumps(list(rec.task_ids))
        cols = ", ".join(values)
        try:
            with self._tx() as db:
                db.execute(f"INSERT INTO jobs ({cols}) VALUES ({', '.join('?' * len(values))})",
                           tuple(values.values()))
        except sqlite3.IntegrityError:
            known = self._one("SELECT job_id FROM jobs WHERE launch_id = ? AND sweep_name = ? AND chunk = ? "
                              "AND attempt = ?", (rec.launch_id, rec.sweep_name, rec.chunk, rec.attempt))
            raise StateError(f"launch {rec.launch_id} already has job {known[0] if known else '?'} for "
                             f"{rec.sweep_name} chunk {rec.chunk}; job {rec.job_id} is a second array of it",
                             hint=f"cancel the one you do not want: scancel {rec.job_id}") from None

    # -- reads ------------------------------------------------------------------------------------
    def launch(self, launch_id: str) -> LaunchRecord | None:
        row = self._one("SELECT * FROM launches WHERE id = ?", (launch_id,))
        return _row(LaunchRecord, row) if row else None

    def launches(self, *, limit: int | None = None) -> list[LaunchRecord]:
        """Launches, newest first."""
        sql = "SELECT * FROM launches ORDER BY created DESC" + (f" LIMIT {int(limit)}" if limit else "")
        return [_row(LaunchRecord, r) for r in self._rows(sql)]

    def sweeps(self, launch_id: str) -> list[SweepRecord]:
        rows = self._rows("SELECT * FROM sweeps WHERE launch_id = ? ORDER BY rowid", (launch_id,))
        return [_row(SweepRecord, r) for r in rows]

    def jobs(self, launch_id: str) -> list[JobRecord]:
        rows = self._rows("SELECT * FROM jobs WHERE launch_id = ? ORDER BY rowid", (launch_id,))
        return [_row(JobRecord, r) for r in rows]

    def job_by_id(self, job_id: str) -> JobRecord | None:
        """The job array whose id is ``job_id`` (the part before ``_`` of an array task id)."""
        row = self._one("SELECT * FROM jobs WHERE job_id = ? ORDER BY submitted DESC LIMIT 1",
                        (job_id.split("_", 1)[0],))
        return _row(JobRecord, row) if row else None

    # -- last-seen task states (``status`` writes them; ``status``, ``ls`` and ``cancel`` read them) ----------
    def save_task_states(self, launch_id: str, tasks: list[TaskSeen], *, polled: float,
                         accounting: bool | None) -> None:
        """Record one poll of a launch: every task's state (replacing the previous) and the poll itself."""
        with self._tx() as db:
            self._put_task_states(db, tasks)
            db.execute("INSERT OR REPLACE INTO launch_polls (launch_id, polled, accounting) VALUES (?, ?, ?)",
                       (launch_id, polled, None if accounting is None else int(accounting)))

    def record_task_states(self, tasks: list[TaskSeen]) -> None:
        """Replace some tasks' last-seen states without a poll (``cancel`` records what scancel did)."""
        with self._tx() as db:
            self._put_task_states(db, tasks)

    @staticmethod
    def _put_task_states(db: sqlite3.Connection, tasks: list[TaskSeen]) -> None:
        cols = ", ".join(f'"{c}"' for c in _SEEN_FIELDS)
        sql = f"INSERT OR REPLACE INTO task_states ({cols}) VALUES ({', '.join('?' * len(_SEEN_FIELDS))})"
        db.executemany(sql, map(_seen_values, tasks))

    def task_states(self, launch_id: str) -> list[TaskSeen]:
        """The last-seen states of a launch's tasks (empty before its first poll)."""
        cols = ", ".join(f'"{c}"' for c in _SEEN_FIELDS)
        rows = self._rows(f"SELECT {cols} FROM task_states WHERE launch_id = ? ORDER BY job_id, task", (launch_id,))
        return [TaskSeen.from_fields(dict(zip(_SEEN_FIELDS, r, strict=True))) for r in rows]

    def save_run_records(self, launch_id: str, records: dict[tuple[str, int, int], tuple[str, str]]) -> None:
        """Record packed runs' exit records and last log lines, ``(job, task, run) → (record, log_line)``;
        a run's earlier log line stays when the new one is empty."""
        rows = [(launch_id, job, task, run, rec, line) for (job, task, run), (rec, line) in records.items()]
        with self._tx() as db:
            db.executemany("INSERT INTO run_records (launch_id, job_id, task, run, record, log_line) "
                           "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (launch_id, job_id, task, run) DO UPDATE SET "
                           "record = excluded.record, log_line = CASE WHEN excluded.log_line = '' "
                           "THEN log_line ELSE excluded.log_line END", rows)

    def run_records(self, launch_id: str) -> dict[tuple[str, int, int], tuple[str, str]]:
        """What ``save_run_records`` kept of a launch's packed runs."""
        rows = self._rows("SELECT job_id, task, run, record, log_line FROM run_records WHERE launch_id = ?",
                          (launch_id,))
        return {(r[0], int(r[1]), int(r[2])): (r[3], r[4]) for r in rows}

    def last_poll(self, launch_id: str) -> PollRecord | None:
        """The launch's last successful poll, if any."""
        row = self._one("SELECT * FROM launch_polls WHERE launch_id = ?", (launch_id,))
        if row is None:
            return None
        return PollRecord(launch_id=row["launch_id"], polled=row["polled"],
                          accounting=None if row["accounting"] is None else bool(row["accounting"]))


@dataclass(frozen=True, kw_only=True)
class TaskSeen(TaskState):
    """One array task's state as the last successful ``status`` poll saw it: its ``TaskState`` plus the
    launch, the log's last line and when (one row of ``task_states``)."""

    source: str = ""
    launch_id: str
    log_line: str = ""
    seen: float = 0.0
    cause: str = ""  # why it did not complete (``slurm.causes``), once final: its log is not read again
    error: str = ""  # its log's last error line
    agent_run: str = ""  # W&B: the run its agent was last on, "<run id> <parameters as JSON>"

    @classmethod
    def of(cls, state: TaskState, *, launch_id: str, log_line: str = "", seen: float = 0.0, cause: str = "",
           error: str = "", agent_run: str = "") -> TaskSeen:
        """The row recording ``state``."""
        # vars(): a TaskState's fields (a TaskSeen's too, whose own are replaced).
        return cls.from_fields({**vars(state), "launch_id": launch_id, "log_line": log_line, "seen": seen,
                                "cause": cause, "error": error, "agent_run": agent_run})

    def task_state(self) -> TaskState:
        """The Slurm state alone (a TaskSeen is one already: merges take it as it is)."""
        return TaskState.from_fields({f: getattr(self, f) for f in _TASK_FIELDS})


_SEEN_FIELDS = tuple(f.name for f in fields(TaskSeen))
_seen_values = attrgetter(*_SEEN_FIELDS)  # a row's values in _SEEN_FIELDS order
_TASK_FIELDS = tuple(f.name for f in fields(TaskState))


@dataclass(frozen=True)
class PollRecord:
    """When a launch was last polled and whether the cluster had accounting (``sacct``) then."""

    launch_id: str
    polled: float
    accounting: bool | None
