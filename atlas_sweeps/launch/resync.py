"""``retry --resync``: a retry round in the code as it is now, not the launch's snapshot. The code goes to a
new immutable snapshot ``snapshots/<launch>-r<N>`` (hard links to the launch's where unchanged), and the
round's job files are rendered again from the recorded plan under ``retry<N>/`` (the launch's job scripts
``cd`` into its own snapshot), so the retried runs keep their parameters and tags."""

from __future__ import annotations

import posixpath
from dataclasses import replace
from pathlib import Path

from atlas_sweeps.backends import make_backend
from atlas_sweeps.backends.base import CreatedSweep
from atlas_sweeps.errors import UsageError
from atlas_sweeps.launch.jobs import prepare_sweep
from atlas_sweeps.launch.layout import RetryLayout
from atlas_sweeps.launch.retry import RetryPlan
from atlas_sweeps.remote.base import Remote
from atlas_sweeps.state.store import LaunchRecord, SweepRecord

DEFAULT_MAX_ARRAY = 1001


def snapshot_name(launch_id: str, attempt: int) -> str:
    """The snapshot a resynced round runs in."""
    return f"{launch_id}-r{attempt}"


def launch_root(record: LaunchRecord) -> str:
    """The launch's remote directory (absolute), from its snapshot's path ``<root>/snapshots/<launch>``."""
    return posixpath.dirname(posixpath.dirname(record.snapshot))


def code_dir_of(record: LaunchRecord) -> Path:
    """The directory the launch synced its code from; UsageError when it is gone (never another directory:
    ``--resync`` must not run whatever happens to be here)."""
    recorded = (record.options or {}).get("code_dir")
    if not recorded or not Path(recorded).is_dir():
        raise UsageError(f"--resync: the code directory of launch {record.id} ({recorded or 'not recorded'}) is not "
                         "on this machine", hint="retry without --resync to run the launch's snapshot")
    return Path(recorded)


def sync_current_code(remote: Remote, record: LaunchRecord, *, code_dir: Path, attempt: int,
                      excludes: list[str]) -> str:
    """Snapshot ``code_dir`` as it is now for round ``attempt`` (rsync, then read-only); its remote path."""
    from atlas_sweeps.remote.snapshot import sync_snapshot

    done = sync_snapshot(remote, local_dir=code_dir, remote_root=launch_root(record),
                         snapshot_name=snapshot_name(record.id, attempt), previous=record.id, excludes=excludes)
    return done.remote_path


def resynced(plan: RetryPlan, record: LaunchRecord, sweeps: list[SweepRecord], *, code: str, cwd: Path) -> RetryPlan:
    """``plan`` with its arrays run in ``code``: each sweep's script and argument files rendered again from the
    recorded plan under ``retry<N>/``, submitted with the same sparse task ids (pure but for reading the
    recorded profile and template)."""
    from atlas_sweeps.launch.launcher import prepare_recorded

    prepared = prepare_recorded(record, cwd=cwd)
    backend = make_backend(prepared.backend, profile=prepared.profile, dry_run=True)
    layout = RetryLayout(root=launch_root(record), launch_id=record.id, attempt=plan.attempt, code=code)
    ids = {s.name: CreatedSweep(sweep_id=s.sweep_id or "", url=s.url) for s in sweeps}
    wanted = {a.sweep for a in plan.arrays}
    rendered = {s.name: prepare_sweep(s, ids.get(s.name) or CreatedSweep(sweep_id=""), backend=backend,
                                      profile=prepared.profile, layout=layout, template=prepared.template,
                                      launch_id=record.id, project=prepared.project, entity=prepared.entity,
                                      max_array_size=record.max_array_size or DEFAULT_MAX_ARRAY)
                for s in prepared.plan.sweeps if s.name in wanted}
    arrays = []
    for array in plan.arrays:
        sweep = rendered[array.sweep]
        own = next(s for s in sweep.submissions if s.chunk.index == array.chunk)
        arrays.append(replace(array, submission=replace(array.submission, script_path=sweep.script_path,
                                                        output=own.output, error=own.error, chdir=code)))
    subs = {a.sweep: tuple(x.submission for x in arrays if x.sweep == a.sweep) for a in arrays}
    files = tuple(replace(p, submissions=subs[name]) for name, p in rendered.items())
    return replace(plan, arrays=tuple(arrays), prepared=files, root=layout.root, code=code)
