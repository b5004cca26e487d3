"""The I/O of ``report``: one remote call per cluster, the report script (``report_probe``) alone or, with
``--refresh``, in the same call as the status poll; what each cluster said, or why it was not reached."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from atlas_sweeps.remote.base import Remote
from atlas_sweeps.state.store import LaunchRecord, StateDB
from atlas_sweeps.status.model import LaunchStatus
from atlas_sweeps.status.poller import Poller
from atlas_sweeps.status.report_probe import ReportFacts, is_empty, parse_report, report_query, report_script
from atlas_sweeps.status.stored import stored_status


@dataclass(frozen=True)
class ClusterAnswer:
    """What one cluster's report call said (``facts`` None: not reached, ``error`` says why)."""

    facts: ReportFacts | None = None
    error: str = ""

    @property
    def reached(self) -> bool:
        return self.facts is not None


@dataclass
class ReportCalls:
    """Runs the report's call per cluster; ``environment(cluster)`` gives the profile's set-up lines and
    interpreter (the offline summaries are read by it), ``offline(launch)`` whether its runs log offline."""

    db: StateDB
    environment: Callable[[str], tuple[Sequence[str], str]]
    offline: Callable[[LaunchRecord], bool]
    answers: dict[str, ClusterAnswer] = field(default_factory=dict)
    statuses: dict[str, LaunchStatus] = field(default_factory=dict)  # what a poll in the same call saw
    calls: int = 0
    _job_ids: dict[str, tuple[str, ...]] = field(default_factory=dict)  # what each cluster's sacct was asked

    def script(self, cluster: str, recs: list[LaunchRecord], statuses: Mapping[str, LaunchStatus] | None = None) -> str:
        """The report script for ``recs`` of ``cluster`` ("" when there is nothing to ask)."""
        current = [(statuses or {}).get(r.id) or stored_status(self.db, r) for r in recs]
        setup, interpreter = self.environment(cluster)
        query = report_query(current, sweeps={r.id: self.db.sweeps(r.id) for r in recs},
                             jobs={r.id: self.db.jobs(r.id) for r in recs},
                             offline={r.id: self.offline(r) for r in recs}, setup=setup, interpreter=interpreter)
        self._job_ids[cluster] = query.job_ids
        return "" if is_empty(query) else report_script(query)

    def run(self, launches: list[LaunchRecord], remote_factory: Callable[[str], Remote]) -> None:
        """One call per cluster with the report script alone."""
        for cluster, recs in _by_cluster(launches).items():
            try:
                script = self.script(cluster, recs)
                if not script:
                    continue
                remote = remote_factory(cluster)
                try:
                    self.calls += 1
                    out = remote.run_script(script, timeout=120)
                finally:
                    remote.close()
            except Exception as exc:  # noqa: BLE001 - the report still prints what the database knows
                self.answers[cluster] = ClusterAnswer(error=str(exc))
                continue
            self.take(cluster, out.stdout)

    def with_poll(self, poller: Poller, launches: list[LaunchRecord]) -> dict[str, LaunchStatus]:
        """The status poll of ``launches`` with the report script in the same call, by launch id."""
        poller.extra = lambda cluster, recs: self.script(cluster, recs)
        snapshot = poller.poll(launches)
        self.calls += snapshot.remote_calls
        errors = dict(part.split(": ", 1) for part in (snapshot.error or "").split("; ") if ": " in part)
        for cluster in _by_cluster(launches):
            if cluster in poller.extra_out:
                self.take(cluster, poller.extra_out[cluster])
            else:
                self.answers[cluster] = ClusterAnswer(error=errors.get(cluster, ""))
        return {s.launch.id: s for s in snapshot.launches}

    def take(self, cluster: str, stdout: str) -> None:
        self.answers[cluster] = ClusterAnswer(facts=parse_report(stdout, job_ids=self._job_ids.get(cluster, ())))

    def answer(self, cluster: str) -> ClusterAnswer:
        """What ``cluster`` said; a cluster with nothing to ask (no array submitted) used nothing."""
        return self.answers.get(cluster, ClusterAnswer(facts=ReportFacts(accounting=True)))


def _by_cluster(launches: list[LaunchRecord]) -> dict[str, list[LaunchRecord]]:
    out: dict[str, list[LaunchRecord]] = {}
    for rec in launches:
        out.setdefault(rec.cluster, []).append(rec)
    return out
