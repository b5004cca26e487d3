"""Typed values of a cluster profile: one check per key, each returning the value to use or raising
``Invalid`` with what was expected. Host and user names follow OpenSSH's own rules (ssh.c ``valid_hostname``,
``valid_ruser``), so no shell metacharacter reaches ``ssh``, ``~/.ssh/config`` ``Match exec`` lines or
``#SBATCH`` lines."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], Any]

# OpenSSH refuses these in host names (ssh.c valid_hostname, 9.6 and later); we also refuse ssh_config's
# pattern characters, which would make a host name match other Host blocks.
_HOST_FORBIDDEN = set("'`\"$\\;&<>|(){},*?!")
# ssh.c valid_ruser's list, plus `$`, whitespace and patterns: a login name never needs them.
_USER_FORBIDDEN = set("'`\";&<>|(){}$\\*?!")
_SLURM_TIME = re.compile(r"^(\d+-\d+(:\d+){0,2}|\d+(:\d+){0,2}|UNLIMITED|INFINITE)$", re.IGNORECASE)
_SLURM_MEM = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)


class Invalid(ValueError):
    """A value that does not fit its key; the message says what was expected."""


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a table"}
    return next((name for kind, name in names.items() if isinstance(value, kind)), type(value).__name__)


def control_character(text: str) -> str | None:
    """The first control or line-separator character in ``text`` (as ``repr``), or None."""
    for char in text:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            return repr(char)
    return None


def text(*, word: bool = False, example: str = "...") -> Check:
    """A non-empty string without control characters (newlines would start their own script line);
    ``word``: no whitespace either (one ``#SBATCH`` value, one argv word)."""

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid(f"expected a string, e.g. \"{example}\", not {_kind(value)}")
        if not value.strip():
            raise Invalid("expected a non-empty string")
        bad = control_character(value)
        if bad:
            raise Invalid(f"contains the control character {bad}: one line, no newlines or control characters")
        if word and any(c.isspace() for c in value):
            raise Invalid(f"expected one word without spaces, e.g. \"{example}\"")
        return value

    return check


def strings(item: Check, *, example: str) -> Check:
    """A list of strings, each checked by ``item``; a bare string is refused (it is not one line per
    character)."""

    def check(value: Any) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise Invalid(f"expected a list of strings, e.g. [\"{example}\"], not {_kind(value)}")
        out = []
        for index, element in enumerate(value):
            try:
                out.append(item(element))
            except Invalid as exc:
                raise Invalid(f"item {index + 1}: {exc}") from None
        return tuple(out)

    return check


def integer(*, low: int, high: int | None = None) -> Check:
    """An integer (not a boolean, not a string) in ``[low, high]``."""

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"expected an integer, not {_kind(value)}")
        if value < low or (high is not None and value > high):
            raise Invalid(f"expected an integer from {low}" + (f" to {high}" if high is not None else " up"))
        return value

    return check


def seconds(value: Any) -> float:
    """A finite, positive number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid(f"expected a number of seconds, e.g. 15, not {_kind(value)}")
    if not math.isfinite(value) or value <= 0:
        raise Invalid("expected a finite, positive number of seconds, e.g. 15")
    return float(value)


def boolean(value: Any) -> bool:
    """``true`` or ``false``."""
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, not {_kind(value)}")
    return value


def choice(*options: str) -> Check:
    """One of ``options``."""

    def check(value: Any) -> str:
        if value not in options:
            raise Invalid(f"expected one of {', '.join(options)}")
        return str(value)

    return check


def host_name(value: Any) -> str:
    """A host name or ssh config alias as OpenSSH accepts it: no leading '-', no shell metacharacters,
    whitespace or control characters."""
    host = text(example="login.cluster.example.org")(value)
    bad = sorted({c for c in host if c in _HOST_FORBIDDEN or c.isspace()})
    if host.startswith("-") or bad:
        shown = " ".join(repr(c) for c in bad) if bad else "a leading '-'"
        raise Invalid(f"is not a valid host name (OpenSSH refuses {shown}): give a host name, an address "
                      "or an ~/.ssh/config alias")
    return host


def user_name(value: Any) -> str:
    """A login name as OpenSSH accepts it (``valid_ruser``), without whitespace or ``$`` either."""
    user = text(word=True, example="me")(value)
    bad = sorted({c for c in user if c in _USER_FORBIDDEN})
    if user.startswith("-") or bad:
        shown = " ".join(repr(c) for c in bad) if bad else "a leading '-'"
        raise Invalid(f"is not a valid user name (refused: {shown})")
    return user


def slurm_time(value: Any) -> str:
    """A Slurm time limit: minutes, [HH:]MM:SS, D-HH[:MM[:SS]], or UNLIMITED."""
    limit = text(word=True, example="04:00:00")(value)
    if not _SLURM_TIME.match(limit):
        raise Invalid("expected a Slurm time limit: MM, HH:MM:SS, D-HH:MM:SS or UNLIMITED, e.g. \"04:00:00\"")
    return limit


_SSH_DURATION = re.compile(r"^(?:(?:\d+[sSmMhHdDwW]?)+|yes|no)$")


def ssh_duration(value: Any) -> str:
    """An OpenSSH time (ControlPersist): seconds, or units like ``12h``, ``1h30m``; ``yes`` (forever) or ``no``."""
    duration = text(word=True, example="12h")(value)
    if not _SSH_DURATION.match(duration):
        raise Invalid("expected an OpenSSH time such as \"12h\", \"1h30m\" or \"600\" (seconds)")
    return duration


def slurm_mem(value: Any) -> str:
    """A Slurm memory size: a number with an optional K, M, G or T suffix."""
    size = text(word=True, example="16G")(value)
    if not _SLURM_MEM.match(size):
        raise Invalid("expected a memory size: a number with an optional K, M, G or T suffix, e.g. \"16G\"")
    return size


def sbatch_option(value: Any) -> str:
    """One extra ``#SBATCH`` option: starts with '-', one line."""
    option = text(example="--exclusive")(value)
    if not option.startswith("-"):
        raise Invalid(f"expected an sbatch option starting with '-', e.g. \"--exclusive\", not {option!r}")
    return option
