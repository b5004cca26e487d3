"""Exit codes as a shell reports them, read off Slurm's two forms (``exit:signal`` and squeue 22.05's raw
wait status), and kept consistent with the final state they are shown with."""

from __future__ import annotations

from functools import lru_cache

from atlas_sweeps.slurm.states import is_terminal


@lru_cache(maxsize=1024)
def parse_exit_code(text: str, *, wait_status: bool = False) -> int | None:
    """A job's exit code as a shell would report it: ``exit:signal`` as sacct, scontrol and squeue since 23.02
    print it (``3:0`` → 3, ``0:9`` → 137), or, when ``wait_status``, the raw wait status squeue 22.05 printed
    (``768`` → 3, ``9`` → 137). None for an empty field (24.11 prints none when the code is unset)."""
    text = text.strip()
    try:
        if ":" in text:
            code, sig = (int(x) for x in text.split(":", 1))
            return code if code else (128 + sig if sig else 0)
        value = int(text)
    except ValueError:
        return None
    if not wait_status:
        return value
    sig = value & 0x7F
    return 128 + sig if sig else (value >> 8) & 0xFF


def consistent_exit_code(state: str, code: int | None) -> int | None:
    """The exit code shown with a final ``state``, so that the two never contradict. slurmctld records
    COMPLETED only for a batch script that exited 0 without a signal (``_job_complete`` in job_mgr.c), so a
    COMPLETED record with another code carries a code that is not its task's: 0. Any other final state with 0
    (FAILED, a TIMEOUT whose script's EXIT trap saw 0 as Slurm killed it, a CANCELLED pending task): unknown."""
    if state == "COMPLETED":
        return 0
    if code == 0:
        return None
    return code


def final_code(state: str, text: str, *, wait_status: bool = False) -> int | None:
    """The exit code of a record in ``state`` (None while the task has not ended)."""
    return consistent_exit_code(state, parse_exit_code(text, wait_status=wait_status)) if is_terminal(state) else None
