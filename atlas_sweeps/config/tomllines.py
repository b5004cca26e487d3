"""Line numbers for TOML keys, for ``file:line`` in error messages: ``tomllib`` gives none, so the text is
scanned for table headers and ``key =`` lines (dotted and quoted keys, inline tables, multi-line strings)."""

from __future__ import annotations

import re

_PART = r'(?:[A-Za-z0-9_-]+|"[^"\n]*"|\'[^\'\n]*\')'
_HEADER = re.compile(rf"^\s*\[\s*({_PART}(?:\s*\.\s*{_PART})*)\s*\]")
_ASSIGN = re.compile(rf"^\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")
_PARTS = re.compile(_PART)


def _parts(dotted: str) -> tuple[str, ...]:
    return tuple(p.strip("\"'") if p[0] in "\"'" else p for p in _PARTS.findall(dotted))


def key_line(text: str, path: tuple[str, ...]) -> int | None:
    """The 1-based line where ``path`` (e.g. ``("clusters", "a", "slurm", "time")``) is set; else the line
    of the inline table or header that holds it; None when not found."""
    table: tuple[str, ...] = ()
    near: int | None = None
    in_string = False
    for number, line in enumerate(text.split("\n"), 1):
        starts_inside = in_string
        if (line.count('"""') + line.count("'''")) % 2:
            in_string = not in_string
        if starts_inside:
            continue
        if line.lstrip().startswith("[["):
            table = ("[[]]",)  # an array of tables: profiles have none, so nothing below it is looked for
            continue
        header = _HEADER.match(line)
        if header:
            table = _parts(header.group(1))
            if table == path:
                return number
            if table == path[:len(table)]:
                near = number  # the table that should hold the key
            continue
        assign = _ASSIGN.match(line)
        if assign:
            full = table + _parts(assign.group(1))
            if full == path:
                return number
            if full == path[:len(full)]:
                near = number  # an inline table that holds the key
    return near
