"""Which tasks a poll diagnoses and what it learnt (pure): a task's cause is worked out once, from its state,
exit code and the tail of its ``.err`` log, then stored with its state and never read again while that
state holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from atlas_sweeps.slurm.causes import Diagnosis, diagnose
from atlas_sweeps.slurm.states import DONE, FAILED, category, is_terminal
from atlas_sweeps.slurm.task import TaskState
from atlas_sweeps.state.store import JobRecord, TaskSeen

Key = tuple[str, int]


@dataclass(frozen=True)
class Diagnoses:
    """What ``status`` shows (``shown``) and, of those, what is final and stored (``final``)."""

    shown: dict[Key, Diagnosis]
    final: frozenset[Key]


def stored_diagnosis(seen: TaskSeen | None) -> Diagnosis | None:
    """The cause the database holds for a task, if any."""
    return Diagnosis(cause=seen.cause, error=seen.error) if seen is not None and seen.cause else None


def needs_diagnosis(seen: TaskSeen | None) -> bool:
    """A task whose cause a poll still has to find: not known to have completed, no cause stored."""
    return seen is None or (category(seen.state) != DONE and not seen.cause)


def to_diagnose(job: JobRecord, seen: Mapping[Key, TaskSeen]) -> tuple[int, ...]:
    """The tasks of ``job`` whose ``.err`` tail the poll reads if they ended badly."""
    return tuple(t for t in job.tasks if needs_diagnosis(seen.get((job.job_id, t))))


def undiagnosed_failure(seen: TaskSeen) -> bool:
    """A failed task recorded without its cause (by a version before causes): its array is asked about again."""
    return category(seen.state) == FAILED and not seen.cause


def diagnose_tasks(states: Mapping[Key, TaskState], *, seen: Mapping[Key, TaskSeen],
                   err_tails: Mapping[Key, str], err_cut: bool) -> Diagnoses:
    """Each task's cause: the stored one while its state holds (a state a later poll corrects, such as a
    recorded cancel of a task that had just completed, is diagnosed again), else worked out from this poll.
    A cause is final when the task's state is and its log was read, or had nothing to read, this poll; an
    unknown end with a cause in its log is kept too."""
    shown: dict[Key, Diagnosis] = {}
    final: set[Key] = set()
    for key, state in states.items():
        prev = seen.get(key)
        known = stored_diagnosis(prev)
        if known is not None and prev is not None and prev.state == state.state:
            shown[key] = known
            final.add(key)
            continue
        found = diagnose(state.state, exit_code=state.exit_code, err_tail=err_tails.get(key, ""))
        if found is None:
            continue
        shown[key] = found
        read = key in err_tails or not err_cut
        if (is_terminal(state.state) and read) or (
                not is_terminal(state.state) and key in err_tails):
            final.add(key)
    return Diagnoses(shown=shown, final=frozenset(final))
