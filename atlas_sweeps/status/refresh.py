"""How often ``status`` asks the cluster: the interval between refreshes and the backoff after failures."""

from __future__ import annotations

MAX_BACKOFF = 60.0


def backoff_delay(failures: int, *, interval: float) -> float:
    """Seconds before the next try after ``failures`` failed polls in a row: doubling, capped."""
    if failures <= 0:
        return interval
    return min(interval * (2 ** failures), max(MAX_BACKOFF, interval))
