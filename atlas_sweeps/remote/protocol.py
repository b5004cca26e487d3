"""How our remote scripts talk back (pure): each fact is one ``ATLAS <key> <base64 value>`` line on stdout,
so whatever the user's login files print cannot be mistaken for it and no value needs escaping."""

from __future__ import annotations

import base64
import binascii

PREFIX = "ATLAS"

# A bash function every remote script starts with: emit KEY VALUE.
EMIT_FUNCTION = "emit() { printf 'ATLAS %s %s\\n' \"$1\" \"$(printf '%s' \"$2\" | base64 | tr -d '\\n')\"; }"


def parse_line(line: str) -> tuple[str, str] | None:
    """``(key, value)`` of one ``ATLAS`` line, or None for anything else."""
    parts = line.strip().split(" ")
    if len(parts) not in (2, 3) or parts[0] != PREFIX:
        return None
    try:
        value = base64.b64decode(parts[2]).decode(errors="replace") if len(parts) == 3 else ""
    except (binascii.Error, ValueError):
        return None
    return parts[1], value


def parse_facts(stdout: str) -> list[tuple[str, str]]:
    """Every ``ATLAS`` line of ``stdout``, in order."""
    return [fact for fact in map(parse_line, stdout.splitlines()) if fact is not None]
