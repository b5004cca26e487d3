"""Slurm job ids as users and Slurm write them: ``123``, ``123_4``, ``123_[5-9%2]``, parsed into lazy task
spans that are bounded by the largest array any Slurm allows, never listed to be checked."""

from __future__ import annotations

import re
from dataclasses import dataclass

_TASK_ID = re.compile(r"^(\d+)(?:_(\d+|\[[^\]]*\]))?(?:\+\d+)?$")
# Slurm caps MaxArraySize at 4000001 (src/common/read_config.c), so no task index exceeds 4000000.
MAX_TASK_INDEX = 4_000_000


@dataclass(frozen=True)
class ArrayId:
    """A parsed Slurm job id: ``123`` (no task), ``123_4`` (one task) or ``123_[5-9%2]`` (several)."""

    job_id: str
    spans: tuple[range, ...] | None  # None: the whole job (or a plain job); ranges stay lazy

    @property
    def tasks(self) -> tuple[int, ...] | None:
        """Every task named, in order (at most MAX_TASK_INDEX + 1 of them: ``parse_task_spans`` checked)."""
        return None if self.spans is None else tuple(t for span in self.spans for t in span)

    @property
    def task(self) -> int | None:
        """The single task, when exactly one is named."""
        if self.spans is None or sum(len(span) for span in self.spans) != 1:
            return None
        return next(t for span in self.spans for t in span)

    @property
    def max_task(self) -> int | None:
        """The highest task index named (None for a whole job), found without listing the tasks."""
        return None if self.spans is None else max((span[-1] for span in self.spans if span), default=None)


def parse_task_spans(text: str) -> tuple[range, ...]:
    """Task ranges of ``5-9%2``, ``[1,3,5-7]`` or ``0-10:2`` (the ``%`` throttle is dropped), never expanded;
    ``ValueError`` for an index beyond any Slurm's largest array (``1_[0-9999999999]``) or a malformed part."""
    one = single_task(text)
    if one is not None:
        return (range(one, one + 1),)
    body = text.strip().strip("[]").split("%", 1)[0]
    spans: list[range] = []
    for part in filter(None, body.split(",")):
        step = 1
        if ":" in part:
            part, step_text = part.split(":", 1)
            step = max(1, _index(step_text, text))
        lo_text, _, hi_text = part.partition("-")
        lo = _index(lo_text, text)
        hi = _index(hi_text, text) if hi_text else lo
        spans.append(range(lo, hi + 1, step))
    if sum(len(span) for span in spans) > MAX_TASK_INDEX + 1:
        raise ValueError(f"{text!r} names more tasks than the largest Slurm array holds ({MAX_TASK_INDEX + 1})")
    return tuple(spans)


def single_task(text: str) -> int | None:
    """The index ``text`` is when it is one plain task index within bounds (``7``), else None: the fast
    path for the lines of a large array, each naming one task."""
    if text.isascii() and text.isdigit() and len(text) <= 9:
        index = int(text)
        return index if index <= MAX_TASK_INDEX else None
    return None


def _index(part: str, whole: str) -> int:
    part = part.strip()
    if not (part.isascii() and part.isdigit()):
        raise ValueError(f"not a task index: {part!r} in {whole!r}")
    if len(part) > 9 or int(part) > MAX_TASK_INDEX:
        raise ValueError(f"task index {part} in {whole!r} is beyond the largest Slurm allows ({MAX_TASK_INDEX})")
    return int(part)


def parse_task_ranges(text: str) -> tuple[int, ...]:
    """Task indices of ``5-9%2``, ``[1,3,5-7]`` or ``0-10:2``, listed (bounded by ``parse_task_spans``)."""
    return tuple(t for span in parse_task_spans(text) for t in span)


def parse_array_id(text: str) -> ArrayId:
    """Parse a job id as users and Slurm write it; ``ValueError`` for anything else."""
    match = _TASK_ID.match(text.strip())
    if not match:
        raise ValueError(f"not a Slurm job id: {text!r} (expected 123, 123_4 or 123_[5-9])")
    job, tasks = match.group(1), match.group(2)
    return ArrayId(job_id=job, spans=None if tasks is None else parse_task_spans(tasks))
