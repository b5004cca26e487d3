"""Which code a launch ran: the git commit, branch and whether the work tree had uncommitted changes."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GitInfo:
    """All fields are None when ``local_dir`` is not in a git work tree (or git is missing)."""

    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None


def _git(local_dir: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(local_dir), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info(local_dir: Path) -> GitInfo:
    """Read commit, branch (None when detached) and dirtiness of the repository holding ``local_dir``."""
    commit = _git(local_dir, "rev-parse", "HEAD")
    if commit is None:
        return GitInfo()
    branch = _git(local_dir, "symbolic-ref", "--quiet", "--short", "HEAD")
    status = _git(local_dir, "status", "--porcelain", "--untracked-files=normal")
    return GitInfo(commit=commit, branch=branch or None, dirty=None if status is None else bool(status))


def git_ignored(local_dir: Path) -> list[str] | None:
    """What git ignores below ``local_dir`` (paths relative to it; directories end in ``/``), or None when
    ``local_dir`` is not in a git work tree. Git's own answer covers the root's .gitignore, nested ones,
    ``.git/info/exclude`` and the global excludes file, which a plain ``.gitignore`` filter would miss."""
    try:
        done = subprocess.run(["git", "-C", str(local_dir), "ls-files", "-z", "--others", "--ignored",
                               "--exclude-standard", "--directory"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return [path for path in done.stdout.decode(errors="surrogateescape").split("\0") if path]
