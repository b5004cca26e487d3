"""What ``status`` shows and how it learns it: ONE remote script per cluster per refresh (a delimited
``squeue`` with array tasks expanded, ``sacct`` only for arrays that left squeue, accounting detection,
and the last line of running tasks' logs, bounded in bytes), merged with the last states seen into
launches → sweeps → tasks with per-sweep progress counts. A failed poll keeps the last good data, marked
stale, and is retried with backoff, unless retrying cannot help (a changed host key, a refused login)."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from atlas_sweeps.backends.base import SweepBackend
from atlas_sweeps.errors import is_retryable
from atlas_sweeps.launch.layout import exit_files
from atlas_sweeps.remote.protocol import EMIT_FUNCTION, parse_facts
from atlas_sweeps.slurm.jobstate import (
    ACTIVE_STATES,
    CANCEL_SOURCE,
    DONE,
    FAILED,
    PENDING,
    RUNNING,
    UNKNOWN,
    TaskState,
    accounting_missing,
    category,
    is_terminal,
    merge_tasks,
    parse_sacct,
    parse_squeue,
    sacct_command,
    squeue_command,
)
from atlas_sweeps.state.store import (
    JobRecord,
    LaunchRecord,
    StateDB,
    SweepRecord,
    TaskSeen,
)

MAX_LOG_TASKS = 200  # running tasks whose last log line one poll reads
LOG_LINE_BYTES = 300  # per task: the poll's output stays small whatever the logs hold
MAX_BACKOFF = 60.0
RECENT_SECONDS = 7 * 86400  # launches never polled count as unfinished only this long


@dataclass(frozen=True)
class ArrayQuery:
    """One job array the poll asks about."""

    job_id: str
    job_name: str
    task_count: int
    output: str  # log pattern (%A_%a)
    submitted: float
    recheck: tuple[int, ...] = ()  # tasks running at the last poll: their final log line is read once more


@dataclass(frozen=True)
class PollResult:
    """What one poll script said (parsed, not yet merged)."""

    squeue: list[TaskState]
    sacct: list[TaskState]
    accounting: bool | None  # None: sacct was not needed this time
    log_lines: dict[tuple[str, int], str]
    sacct_error: str | None = None
    exit_codes: dict[tuple[str, int], int] = field(default_factory=dict)


def poll_script(arrays: list[ArrayQuery]) -> str:
    """The bash run once per refresh for every array of one cluster."""
    ids = [a.job_id for a in arrays]
    need_spec = " ".join(f"{a.job_id}:{a.task_count}" for a in arrays)
    start = int(min(a.submitted for a in arrays) - 300)
    lines = [
        EMIT_FUNCTION,
        "export LC_ALL=C",
        "errf=$(mktemp)",
        "declare -A pat",
        *(f"pat[{a.job_id}]={shlex.quote(a.output)}" for a in arrays if a.job_id.isdigit()),
        f"sq=$({squeue_command(a.job_name for a in arrays)} 2>\"$errf\")",
        'rc=$?',
        'if [ "$rc" -ne 0 ]; then emit squeue_error "$(cat "$errf")"; rm -f "$errf"; exit 0; fi',
        'emit squeue "$sq"',
        # Arrays whose tasks are not all active in squeue: only those need sacct.
        f"need=$(printf '%s\\n' \"$sq\" | awk -F'|' -v spec={shlex.quote(need_spec)} "
        f"-v active={shlex.quote(' '.join(ACTIVE_STATES))} {shlex.quote(_NEED_AWK)})",
        'if [ -n "$need" ]; then',
        '  need=${need%,}',
        '  if ! command -v sacct >/dev/null 2>&1; then emit accounting no',
        f'  else start=$(date -d @{start} +%Y-%m-%dT%H:%M:%S 2>/dev/null || echo now-7days)',
        f'    if ac=$({sacct_command(ids_expr=chr(34) + "$need" + chr(34), start_expr=chr(34) + "$start" + chr(34))} 2>"$errf"); then',
        '      emit accounting yes; emit sacct "$ac"',
        '    else emit sacct_error "$(cat "$errf")"; fi',
        '  fi',
        'fi',
        "lastline() {  # ARRAY_ID TASK RAW_ID: emit the task's last non-empty log line, bounded in bytes",
        '  local p=${pat[$1]:-} f l; [ -n "$p" ] || return 0',
        '  f=${p//%A/$1}; f=${f//%a/$2}; f=${f//%j/$3}',
        '  [ -r "$f" ] || return 0',
        "  l=$(tail -c 4096 -- \"$f\" 2>/dev/null | tr '\\r' '\\n' | grep -v '^[[:space:]]*$' | tail -n 1 "
        f"| head -c {LOG_LINE_BYTES})",
        '  emit "log:${1}_$2" "$l"',
        "}",
        f"printf '%s\\n' \"$sq\" | awk -F'|' '{{gsub(/ /, \"\")}} $4 == \"RUNNING\" {{print $1, $2, $3}}' "
        f"| head -n {MAX_LOG_TASKS} | while read -r aj t raw; do lastline \"$aj\" \"$t\" \"$raw\"; done",
        *(f"lastline {a.job_id} {t} {a.job_id}_{t}" for a in arrays if a.job_id.isdigit()
          for t in a.recheck[:MAX_LOG_TASKS]),
        # The exit codes the tasks' scripts wrote as they exited: "<array>_<task>.exit:<code>" lines.
        *(f'emit exits:{a.job_id} "$(cd {shlex.quote(d)} 2>/dev/null && grep -s "" -- {g} /dev/null)"'
          for a in arrays if a.job_id.isdigit() for d, g in [exit_files(a.output, job_id=a.job_id)]),
        'rm -f "$errf"',
        "emit done ok",
    ]
    del ids
    return "\n".join(lines) + "\n"


# Counts each array's active tasks in squeue's output (a pending remainder "5-9%2" counts 5) and prints,
# comma-separated, the arrays with fewer active tasks than they have: some of theirs left squeue.
_NEED_AWK = r"""
BEGIN { n = split(spec, s, " "); for (i = 1; i <= n; i++) { split(s[i], p, ":"); want[p[1]] = p[2] }
        m = split(active, a, " "); for (i = 1; i <= m; i++) act[a[i]] = 1 }
{ gsub(/ /, ""); if (!($4 in act)) next
  t = $2; gsub(/[\[\]]/, "", t); sub(/%.*/, "", t); c = 0
  k = split(t, r, ",")
  for (j = 1; j <= k; j++) { step = 1
    if (index(r[j], ":")) { split(r[j], q, ":"); r[j] = q[1]; step = q[2] }
    if (split(r[j], ab, "-") == 2) c += int((ab[2] - ab[1]) / step) + 1; else c += 1 }
  have[$1] += c }
END { for (id in want) if (have[id] + 0 < want[id] + 0) printf "%s,", id }
"""


def parse_poll(stdout: str, *, job_ids: Iterable[str]) -> PollResult:
    """The facts of ``poll_script``'s output; a scheduler that did not answer raises ``RemoteError``."""
    from atlas_sweeps.errors import RemoteError

    ids = list(job_ids)
    facts = parse_facts(stdout)
    values: dict[str, str] = {}
    logs: dict[tuple[str, int], str] = {}
    exit_codes: dict[tuple[str, int], int] = {}
    for key, value in facts:
        if key.startswith("log:"):
            job, _, task = key[4:].partition("_")
            if task.isdigit():
                logs[(job, int(task))] = value
        elif key.startswith("exits:"):
            exit_codes.update(parse_exit_files(value, job_id=key[6:]))
        else:
            values[key] = value
    if "squeue_error" in values:
        detail = " ".join(values["squeue_error"].split()) or "no message"
        raise RemoteError(f"squeue failed: {detail}", hint="the controller may be down; retrying")
    if "done" not in values:
        raise RemoteError("the status script stopped before its end", hint="the connection may have dropped")
    accounting: bool | None = None
    sacct: list[TaskState] = []
    sacct_error = None
    if values.get("accounting") == "yes":
        accounting = True
        sacct = parse_sacct(values.get("sacct", ""), job_ids=ids)
    elif values.get("accounting") == "no":
        accounting = False
    elif "sacct_error" in values:
        if accounting_missing(values["sacct_error"]):
            accounting = False
        else:
            sacct_error = " ".join(values["sacct_error"].split())
    return PollResult(squeue=parse_squeue(values.get("squeue", ""), job_ids=ids), sacct=sacct,
                      accounting=accounting, log_lines=logs, sacct_error=sacct_error, exit_codes=exit_codes)


def parse_exit_files(text: str, *, job_id: str) -> dict[tuple[str, int], int]:
    """``grep``'s ``<array>_<task>.exit:<code>`` lines of one array's exit-code files (see ``jobs.exit_record``)."""
    codes: dict[tuple[str, int], int] = {}
    for line in text.splitlines():
        name, _, code = line.partition(":")
        stem = name.rsplit("/", 1)[-1].removesuffix(".exit")
        array, _, task = stem.partition("_")
        if array == job_id and task.isdigit() and code.strip().isdigit():
            codes[(job_id, int(task))] = int(code.strip())
    return codes


# -- the model ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskRow:
    """One array task as shown: its state, which run it is, and its log's last line."""

    state: TaskState
    run: int
    log_line: str = ""

    @property
    def category(self) -> str:
        return self.state.category


@dataclass(frozen=True)
class SweepStatus:
    """A sweep's tasks and progress counts (and W&B's own counts for W&B sweeps)."""

    name: str
    tags: tuple[str, ...]
    sweep_id: str | None
    url: str | None
    runs: int
    tasks: tuple[TaskRow, ...]
    wandb_runs: dict[str, int] | None = None

    @property
    def counts(self) -> dict[str, int]:
        return count_categories(t.category for t in self.tasks)


@dataclass(frozen=True)
class LaunchStatus:
    """A launch and its sweeps as of ``polled`` (None: never polled); ``stale`` when the last poll failed."""

    launch: LaunchRecord
    sweeps: tuple[SweepStatus, ...]
    polled: float | None
    accounting: bool | None
    stale: bool = False
    error: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def tasks(self) -> list[TaskRow]:
        return [t for s in self.sweeps for t in s.tasks]

    @property
    def counts(self) -> dict[str, int]:
        return count_categories(t.category for t in self.tasks)

    @property
    def finished(self) -> bool:
        """No task pending or running (unknown tasks count as finished only without accounting)."""
        counts = self.counts
        return counts[PENDING] == 0 and counts[RUNNING] == 0 and (counts[UNKNOWN] == 0 or self.accounting is False)


@dataclass(frozen=True)
class StatusSnapshot:
    """Everything one refresh produced: what the table and ``--json`` show."""

    launches: tuple[LaunchStatus, ...]
    refreshed: float | None
    stale: bool = False
    error: str | None = None
    failures: int = 0
    next_refresh: float | None = None
    remote_calls: int = 0
    fatal: Exception | None = None  # an error retrying cannot fix (changed host key, refused login)

    @property
    def counts(self) -> dict[str, int]:
        return count_categories(t.category for launch in self.launches for t in launch.tasks)


def count_categories(categories: Iterable[str]) -> dict[str, int]:
    counts = {DONE: 0, RUNNING: 0, PENDING: 0, FAILED: 0, UNKNOWN: 0}
    for cat in categories:
        counts[cat] = counts.get(cat, 0) + 1
    counts["total"] = sum(counts.values())
    return counts


def _seen_to_state(seen: TaskSeen) -> TaskState:
    return TaskState(job_id=seen.job_id, task=seen.task, state=seen.state, reason=seen.reason, node=seen.node,
                     elapsed=seen.elapsed, time_limit=seen.time_limit, exit_code=seen.exit_code, start=seen.start,
                     end=seen.end, source=seen.source)


def build_launch_status(launch: LaunchRecord, sweeps: list[SweepRecord], jobs: list[JobRecord], *,
                        states: dict[tuple[str, int], TaskState], log_lines: dict[tuple[str, int], str],
                        polled: float | None, accounting: bool | None, stale: bool = False,
                        error: str | None = None, wandb: dict[str, dict[str, int]] | None = None,
                        notes: tuple[str, ...] = ()) -> LaunchStatus:
    """Group merged task states by sweep, in the order the launch recorded them (pure)."""
    out = []
    for sweep in sweeps:
        rows = []
        for job in (j for j in jobs if j.sweep_name == sweep.name):
            for task in range(job.task_count):
                key = (job.job_id, task)
                state = states.get(key) or TaskState(job_id=job.job_id, task=task, state="UNKNOWN", source="none")
                rows.append(TaskRow(state=state, run=job.task_offset + task, log_line=log_lines.get(key, "")))
        out.append(SweepStatus(name=sweep.name, tags=sweep.tags, sweep_id=sweep.sweep_id, url=sweep.url,
                               runs=sweep.runs, tasks=tuple(rows),
                               wandb_runs=(wandb or {}).get(sweep.sweep_id or "")))
    return LaunchStatus(launch=launch, sweeps=tuple(out), polled=polled, accounting=accounting, stale=stale,
                        error=error, notes=notes)


def stored_status(db: StateDB, launch: LaunchRecord, *, stale: bool = False, error: str | None = None) -> LaunchStatus:
    """A launch as the database last saw it (no remote call)."""
    seen = db.task_states(launch.id)
    poll = db.last_poll(launch.id)
    states = {(s.job_id, s.task): _seen_to_state(s) for s in seen}
    logs = {(s.job_id, s.task): s.log_line for s in seen if s.log_line}
    return build_launch_status(launch, db.sweeps(launch.id), db.jobs(launch.id), states=states, log_lines=logs,
                               polled=poll.polled if poll else None,
                               accounting=poll.accounting if poll else None, stale=stale, error=error)


def is_unfinished(db: StateDB, launch: LaunchRecord, *, now: float) -> bool:
    """True when a launch may still have pending or running jobs, as far as the database knows."""
    jobs = db.jobs(launch.id)
    if not jobs:
        return False
    seen = db.task_states(launch.id)
    if not seen:
        return now - launch.created < RECENT_SECONDS
    if any(category(s.state) in (PENDING, RUNNING) for s in seen):
        return True
    return len(seen) < sum(j.task_count for j in jobs) and now - launch.created < RECENT_SECONDS


def default_launches(db: StateDB, *, now: float) -> list[LaunchRecord]:
    """Launches with unfinished jobs plus the most recent one, newest first."""
    launches = db.launches(limit=200)
    if not launches:
        return []
    return [launches[0]] + [rec for rec in launches[1:] if is_unfinished(db, rec, now=now)]


def backoff_delay(failures: int, *, interval: float) -> float:
    """Seconds before the next try after ``failures`` failed polls in a row: doubling, capped."""
    if failures <= 0:
        return interval
    return min(interval * (2 ** failures), max(MAX_BACKOFF, interval))


# -- polling -------------------------------------------------------------------------------------------
@dataclass
class _Cluster:
    remote: object | None = None
    error: str | None = None


@dataclass
class Poller:
    """Polls the chosen launches, one remote script per cluster per refresh, reusing one session per
    cluster (reopened after a failure), and records what it saw in the state database."""

    db: StateDB
    remote_factory: Callable[[str], object]  # cluster name -> Remote
    backend_for: Callable[[LaunchRecord], SweepBackend] | None = None  # None: no backend progress fetched
    clock: Callable[[], float] = time.time
    _clusters: dict[str, _Cluster] = field(default_factory=dict)
    calls: int = 0

    def poll(self, launches: list[LaunchRecord]) -> StatusSnapshot:
        """One refresh; never raises for cluster problems (they mark the launches stale instead)."""
        by_cluster: dict[str, list[LaunchRecord]] = {}
        for rec in launches:
            by_cluster.setdefault(rec.cluster, []).append(rec)
        statuses: dict[str, LaunchStatus] = {}
        errors: list[str] = []
        fatal: Exception | None = None
        for cluster, recs in by_cluster.items():
            try:
                for status in self._poll_cluster(cluster, recs):
                    statuses[status.launch.id] = status
            except Exception as exc:  # noqa: BLE001 - any failure keeps the last data; retried if it may pass
                self._drop(cluster)
                message = f"{cluster}: {exc}"
                errors.append(message)
                if fatal is None and not is_retryable(exc):
                    fatal = exc
                for rec in recs:
                    statuses[rec.id] = stored_status(self.db, rec, stale=True, error=message)
        return StatusSnapshot(launches=tuple(statuses[r.id] for r in launches), refreshed=self.clock(),
                              stale=bool(errors), error="; ".join(errors) or None, remote_calls=self.calls,
                              fatal=fatal)

    def close(self) -> None:
        for name in list(self._clusters):
            self._drop(name)

    def _drop(self, cluster: str) -> None:
        entry = self._clusters.pop(cluster, None)
        if entry is not None and entry.remote is not None:
            try:
                entry.remote.close()  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001, S110 - the session is already broken
                pass

    def _remote(self, cluster: str) -> object:
        entry = self._clusters.get(cluster)
        if entry is None or entry.remote is None:
            entry = _Cluster(remote=self.remote_factory(cluster))
            self._clusters[cluster] = entry
        return entry.remote

    def _poll_cluster(self, cluster: str, recs: list[LaunchRecord]) -> list[LaunchStatus]:
        plans = {}
        arrays: list[ArrayQuery] = []
        for rec in recs:
            jobs = self.db.jobs(rec.id)
            seen = {(s.job_id, s.task): s for s in self.db.task_states(rec.id)}
            plans[rec.id] = (jobs, seen)
            polled = self.db.last_poll(rec.id)
            for job in jobs:
                done = all(key in seen and _settled(seen[key], polled.polled if polled else None)
                           for key in ((job.job_id, t) for t in range(job.task_count)))
                if not done:  # finished arrays are never asked about again
                    recheck = tuple(t for t in range(job.task_count)
                                    if (job.job_id, t) in seen and seen[(job.job_id, t)].state == "RUNNING")
                    arrays.append(ArrayQuery(job_id=job.job_id, job_name=job.job_name, task_count=job.task_count,
                                             output=job.output, submitted=job.submitted, recheck=recheck))
        result = PollResult(squeue=[], sacct=[], accounting=None, log_lines={})
        if arrays:
            remote = self._remote(cluster)
            self.calls += 1
            out = remote.run_script(poll_script(arrays), timeout=120)  # type: ignore[attr-defined]
            result = parse_poll(out.stdout, job_ids=[a.job_id for a in arrays])
        now = self.clock()
        statuses = []
        for rec in recs:
            jobs, seen = plans[rec.id]
            prev = self.db.last_poll(rec.id)
            accounting = result.accounting if result.accounting is not None else (prev.accounting if prev else None)
            states = merge_tasks(arrays={j.job_id: j.task_count for j in jobs}, squeue=result.squeue,
                                 sacct=result.sacct, last_seen=[_seen_to_state(s) for s in seen.values()],
                                 exit_codes=result.exit_codes, accounting=accounting,
                                 queried={a.job_id for a in arrays})
            logs = {key: s.log_line for key, s in seen.items() if s.log_line}
            logs.update({k: v for k, v in result.log_lines.items() if v})
            self.db.save_task_states(rec.id, [_to_seen(rec.id, st, logs.get(key, ""), now)
                                               for key, st in states.items()], polled=now, accounting=accounting)
            notes = []
            if accounting is False and any(s.source == "last-seen" for s in states.values()):
                notes.append("no accounting (sacct) on this cluster: a job that ended without writing its exit code "
                             "(killed) is UNKNOWN, last seen as it was")
            if result.sacct_error:
                notes.append(f"sacct failed: {result.sacct_error}")
            progress, perr = self._progress(rec)
            if perr:
                notes.append(perr)
            statuses.append(build_launch_status(rec, self.db.sweeps(rec.id), jobs, states=states, log_lines=logs,
                                                polled=now, accounting=accounting, wandb=progress,
                                                notes=tuple(notes)))
        return statuses

    def _progress(self, rec: LaunchRecord) -> tuple[dict[str, dict[str, int]] | None, str | None]:
        if self.backend_for is None:
            return None, None
        return sweep_progress(self.backend_for(rec), self.db.sweeps(rec.id))


def sweep_progress(backend: SweepBackend, sweeps: list[SweepRecord]) -> tuple[dict[str, dict[str, int]] | None,
                                                                              str | None]:
    """The backend's run counts per sweep id (None when it keeps none: Slurm's states are the progress), and
    why they are missing when the backend could not be asked."""
    try:
        progress = backend.progress([s for s in sweeps if s.sweep_id])
    except Exception as exc:  # noqa: BLE001 - the backend being unreachable must not hide the Slurm table
        return None, f"{backend.name} progress unavailable: {exc}"
    return ({sid: dict(p.runs_by_state) for sid, p in progress.items()} or None), None


def _settled(seen: TaskSeen, polled: float | None) -> bool:
    """A final state no poll needs to confirm: a cancel recorded by ``cancel`` is checked by one poll after
    it (the task may have finished just before scancel), then kept."""
    if not is_terminal(seen.state):
        return False
    return seen.source != CANCEL_SOURCE or (polled is not None and seen.seen <= polled)


def _to_seen(launch_id: str, st: TaskState, log_line: str, now: float) -> TaskSeen:
    return TaskSeen(launch_id=launch_id, job_id=st.job_id, task=st.task, state=st.state, reason=st.reason,
                    node=st.node, elapsed=st.elapsed, time_limit=st.time_limit, exit_code=st.exit_code,
                    start=st.start, end=st.end, source=st.source, log_line=log_line, seen=now)


def project_dir_of(launch: LaunchRecord) -> Path:
    """Where the launch's profile was found (its code directory), else here."""
    code = launch.options.get("code_dir") if launch.options else None
    return Path(code) if code and Path(code).is_dir() else Path.cwd()
