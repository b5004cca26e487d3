"""Slurm submission as data (pure): the ``sbatch`` command line of each job array, array splitting
against ``MaxArraySize``, and parsers for what ``sbatch`` and ``scontrol`` print."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from atlas_sweeps.errors import RemoteError

DEFAULT_MAX_ARRAY_SIZE = 1001  # Slurm's default: task ids 0 .. MaxArraySize - 1
_JOB_ID = re.compile(r"^\d+$")


@dataclass(frozen=True)
class ArrayChunk:
    """One job array of a sweep: tasks ``offset .. offset+count-1`` of its runs, at most ``throttle`` at once."""

    index: int
    offset: int
    count: int
    throttle: int

    @property
    def array_spec(self) -> str:
        """The ``--array`` value; task ids restart at 0 in every chunk (MaxArraySize bounds the ids)."""
        spec = f"0-{self.count - 1}"
        return f"{spec}%{self.throttle}" if self.throttle < self.count else spec


@dataclass(frozen=True)
class SparseChunk(ArrayChunk):
    """A chunk's array of only some task ids (a retry round: the runs that did not complete)."""

    ids: tuple[int, ...] = ()

    @property
    def array_spec(self) -> str:
        spec = ",".join(str(i) for i in self.ids)
        return f"{spec}%{self.throttle}" if self.throttle < len(self.ids) else spec


@dataclass(frozen=True)
class Submission:
    """One ``sbatch`` call: the job array of one chunk of one sweep."""

    key: str
    job_name: str
    script_path: str
    chunk: ArrayChunk
    output: str
    error: str
    chdir: str

    def argv(self) -> list[str]:
        """The ``sbatch`` command line; these options win over the template's own ``#SBATCH`` lines."""
        args = ["sbatch", "--parsable", f"--job-name={self.job_name}", f"--array={self.chunk.array_spec}",
                f"--output={self.output}", f"--error={self.error}", f"--chdir={self.chdir}"]
        if self.chunk.offset:
            args.append(f"--export=ALL,ATLAS_TASK_OFFSET={self.chunk.offset}")
        return [*args, self.script_path]

    def command(self) -> str:
        """``argv`` as one quoted shell line."""
        return shlex.join(self.argv())


def max_array_tasks(max_array_size: int) -> int:
    """Tasks one array holds when its ids start at 0 and stay below ``max_array_size`` (at least 1)."""
    return max(1, max_array_size - 1)


def split_array(runs: int, *, max_array_size: int, throttle: int) -> list[ArrayChunk]:
    """Cut ``runs`` tasks into arrays whose ids stay below ``max_array_size``; the throttle is per sweep,
    so it is shared out among the chunks (each at least 1)."""
    if runs <= 0:
        return []
    size = max_array_tasks(max_array_size)
    chunks = []
    offset = 0
    while offset < runs:
        count = min(size, runs - offset)
        chunks.append(ArrayChunk(index=len(chunks), offset=offset, count=count, throttle=0))
        offset += count
    per_chunk = max(1, throttle // len(chunks))
    return [ArrayChunk(index=c.index, offset=c.offset, count=c.count, throttle=min(per_chunk, c.count))
            for c in chunks]


def sbatch_test_only_command(script_expr: str, *, job_name: str) -> str:
    """``sbatch --test-only``: Slurm checks the script's options (account, partition, QOS), submits nothing.
    ``script_expr`` is a bash expression (``"$tmp/test.sbatch"``)."""
    return f"sbatch --test-only --job-name={shlex.quote(job_name)} --output=/dev/null {script_expr}"


def parse_sbatch_parsable(stdout: str) -> str:
    """The job id from ``sbatch --parsable`` (``jobid`` or ``jobid;cluster`` on the last line)."""
    lines = [line.strip() for line in stdout.strip().splitlines() if line.strip()]
    if not lines:
        raise RemoteError("sbatch printed no job id")
    job_id = lines[-1].split(";", 1)[0]
    if not _JOB_ID.match(job_id):
        raise RemoteError(f"sbatch printed {lines[-1]!r}, not a job id")
    return job_id


def parse_max_array_size(scontrol_config: str) -> int:
    """``MaxArraySize`` from ``scontrol show config`` (Slurm's default when absent)."""
    match = re.search(r"^\s*MaxArraySize\s*=\s*(\d+)", scontrol_config, re.MULTILINE)
    return int(match.group(1)) if match else DEFAULT_MAX_ARRAY_SIZE
