"""The ``SweepBackend`` seam and its value objects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from atlas_sweeps.launch.layout import LaunchLayout
from atlas_sweeps.launch.plan import PlannedSweep

if TYPE_CHECKING:
    from atlas_sweeps.state.store import SweepRecord


@dataclass(frozen=True)
class CreatedSweep:
    """A sweep that exists: its id at the backend and, for W&B, its web page."""

    sweep_id: str
    url: str | None = None


@dataclass(frozen=True)
class JobCommand:
    """What one sweep's job array runs: ``tasks`` array tasks, at most ``throttle`` at once, each running
    ``preamble`` then ``command`` (already shell-quoted) in the snapshot; ``files`` (remote path → bytes)
    are written before submission. ``finish``, when set, defines the bash function ``atlas_finish CODE``,
    called as the script exits with its exit code and returning the job's own. ``run_pid``, when set, is a
    bash expression printing the pid of the run in progress when ``command`` is an agent that starts runs
    (empty when none runs): the checkpoint signal goes to it (``launch.preemption``)."""

    tasks: int
    throttle: int
    preamble: tuple[str, ...]
    command: str
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    finish: str = ""
    run_pid: str = ""


@dataclass(frozen=True)
class SweepProgress:
    """A sweep's runs per state as the backend sees them (W&B: finished, running, failed, crashed, ...), and
    why an agent starting now would get no run from it ("sweep finished", "sweep paused", "no runs left ...";
    "" when it may): ``status`` cancels such a sweep's pending agent tasks."""

    runs_by_state: dict[str, int]
    nothing_left: str = ""


@dataclass(frozen=True)
class BackendBest:
    """A sweep's best run by its metric as the backend knows it (``value`` None: none, ``why`` says why)."""

    run_id: str = ""
    value: float | None = None
    params: dict[str, Any] | None = None
    logged: int = 0  # finished runs that logged the metric
    why: str = ""


class SweepBackend(Protocol):
    """Creates sweeps, says what their jobs run, reports and stops them, and says how their runs are logged."""

    name: str
    expands_runs: bool  # runs are expanded here, one array task each (else the backend hands them to agents)
    offline_runs: bool  # runs log to W&B offline on the cluster; ``atlas-sweeps sync`` uploads them

    def preflight(self, *, entity: str | None, project: str) -> None:
        """Check credentials and reachability before anything is created; raise a clear error."""

    def remote_checks(self) -> tuple[str, ...]:
        """Bash lines added to the launch's one preflight call; they ``emit problem "..."`` on failure."""

    def required_command(self, *, interpreter: str) -> str:
        """The command the cluster must have after the profile's set-up lines for the jobs to start."""

    def create(self, sweep: PlannedSweep, *, launch_id: str, entity: str | None, project: str,
               note: str = "") -> CreatedSweep:
        """Create the sweep (or, on resume, nothing: callers pass recorded ids back instead); ``note`` is the
        launch's hypothesis, for a backend that can show it with the sweep."""

    def job(self, sweep: PlannedSweep, created: CreatedSweep, *, layout: LaunchLayout,
            wrap: str | None) -> JobCommand:
        """The job array that works through ``sweep``."""

    def progress(self, sweeps: Sequence[SweepRecord]) -> dict[str, SweepProgress]:
        """Runs per state of each sweep (by ``sweep_id``) as the backend counts them; sweeps it cannot tell
        about are left out (the local backend keeps no count of its own: Slurm's states are the progress)."""

    def stop(self, sweep_id: str) -> str | None:
        """Stop the sweep at the backend (``cancel``); what was done, for the user, or None for nothing."""

    def done_runs(self, sweeps: Sequence[PlannedSweep], *, entity: str | None, project: str) -> dict[str, dict[str, Any]]:
        """``--skip-done`` for a backend whose agents pick the runs (``expands_runs`` False): what its earlier
        finished runs with each sweep's tags cover, by sweep name, ``{"points": n, "run_ids": [...]}``."""

    def best_runs(self, sweeps: Sequence[SweepRecord], *, metrics: dict[str, tuple[str, str]]) -> dict[str, BackendBest]:
        """The best run of each sweep in ``metrics`` (name -> (metric, goal)) by sweep name, as the backend
        knows it; sweeps it cannot tell about are left out (the local backend's are read on the cluster)."""
