"""Delimited scheduler output read by field name: one dict per line, keyed by the fields asked for."""

from __future__ import annotations

from collections.abc import Iterator

EMPTY = frozenset({"None", "N/A", "(null)", "None assigned", "Unknown"})


def records(text: str, fields: tuple[str, ...], *, sep: str = "|") -> Iterator[dict[str, str]]:
    """Each line of ``text`` with at least one value per field, as ``{field: stripped value}``; shorter
    lines (noise, error messages) are skipped."""
    count = len(fields)
    for line in text.splitlines():
        cols = line.split(sep)
        if len(cols) >= count:
            # Most lines hold no blank at all: only the others need each value stripped.
            yield dict(zip(fields, cols if " " not in line and "\t" not in line else map(str.strip, cols),
                           strict=False))


def clean(value: str) -> str:
    """Slurm's words for "no value" as an empty string."""
    return "" if value in EMPTY else value
