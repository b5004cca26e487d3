"""The I/O of ``status``: the ``Poller`` runs the one poll script per cluster per refresh, merges what it
said with the last states seen and records them in the state database. A failed poll keeps the last good
data, marked stale, and is retried with backoff, unless retrying cannot help (a changed host key, a refused
login)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from atlas_sweeps.backends.base import SweepBackend, SweepProgress
from atlas_sweeps.errors import is_retryable
from atlas_sweeps.remote.base import Remote
from atlas_sweeps.slurm.merge import merge_tasks
from atlas_sweeps.slurm.states import is_terminal
from atlas_sweeps.slurm.task import CANCEL_SOURCE, LAST_SEEN_SOURCE
from atlas_sweeps.state.store import JobRecord, LaunchRecord, StateDB, SweepRecord, TaskSeen
from atlas_sweeps.status.agent_runs import parse_agent_run
from atlas_sweeps.status.backend_progress import ask_progress, run_counts
from atlas_sweeps.status.diagnosis import Diagnoses, diagnose_tasks, to_diagnose, undiagnosed_failure
from atlas_sweeps.status.model import LaunchStatus, StatusSnapshot, build_launch_status
from atlas_sweeps.status.packed import packed_runs
from atlas_sweeps.status.poll import LOGGED_STATE, ArrayQuery, PollResult, parse_poll, poll_script
from atlas_sweeps.status.reap import ReapTarget, reap_notes, reap_squeue, reap_targets, reaped_diagnosis
from atlas_sweeps.status.stored import stored_status

_NO_ACCOUNTING_NOTE = ("no accounting (sacct) on this cluster: a job that ended without writing its exit code "
                       "(killed) is UNKNOWN, last seen as it was")


@dataclass
class _Cluster:
    remote: Remote | None = None
    error: str | None = None


@dataclass
class Poller:
    """Polls the chosen launches, one remote script per cluster per refresh, reusing one session per
    cluster (reopened after a failure), and records what it saw in the state database."""

    db: StateDB
    remote_factory: Callable[[str], Remote]  # cluster name -> Remote
    backend_for: Callable[[LaunchRecord], SweepBackend] | None = None  # None: no backend progress fetched
    reap_for: Callable[[LaunchRecord], bool] = lambda _rec: False  # cancel idle sweeps' pending tasks (status)
    clock: Callable[[], float] = time.time
    # Another script to run in the same call, before the poll's (cluster, its launches -> bash, "" for none),
    # e.g. report's; what the call printed is kept in ``extra_out`` by cluster for its parser.
    extra: Callable[[str, list[LaunchRecord]], str] | None = None
    extra_out: dict[str, str] = field(default_factory=dict)
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
        connections = tuple((name, entry.remote.describe()) for name, entry in self._clusters.items()
                            if entry.remote is not None)
        return StatusSnapshot(launches=tuple(statuses[r.id] for r in launches), refreshed=self.clock(),
                              stale=bool(errors), error="; ".join(errors) or None, remote_calls=self.calls,
                              fatal=fatal, connections=connections)

    def close(self) -> None:
        for name in list(self._clusters):
            self._drop(name)

    def _drop(self, cluster: str) -> None:
        entry = self._clusters.pop(cluster, None)
        if entry is not None and entry.remote is not None:
            try:
                entry.remote.close()
            except Exception:  # noqa: BLE001, S110 - the session is already broken
                pass

    def _remote(self, cluster: str) -> Remote:
        entry = self._clusters.get(cluster)
        if entry is None or entry.remote is None:
            entry = _Cluster(remote=self.remote_factory(cluster))
            self._clusters[cluster] = entry
        assert entry.remote is not None
        return entry.remote

    def _poll_cluster(self, cluster: str, recs: list[LaunchRecord]) -> list[LaunchStatus]:
        plans: dict[str, tuple[list[JobRecord], dict[tuple[str, int], TaskSeen], list[SweepRecord]]] = {}
        arrays: list[ArrayQuery] = []
        progress: dict[str, tuple[dict[str, SweepProgress] | None, str | None]] = {}
        targets: list[ReapTarget] = []
        for rec in recs:
            jobs = self.db.jobs(rec.id)
            seen = {(s.job_id, s.task): s for s in self.db.task_states(rec.id)}
            sweeps = self.db.sweeps(rec.id)
            plans[rec.id] = (jobs, seen, sweeps)
            arrays += _queries(jobs, seen, polled=_polled(self.db, rec.id), packed=packed_runs(rec.options) > 1)
            # Asked before the poll: a sweep with nothing left to run has its pending tasks cancelled by it.
            progress[rec.id] = self._progress(rec, sweeps)
            if self.reap_for(rec) and progress[rec.id][0]:
                targets += reap_targets(jobs, sweeps, progress[rec.id][0] or {}, seen)
        result = PollResult(squeue=[], sacct=[], accounting=None, log_lines={})
        extra = self.extra(cluster, recs) if self.extra else ""
        if arrays or extra:
            remote = self._remote(cluster)
            self.calls += 1
            out = remote.run_script(extra + (poll_script(arrays, reap=[t.job_id for t in targets]) if arrays else ""),
                                    timeout=120)
            self.extra_out[cluster] = out.stdout
            if arrays:
                result = parse_poll(out.stdout, job_ids=[a.job_id for a in arrays])
        squeue, reaped = reap_squeue(result.squeue, result.reaped.arrays)
        why_reaped = {t.job_id: t for t in targets}
        now = self.clock()
        statuses = []
        for rec in recs:
            jobs, seen, sweeps = plans[rec.id]
            prev = self.db.last_poll(rec.id)
            accounting = result.accounting if result.accounting is not None else (prev.accounting if prev else None)
            states = merge_tasks(arrays={j.job_id: j.tasks for j in jobs}, squeue=squeue,
                                 sacct=result.sacct, last_seen=seen.values(),
                                 exit_codes=result.exit_codes, accounting=accounting,
                                 queried={a.job_id for a in arrays})
            logs = {key: s.log_line for key, s in seen.items() if s.log_line}
            logs.update({k: v for k, v in result.log_lines.items() if v})
            agents = {key: run for key, s in seen.items() if s.agent_run and (run := parse_agent_run(s.agent_run))}
            agents.update(result.agent_runs)
            why = diagnose_tasks(states, seen=seen, err_tails=result.err_tails, err_cut=result.err_cut)
            mine = {key for key in reaped if key in states}
            if mine:
                shown = dict(why.shown)
                shown.update({key: reaped_diagnosis(why_reaped[key[0]].why) for key in mine})
                why = Diagnoses(shown=shown, final=why.final | mine)
            rows = []
            for key, st in states.items():
                final = why.shown[key] if key in why.final else None
                rows.append(TaskSeen.of(st, launch_id=rec.id, log_line=logs.get(key, ""), seen=now,
                                        cause=final.cause if final else "", error=final.error if final else "",
                                        agent_run=agents[key].line if key in agents else ""))
            self.db.save_task_states(rec.id, rows, polled=now, accounting=accounting)
            notes = []
            if accounting is False and any(s.source == LAST_SEEN_SOURCE for s in states.values()):
                notes.append(_NO_ACCOUNTING_NOTE)
            if result.sacct_error:
                notes.append(f"sacct failed: {result.sacct_error}")
            backend_runs, werr = progress[rec.id]
            wandb = run_counts(backend_runs)
            if werr:
                notes.append(werr)
            own = {j.job_id for j in jobs}
            notes += reap_notes([t for t in targets if t.job_id in own], mine, error=result.reaped.error)
            runs = self._run_records(rec, jobs, result)
            statuses.append(build_launch_status(rec, sweeps, jobs, states=states, log_lines=logs,
                                                polled=now, accounting=accounting, wandb=wandb,
                                                notes=tuple(notes), diagnoses=why.shown,
                                                agent_runs=agents, run_records={k: v[0] for k, v in runs.items()},
                                                run_logs={k: v[1] for k, v in runs.items() if v[1]}))
        return statuses

    def _run_records(self, rec: LaunchRecord, jobs: list[JobRecord],
                     result: PollResult) -> dict[tuple[str, int, int], tuple[str, str]]:
        """A packed launch's runs: what this poll read of them, recorded, over what earlier polls did."""
        if packed_runs(rec.options) <= 1:
            return {}
        ids = {j.job_id for j in jobs}
        new = {k: (v, result.run_logs.get(k, "")) for k, v in result.run_exits.items() if k[0] in ids}
        if new:
            self.db.save_run_records(rec.id, new)
        return self.db.run_records(rec.id)

    def _progress(self, rec: LaunchRecord,
                  sweeps: list[SweepRecord]) -> tuple[dict[str, SweepProgress] | None, str | None]:
        if self.backend_for is None:
            return None, None
        return ask_progress(self.backend_for(rec), sweeps)


def _polled(db: StateDB, launch_id: str) -> float | None:
    poll = db.last_poll(launch_id)
    return poll.polled if poll else None


def _queries(jobs: list[JobRecord], seen: dict[tuple[str, int], TaskSeen], *, polled: float | None,
             packed: bool = False) -> list[ArrayQuery]:
    """The arrays a poll asks about: finished arrays are never asked about again."""
    out = []
    for job in jobs:
        keys = [(job.job_id, t) for t in job.tasks]
        if all(key in seen and _settled(seen[key], polled) and not undiagnosed_failure(seen[key]) for key in keys):
            continue
        # Tasks that may have ended since the last poll get their log's last line read once more: those last
        # seen running first, then those never seen in a final state (they may have run and ended unseen).
        running = [key[1] for key in keys if key in seen and seen[key].state == LOGGED_STATE]
        unseen = [key[1] for key in keys if (key not in seen or not is_terminal(seen[key].state))
                  and not (key in seen and seen[key].state == LOGGED_STATE)]
        recheck = tuple(running + unseen)
        out.append(ArrayQuery(job_id=job.job_id, job_name=job.job_name, task_count=job.task_count,
                              output=job.output, submitted=job.submitted, recheck=recheck, error=job.error,
                              diagnose=to_diagnose(job, seen), packed=packed))
    return out


def _settled(seen: TaskSeen, polled: float | None) -> bool:
    """A final state no poll needs to confirm: a cancel recorded by ``cancel`` is checked by one poll after
    it (the task may have finished just before scancel), then kept."""
    if not is_terminal(seen.state):
        return False
    return seen.source != CANCEL_SOURCE or (polled is not None and seen.seen <= polled)
