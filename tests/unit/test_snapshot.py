"""Snapshot rsync arguments, exclude rules from git, and the rsync version checks (pure parts)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from atlas_sweeps.errors import RemoteError, UsageError
from atlas_sweeps.remote import rsync_version
from atlas_sweeps.remote.gitinfo import git_ignored
from atlas_sweeps.remote.rsync_version import check_remote_rsync, parse_rsync_version, require_local_rsync
from atlas_sweeps.remote.snapshot import exclude_patterns, snapshot_rsync_args

# First lines of `rsync --version` as each rsync prints them.
DEBIAN_12 = "rsync  version 3.2.7  protocol version 32\nCopyright (C) 1996-2022 by Andrew Tridgell"
DEBIAN_SECURITY = "rsync  version 3.5.0  protocol version 32\n"
RHEL_8 = "rsync  version 3.1.3  protocol version 31\n"
MACOS = "rsync  version 2.6.9  protocol version 29\nCopyright (C) 1996-2006 by Andrew Tridgell"
OPENRSYNC = "openrsync: protocol version 29\nrsync version 2.6.9 compatible\n"


def test_snapshot_args_link_to_the_previous_snapshot_by_absolute_path() -> None:
    args = snapshot_rsync_args(local_dir=Path("/home/u/proj"), dest="cluster:/home/a/atlas/snapshots/s2/",
                               link_dest="/home/a/atlas/snapshots/s1", excludes=["data/"])
    assert args[-2:] == ["/home/u/proj/", "cluster:/home/a/atlas/snapshots/s2/"]
    for expected in ("-a", "--delete", "--protect-args", "--filter=:- .gitignore", "--exclude=.git",
                     "--exclude=.venv/", "--exclude=__pycache__/", "--exclude=data/",
                     "--link-dest=/home/a/atlas/snapshots/s1"):
        assert expected in args
    assert not any(a.startswith("--link-dest") for a in snapshot_rsync_args(
        local_dir=Path("p"), dest="d/", link_dest=None, excludes=[]))


def test_snapshot_args_use_gits_answer_instead_of_gitignore_files_when_given() -> None:
    args = snapshot_rsync_args(local_dir=Path("/p"), dest="d/", link_dest=None, excludes=[],
                               exclude_from="/tmp/rules")
    assert "--from0" in args and "--exclude-from=/tmp/rules" in args
    assert "--filter=:- .gitignore" not in args


def test_exclude_patterns_are_anchored_and_escape_wildcards_only_when_needed() -> None:
    assert exclude_patterns([".env", "cache/", "a*b", "we[ird\\x", "plain\\name"]) == [
        "/.env", "/cache/", "/a\\*b", "/we\\[ird\\\\x", "/plain\\name"]


def test_git_ignored_sees_the_roots_rules_info_exclude_and_nested_files_from_a_subdirectory(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text(".env\n")
    (tmp_path / ".git" / "info" / "exclude").write_text("secret.txt\n")
    code = tmp_path / "code"
    (code / "cache").mkdir(parents=True)
    (code / ".gitignore").write_text("cache/\n")
    for name in (".env", "secret.txt", "train.py", "cache/blob"):
        (code / name).write_text("x")
    assert sorted(git_ignored(code) or []) == [".env", "cache/", "secret.txt"]
    assert git_ignored(tmp_path.parent / "not-a-repo-dir-that-does-not-exist") is None


@pytest.mark.parametrize(("output", "number", "local_ok", "remote_ok"), [
    (DEBIAN_12, (3, 2, 7), True, True),
    (DEBIAN_SECURITY, (3, 5, 0), True, True),
    (RHEL_8, (3, 1, 3), True, True),
    ("rsync  version 3.0.9  protocol version 30\n", (3, 0, 9), False, True),
    (MACOS, (2, 6, 9), False, False),
    (OPENRSYNC, None, False, False),
    ("something else entirely\n", None, False, False),
])
def test_rsync_versions_are_read_and_judged(output: str, number: tuple[int, int, int] | None,
                                            local_ok: bool, remote_ok: bool) -> None:
    version = parse_rsync_version(output)
    assert version.number == number
    assert version.at_least(rsync_version.LOCAL_MINIMUM) is local_ok
    assert version.at_least(rsync_version.REMOTE_MINIMUM) is remote_ok


def test_macos_rsync_is_refused_with_the_fix_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for output in (MACOS, OPENRSYNC):
        monkeypatch.setattr(rsync_version, "local_rsync_version", lambda output=output: parse_rsync_version(output))
        with pytest.raises(UsageError, match="too old to sync code.*nothing was created.*brew install rsync"):
            require_local_rsync()


def test_login_node_without_rsync_or_with_an_ancient_one_is_named() -> None:
    with pytest.raises(RemoteError, match="rsync is not installed on the login node me@login"):
        check_remote_rsync("", where="me@login")
    with pytest.raises(RemoteError, match="rsync 2.6.9 on the login node me@login is too old"):
        check_remote_rsync(MACOS, where="me@login")
    assert check_remote_rsync(DEBIAN_12, where="x").number == (3, 2, 7)
