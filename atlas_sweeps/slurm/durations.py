"""Slurm's durations (``[D-]HH:MM:SS``, ``MM:SS``, ``UNLIMITED``) read and written as we show them."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=4096)  # a poll repeats a handful of limits and elapsed times thousands of times
def parse_duration(text: str) -> int | None:
    """Seconds of Slurm's ``[D-]HH:MM:SS``, ``MM:SS``, ``M:SS.mmm``; None for UNLIMITED, N/A, empty."""
    text = text.strip()
    if not text or not text[0].isdigit():
        return None
    days = 0
    if "-" in text:
        day_text, text = text.split("-", 1)
        days = int(day_text)
    parts = [float(p) for p in text.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0.0)
    if days and len(parts) == 3 and text.count(":") == 0:
        parts = [parts[2], 0.0, 0.0]  # "2-05" means 2 days 5 hours
    hours, minutes, seconds = parts[-3:]
    return int(days * 86400 + hours * 3600 + minutes * 60 + seconds)


@lru_cache(maxsize=4096)
def format_duration(seconds: int | None) -> str:
    """``1:02:03``, ``2-01:00:00``, ``0:05``; empty for None."""
    if seconds is None:
        return ""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"
