"""What jobs really used, from ``sacct`` (pure): each array task's elapsed time and the GPUs Slurm allocated
it (``AllocTRES``' ``gres/gpu=N``), for the GPU-hours ``report`` counts against the estimate."""

from __future__ import annotations

import re
from dataclasses import dataclass

from atlas_sweeps.slurm._records import records
from atlas_sweeps.slurm.array_ids import single_task
from atlas_sweeps.slurm.durations import parse_duration

USAGE_FIELDS = ("JobID", "State", "Elapsed", "AllocTRES")
_GPU_TRES = re.compile(r"(?:^|,)gres/gpu(?::([^=,]+))?=(\d+)")


@dataclass(frozen=True)
class TaskUsage:
    """One array task's allocation as sacct records it (a requeued task: its latest run)."""

    elapsed: int  # seconds
    gpus: int  # GPUs allocated (0: none, or a job still pending)

    @property
    def gpu_seconds(self) -> int:
        return self.elapsed * self.gpus


def usage_command(*, ids_expr: str, start_expr: str) -> str:
    """``sacct`` of the allocations (``-X``) of the arrays ``ids_expr`` names since ``start_expr``; both are
    bash expressions computed on the cluster (``"$ids"``, ``"$start"``)."""
    return (f"sacct -X --parsable2 --noheader -j {ids_expr} --starttime {start_expr} "
            f"--format={','.join(USAGE_FIELDS)}")


def gpus_allocated(tres: str) -> int:
    """The GPUs of one ``AllocTRES`` (``billing=4,cpu=4,gres/gpu=2,gres/gpu:a100=2,mem=8G,node=1``): the
    untyped count where Slurm gives one (it sums the typed ones), else the typed ones summed; 0 for none."""
    untyped = 0
    typed = 0
    for kind, count in _GPU_TRES.findall(tres.replace(" ", "")):
        if kind:
            typed += int(count)
        else:
            untyped = max(untyped, int(count))
    return untyped or typed


def parse_usage(text: str, *, job_ids: set[str] | None = None) -> dict[tuple[str, int], TaskUsage]:
    """Each array task's usage in ``usage_command``'s output, by ``(array job id, task)``. Records of several
    tasks at once (a pending remainder ``12_[4-9]``) have used nothing yet and are left out."""
    out: dict[tuple[str, int], TaskUsage] = {}
    for rec in records(text, USAGE_FIELDS):
        job_id, _, task = rec["JobID"].partition("_")
        index = single_task(task)
        if index is None or not job_id.isdigit() or (job_ids is not None and job_id not in job_ids):
            continue
        out[(job_id, index)] = TaskUsage(elapsed=parse_duration(rec["Elapsed"]) or 0,
                                         gpus=gpus_allocated(rec["AllocTRES"]))
    return out
