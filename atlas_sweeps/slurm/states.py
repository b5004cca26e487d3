"""Slurm's job states in ONE table: each state's category (what a progress count adds it to), the short
forms Slurm also prints, and the bash and awk pieces of remote scripts, generated from that table."""

from __future__ import annotations

from functools import lru_cache

# Our categories: what a progress count adds a task to.
PENDING, RUNNING, DONE, FAILED, UNKNOWN = "pending", "running", "done", "failed", "unknown"

STATES: dict[str, str] = {
    "PENDING": PENDING, "REQUEUED": PENDING, "REQUEUE_HOLD": PENDING, "REQUEUE_FED": PENDING,
    "RESV_DEL_HOLD": PENDING,
    "RUNNING": RUNNING, "CONFIGURING": RUNNING, "COMPLETING": RUNNING, "SUSPENDED": RUNNING,
    "RESIZING": RUNNING, "SIGNALING": RUNNING, "STAGE_OUT": RUNNING, "STOPPED": RUNNING,
    "COMPLETED": DONE,
    "FAILED": FAILED, "CANCELLED": FAILED, "TIMEOUT": FAILED, "OUT_OF_MEMORY": FAILED, "NODE_FAIL": FAILED,
    "PREEMPTED": FAILED, "BOOT_FAIL": FAILED, "DEADLINE": FAILED, "SPECIAL_EXIT": FAILED, "REVOKED": FAILED,
}
ALIASES: dict[str, str] = {"OOM": "OUT_OF_MEMORY", "CA": "CANCELLED", "CD": "COMPLETED", "F": "FAILED",
                           "PD": "PENDING", "R": "RUNNING", "TO": "TIMEOUT", "CG": "COMPLETING",
                           "CF": "CONFIGURING", "NF": "NODE_FAIL"}


def states_of(*categories: str) -> tuple[str, ...]:
    """The Slurm states of ``categories``, in the table's order."""
    return tuple(s for s, c in STATES.items() if c in categories)


ACTIVE_STATES = states_of(PENDING, RUNNING)
TERMINAL_STATES = states_of(DONE, FAILED)
_TERMINAL = frozenset(TERMINAL_STATES)


@lru_cache(maxsize=1024)
def normalize_state(raw: str) -> str:
    """``CANCELLED by 1003`` → ``CANCELLED``; ``OOM`` → ``OUT_OF_MEMORY``; unknown text kept upper-case."""
    word = (raw.strip().split() or ["UNKNOWN"])[0].upper().rstrip("+")
    return ALIASES.get(word, word)


def category(state: str) -> str:
    """Which progress count a (normalized) state adds to."""
    return STATES.get(state, UNKNOWN)


def is_terminal(state: str) -> bool:
    return state in _TERMINAL


def case_pattern(*categories: str) -> str:
    """A bash ``case`` pattern (``PENDING|REQUEUED|...``) matching the states of ``categories``."""
    return "|".join(states_of(*categories))
