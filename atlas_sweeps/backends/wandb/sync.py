"""``sync``: upload the offline runs of launches whose backend logs offline (local) with ``wandb sync``, run on the login node (where
the internet is) over the one SSH session, with the cluster user's own W&B credentials. Runs were written
with WANDB_RUN_GROUP/WANDB_TAGS set, so they arrive linked to their group and tags; runs already synced
(wandb leaves a ``*.wandb.synced`` marker) are skipped, so syncing again is safe."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from atlas_sweeps.backends.wandb.credentials import resolve_base_url
from atlas_sweeps.config.profile import Profile, load_profile
from atlas_sweeps.errors import RemoteError, UsageError
from atlas_sweeps.remote import Remote
from atlas_sweeps.remote.protocol import EMIT_FUNCTION, parse_line
from atlas_sweeps.state.store import LaunchRecord, StateDB


@dataclass(frozen=True)
class LaunchSync:
    """One launch's offline runs: how many were waiting, already synced, and what ``wandb sync`` did."""

    launch_id: str
    pending: int
    already_synced: int
    exit_code: int | None = None  # None: nothing was run (dry run, or nothing to upload)

    @property
    def ok(self) -> bool:
        return self.exit_code in (None, 0)


@dataclass(frozen=True)
class ClusterSync:
    """The result on one cluster (one SSH session)."""

    cluster: str
    launches: tuple[LaunchSync, ...]
    problems: tuple[str, ...] = ()


def select_launches(db: StateDB, launch_id: str | None) -> list[LaunchRecord]:
    """The launch asked for (it must be a local-backend one), or every local-backend launch with code on
    the cluster."""
    if launch_id:
        record = db.launch(launch_id)
        if record is None:
            raise UsageError(f"no launch '{launch_id}' in the state database", hint="'atlas-sweeps ls' lists launches")
        if not _offline(record):
            raise UsageError(f"launch {launch_id} used the {record.backend} backend: its runs went to W&B "
                             "online already", hint="sync is for launches whose runs were logged offline")
        return [record]
    return [r for r in db.launches() if _offline(r) and r.snapshot]


def _offline(record: LaunchRecord) -> bool:
    """Whether the launch's runs were logged offline, by its backend (as set up then, without a profile)."""
    from atlas_sweeps.backends import make_backend

    try:
        return make_backend(record.backend).offline_runs
    except UsageError:
        return False  # a backend this version does not know


def sync_script(launches: list[LaunchRecord], *, profile: Profile, dry_run: bool) -> str:
    """The remote script: set-up lines, the credential check, then per launch a ``found`` fact and (unless
    ``dry_run``) ``wandb sync`` over the launch's unsynced offline runs and a ``synced`` fact with its exit code."""
    from atlas_sweeps.backends.wandb.backend import cluster_credential_checks

    base_url = resolve_base_url(profile.wandb_base_url)
    checks = "\n".join(cluster_credential_checks(base_url))
    lines = [
        EMIT_FUNCTION,
        "exec 3>&1 1>&2  # set-up lines and wandb may print; facts go to fd 3",
        *profile.setup,
        EMIT_FUNCTION.replace("printf 'ATLAS", "printf >&3 'ATLAS"),
        f"export WANDB_BASE_URL={shlex.quote(base_url)}",
        "if ! command -v wandb >/dev/null 2>&1; then emit problem 'wandb is not found on the login node after "
        "the profile'\"'\"'s set-up lines'; exit 0; fi",
        f"creds=$(\n{checks}\n)",
        'if [ -n "$creds" ]; then printf "%s\\n" "$creds" >&3; exit 0; fi',
    ]
    for rec in launches:
        root = f"{rec.remote_dir}/wandb/{rec.id}"
        lid = shlex.quote(rec.id)
        lines += [
            "dirs=(); already=0",
            f"for d in {shlex.quote(root)}/*/wandb/offline-run-*; do",
            '  [ -d "$d" ] || continue',
            '  if compgen -G "$d/*.wandb.synced" >/dev/null; then already=$((already + 1)); else dirs+=("$d"); fi',
            "done",
            f'emit found:{lid} "${{#dirs[@]}} $already"',
        ]
        if not dry_run:
            lines += [
                'if [ "${#dirs[@]}" -gt 0 ]; then',
                '  code=0; wandb sync "${dirs[@]}" >&3 2>&1 || code=$?',
                f'  emit synced:{lid} "$code"',
                "fi",
            ]
    return "\n".join(lines) + "\n"


def parse_sync(stdout: str, *, cluster: str) -> ClusterSync:
    """The facts of one cluster's sync script."""
    found: dict[str, tuple[int, int]] = {}
    codes: dict[str, int] = {}
    problems: list[str] = []
    for line in stdout.splitlines():
        fact = parse_line(line)
        if fact is None:
            continue
        key, value = fact
        kind, _, launch_id = key.partition(":")
        if kind == "problem":
            problems.append(" ".join(value.split()))
        elif kind == "found":
            pending, _, already = value.partition(" ")
            found[launch_id] = (int(pending or 0), int(already or 0))
        elif kind == "synced":
            codes[launch_id] = int(value.strip() or 1)
    launches = tuple(LaunchSync(launch_id=i, pending=p, already_synced=a, exit_code=codes.get(i))
                     for i, (p, a) in found.items())
    return ClusterSync(cluster=cluster, launches=launches, problems=tuple(problems))


def _collector(lines: list[str], on_output: Callable[[str], None]) -> Callable[[str], None]:
    def collect(line: str) -> None:
        lines.append(line)
        if parse_line(line) is None:
            on_output(line)

    return collect


def sync_offline_runs(db: StateDB, *, launch_id: str | None, dry_run: bool, cwd: Path,
                      remote_factory: Callable[[Profile], Remote],
                      on_output: Callable[[str], None] = lambda _line: None) -> list[ClusterSync]:
    """Sync the chosen launches, one session per cluster; RemoteError if the cluster side cannot."""
    by_cluster: dict[str, list[LaunchRecord]] = {}
    for rec in select_launches(db, launch_id):
        by_cluster.setdefault(rec.cluster, []).append(rec)
    results = []
    for cluster, launches in by_cluster.items():
        profile = load_profile(cluster, project_dir=cwd)
        remote = remote_factory(profile)
        lines: list[str] = []
        try:
            code = remote.stream_script(sync_script(launches, profile=profile, dry_run=dry_run),
                                        on_stdout=_collector(lines, on_output))
        finally:
            remote.close()
        result = parse_sync("\n".join(lines), cluster=cluster)
        if result.problems:
            raise RemoteError(f"cannot sync on cluster '{cluster}': {'; '.join(result.problems)}")
        if code != 0 and not result.launches:
            raise RemoteError(f"the sync script on cluster '{cluster}' ended with exit code {code}")
        results.append(result)
    return results
