"""One array task's state as last known (Slurm's state and details) and where we learned it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from atlas_sweeps.slurm.states import category

_T = TypeVar("_T", bound="TaskState")

# ``source`` of a state: which record said it.
SQUEUE_SOURCE = "squeue"
SACCT_SOURCE = "sacct"
# The exit-code file the task's script wrote as it exited (``jobs.exit_record``).
EXIT_FILE_SOURCE = "exit-file"
# A state ``cancel`` recorded: scancel succeeded, and a task that never started leaves squeue at once and
# may have no sacct record of its own.
CANCEL_SOURCE = "scancel"
LAST_SEEN_SOURCE = "last-seen"
NO_SOURCE = "none"


@dataclass(frozen=True, init=False)
class TaskState:
    """One array task as last known: Slurm's state and details, and where we learned it."""

    job_id: str  # the array job id
    task: int
    state: str
    reason: str = ""
    node: str = ""
    elapsed: int | None = None
    time_limit: int | None = None
    exit_code: int | None = None
    start: str = ""
    end: str = ""
    source: str = SQUEUE_SOURCE  # squeue, sacct, exit-file, last-seen, scancel, none
    restarts: int = 0  # times the task was requeued (squeue's RestartCnt; kept from the last state seen)

    # A poll builds one per task, thousands of them: the generated __init__ of a frozen dataclass makes a
    # call per field (object.__setattr__), this one fills the fields at once, at half the cost.
    def __init__(self, job_id: str, task: int, state: str, reason: str = "", node: str = "",
                 elapsed: int | None = None, time_limit: int | None = None, exit_code: int | None = None,
                 start: str = "", end: str = "", source: str = SQUEUE_SOURCE, restarts: int = 0) -> None:
        self.__dict__.update(job_id=job_id, task=task, state=state, reason=reason, node=node, elapsed=elapsed,
                             time_limit=time_limit, exit_code=exit_code, start=start, end=end, source=source,
                             restarts=restarts)

    @classmethod
    def from_fields(cls: type[_T], values: dict[str, Any]) -> _T:
        """An instance (of a subclass too) from ``values``, which names every field: what a stored row holds.
        Thousands per refresh; this skips the per-field calls of a frozen dataclass's ``__init__``."""
        obj = object.__new__(cls)
        obj.__dict__.update(values)
        return obj

    @property
    def slurm_id(self) -> str:
        return f"{self.job_id}_{self.task}"

    @property
    def category(self) -> str:
        return category(self.state)
