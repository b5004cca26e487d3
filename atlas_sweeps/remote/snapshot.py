"""Code snapshots on the login node: ``<remote_root>/snapshots/<name>/``, synced with real rsync through the
``Remote``, hard-linking unchanged files to the previous snapshot and made read-only afterwards, so the
jobs of an earlier launch keep running the code they were launched with."""

from __future__ import annotations

import re
import shlex
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from atlas_sweeps.errors import RemoteError
from atlas_sweeps.remote.base import Remote
from atlas_sweeps.remote.gitinfo import git_ignored
from atlas_sweeps.remote.protocol import EMIT_FUNCTION, parse_facts
from atlas_sweeps.remote.rsync_version import check_remote_rsync, require_local_rsync

ALWAYS_EXCLUDED = (".git", ".venv/", "__pycache__/")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class RsyncStats:
    """The numbers of ``rsync --stats`` that matter to a user (sizes in bytes)."""

    files: int = 0
    regular_files: int = 0
    files_transferred: int = 0
    deleted_files: int = 0
    total_size: int = 0
    transferred_size: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0


@dataclass(frozen=True)
class SnapshotResult:
    """Where the snapshot is and what the sync moved."""

    remote_path: str
    files_transferred: int
    bytes_transferred: int
    linked_to: str | None
    stats: RsyncStats


_STAT_FIELDS = {
    "Number of files": "files",
    "Number of regular files transferred": "files_transferred",
    "Number of deleted files": "deleted_files",
    "Total file size": "total_size",
    "Total transferred file size": "transferred_size",
    "Total bytes sent": "bytes_sent",
    "Total bytes received": "bytes_received",
}


def parse_rsync_stats(text: str) -> RsyncStats:
    """Parse the ``--stats`` block of rsync 3.x output (numbers may carry thousands separators)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        label, sep, rest = line.partition(":")
        field = _STAT_FIELDS.get(label.strip())
        if not sep or field is None:
            continue
        number = re.match(r"\s*([\d,.]+)", rest)
        if number:
            values[field] = int(re.sub(r"[,.]", "", number.group(1)))
        if field == "files":
            reg = re.search(r"reg:\s*([\d,.]+)", rest)
            values["regular_files"] = int(re.sub(r"[,.]", "", reg.group(1))) if reg else values.get("files", 0)
    return RsyncStats(**values)


def exclude_patterns(ignored: list[str]) -> list[str]:
    """rsync exclude rules matching exactly the paths git ignores: anchored at the snapshot's root, with
    rsync's wildcard characters escaped (a backslash escapes only when a wildcard is present)."""
    rules = []
    for path in ignored:
        if any(ch in path for ch in "*?["):
            path = re.sub(r"([\\*?\[])", r"\\\1", path)
        rules.append("/" + path)
    return rules


def snapshot_rsync_args(*, local_dir: Path, dest: str, link_dest: str | None, excludes: list[str],
                        exclude_from: str | None = None) -> list[str]:
    """rsync arguments for one snapshot (``dest`` already in the Remote's rsync form).

    ``link_dest`` is the previous snapshot's ABSOLUTE path: Debian's and Ubuntu's rsync 3.2.7 security
    updates fail every changed file against a relative basis ("failed verification -- update discarded").
    ``exclude_from`` names a NUL-separated file of exact rules (what git ignores); without it the
    ``.gitignore`` files in the tree are read by rsync. ``--protect-args`` keeps every path and option out
    of the remote shell's command line, whatever escaping the local rsync version does.
    """
    # Files arrive read-only, as every earlier snapshot holds them: rsync hard-links a file only when its
    # mode matches too, so freezing after the sync alone would defeat --link-dest.
    args = ["-a", "--delete", "--protect-args", "--chmod=Fa-w", "--stats", "--info=progress2"]
    if exclude_from:
        args += ["--from0", f"--exclude-from={exclude_from}"]
    else:
        args.append("--filter=:- .gitignore")
    args += [f"--exclude={pattern}" for pattern in (*ALWAYS_EXCLUDED, *excludes)]
    if link_dest:
        args.append(f"--link-dest={link_dest}")
    return [*args, f"{str(local_dir).rstrip('/')}/", dest]


def shell_path(path: str) -> str:
    """Quote a remote path for bash, keeping a leading ``~/`` meaning the home directory."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


@dataclass(frozen=True)
class SnapshotSite:
    """Where a launch's snapshot goes, as the login node reported it (``site_lines``): the snapshots directory
    with symlinks resolved, the snapshot's state, the previous snapshot if it is there, the login node's rsync."""

    snapshots: str  # absolute (``pwd -P``): rsync's destination and --link-dest basis
    state: str  # "missing", "writable" (a sync not finished) or "frozen" (read-only: complete)
    rsync: str = ""  # first line of ``rsync --version`` there ("" when it has none)
    previous: str | None = None  # the previous snapshot's name, when it exists there

    def path(self, name: str) -> str:
        return f"{self.snapshots}/{name}"


def _check_names(*names: str | None) -> None:
    for name in names:
        if name is not None and not _SAFE_NAME.match(name):
            raise RemoteError(f"bad snapshot name {name!r}", hint="use letters, digits, '.', '_' and '-' only")


def _check_inputs(local_dir: Path, *names: str | None) -> None:
    _check_names(*names)
    if not local_dir.is_dir():
        raise RemoteError(f"code directory {local_dir} does not exist", hint="run from your project or pass its path")


def site_lines(snapshots: str, *, name: str, previous: str | None) -> list[str]:
    """Bash lines (after ``EMIT_FUNCTION``) that create the snapshots directory ``snapshots`` (a bash word,
    already quoted) and ``emit`` what ``parse_site`` reads, or ``emit problem`` when it cannot be used.
    Part of another call (the launch's preflight), so a snapshot costs no round trip of its own for this."""
    _check_names(name, previous)
    lines = [
        f"snaps={snapshots}",
        'if ! err=$(mkdir -p "$snaps" 2>&1); then emit problem "cannot create $snaps: $err";',
        'elif ! real=$(cd "$snaps" 2>&1 && pwd -P); then emit problem "cannot enter $snaps: $real"; else',
        '  emit snapshots "$real"',
        f'  snap="$snaps"/{shlex.quote(name)}',
        # a finished snapshot has no write bit left (freeze_command): its mode says so, whoever asks (root
        # may write anywhere, so a test for writability would call every snapshot unfinished)
        '  if [ ! -d "$snap" ]; then emit snapshot missing; '
        'elif [ -n "$(find "$snap" -maxdepth 0 -perm /222)" ]; then emit snapshot writable; '
        "else emit snapshot frozen; fi",
    ]
    if previous:
        lines.append(f'  if [ -d "$snaps"/{shlex.quote(previous)} ]; then emit previous {shlex.quote(previous)}; fi')
    return [*lines, "fi", 'emit rsync "$(rsync --version 2>/dev/null | head -n 1)"']


def parse_site(facts: dict[str, str]) -> SnapshotSite | None:
    """The site from the facts ``site_lines`` emitted (None when they never answered)."""
    if not facts.get("snapshots"):
        return None
    return SnapshotSite(snapshots=facts["snapshots"], state=facts.get("snapshot", "missing"),
                        rsync=facts.get("rsync", ""), previous=facts.get("previous") or None)


def freeze_command(path: str) -> str:
    """Make a synced snapshot read-only: what marks it complete, and keeps its launch's code unchanged."""
    return f"chmod -R a-w -- {shlex.quote(path)}"


def rsync_snapshot(remote: Remote, *, site: SnapshotSite, local_dir: Path, snapshot_name: str,
                   excludes: list[str], on_progress: Callable[[str], None] | None = None) -> SnapshotResult:
    """Copy ``local_dir`` into ``site``'s snapshot ``snapshot_name``: one round trip, the rsync. A snapshot
    left writable by an interrupted sync is resumed; a frozen one is never overwritten. The caller freezes it
    (``freeze_command``) once it is complete."""
    _check_inputs(local_dir, snapshot_name)
    absolute = site.path(snapshot_name)
    if site.state == "frozen":
        raise RemoteError(f"snapshot {absolute} already exists and is read-only",
                          hint="snapshots are immutable; use a new snapshot name")
    check_remote_rsync(site.rsync, where=getattr(remote, "label", "(this machine)"))
    ignored = git_ignored(local_dir)
    with tempfile.NamedTemporaryFile("wb", prefix="atlas-excludes-", suffix=".txt") as rules:
        if ignored is not None:
            rules.write(b"".join(rule.encode(errors="surrogateescape") + b"\0" for rule in exclude_patterns(ignored)))
            rules.flush()
        args = snapshot_rsync_args(local_dir=local_dir, dest=remote.rsync_path(absolute + "/"),
                                   link_dest=site.path(site.previous) if site.previous else None,
                                   excludes=excludes, exclude_from=rules.name if ignored is not None else None)
        synced = remote.rsync(args, on_progress=on_progress)
    synced.check(what=f"rsync of {local_dir} to {absolute}")
    stats = parse_rsync_stats(synced.stdout)
    return SnapshotResult(remote_path=absolute, files_transferred=stats.files_transferred,
                          bytes_transferred=stats.transferred_size, linked_to=site.previous, stats=stats)


def sync_snapshot(remote: Remote, *, local_dir: Path, remote_root: str, snapshot_name: str,
                  previous: str | None, excludes: list[str],
                  on_progress: Callable[[str], None] | None = None) -> SnapshotResult:
    """Copy ``local_dir`` to ``<remote_root>/snapshots/<snapshot_name>/`` and make it read-only, on its own:
    three round trips (the site, rsync, freeze). A launch folds the first into its preflight and the last
    into its submit call."""
    _check_inputs(local_dir, snapshot_name, previous)
    require_local_rsync()
    snapshots = f"{remote_root.rstrip('/')}/snapshots"
    script = "\n".join([EMIT_FUNCTION, *site_lines(shell_path(snapshots), name=snapshot_name, previous=previous)])
    ready = remote.run_script(script + "\n")
    ready.check(what=f"preparing {snapshots} on the cluster")
    facts = dict(parse_facts(ready.stdout))
    if "problem" in facts:
        raise RemoteError(f"preparing {snapshots} on the cluster failed: {' '.join(facts['problem'].split())}")
    site = parse_site(facts)
    if site is None:
        raise RemoteError(f"the login node did not answer while preparing {snapshots}",
                          hint="check that your login files print nothing odd and retry")
    result = rsync_snapshot(remote, site=site, local_dir=local_dir, snapshot_name=snapshot_name, excludes=excludes,
                            on_progress=on_progress)
    remote.run_script(freeze_command(result.remote_path)).check(what=f"making {snapshots}/{snapshot_name} read-only")
    return result
