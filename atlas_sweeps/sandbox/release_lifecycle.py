"""``up``, ``down`` and ``status`` of a chroot sandbox (``sandbox up --release trixie``): another distribution
release's Slurm, OpenSSH, rsync and Python beside the host's sandbox, on other ports and without accounting."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from atlas_sweeps.errors import SandboxError
from atlas_sweeps.sandbox import chroot, daemons, gres, packages
from atlas_sweeps.sandbox.components import RELEASE_COMPONENTS, build_release_components
from atlas_sweeps.sandbox.config import SandboxSettings
from atlas_sweeps.sandbox.lifecycle import (
    Log,
    SandboxStatus,
    _check_traversable,
    _detect_settings,
    _ensure_running,
    _locked,
    _mkdir,
    _quiet,
    _stop,
    _stop_slurmd_before_slurmctld,
    _write_if_changed,
    _write_profiles,
    component_statuses,
    needs_restart,
    wait_node_idle,
)
from atlas_sweeps.sandbox.paths import default_root
from atlas_sweeps.sandbox.release_config import (
    CGROUP_CONF,
    DAEMONS_CGROUP_CONF,
    DAEMONS_CONF,
    GPU_DIR,
    GRES_CONF,
    SLURM_CONF,
    SSHD_CONFIG,
    ReleasePaths,
    release_profiles,
    render_cgroup_conf,
    render_slurm_conf,
    render_sshd_config,
)
from atlas_sweeps.sandbox.releases import Release, get_release


@dataclass(frozen=True)
class ReleaseInfo:
    """What ``up`` of a chroot sandbox did: where it is, its settings and profiles, what it built and started."""

    release: Release
    paths: ReleasePaths
    settings: SandboxSettings
    profiles: dict[str, Path]
    status: SandboxStatus
    built: bool = False
    mounted: tuple[str, ...] = ()
    started: tuple[str, ...] = ()
    seconds: float = 0.0


def release_paths(release: Release, root: Path | None = None) -> ReleasePaths:
    """The chroot sandbox's directory: ``<sandbox dir>/<release>``."""
    return ReleasePaths((root or default_root()).absolute() / release.name)


def _load_settings(paths: ReleasePaths) -> SandboxSettings | None:
    try:
        return SandboxSettings.from_json(paths.settings_file.read_text())
    except FileNotFoundError:
        return None


def _default_settings(release: Release) -> SandboxSettings:
    return SandboxSettings(hostname="", cpus=1, real_memory_mb=256, ssh_port=release.ssh_port,
                           slurmctld_port=release.slurmctld_port, slurmd_port=release.slurmd_port)


def _write_configs(release: Release, settings: SandboxSettings, paths: ReleasePaths) -> set[Path]:
    files = [(paths.inside(SLURM_CONF), render_slurm_conf(release, settings)),
             (paths.inside(CGROUP_CONF), render_cgroup_conf(release)),
             (paths.inside(SSHD_CONFIG), render_sshd_config(settings)),
             (paths.inside(DAEMONS_CONF), gres.render_daemons_conf(SLURM_CONF)),
             (paths.inside(GRES_CONF), gres.render_gres_conf(gres.gpu_files(GPU_DIR))),
             # The daemons look for cgroup.conf beside the file they read (daemons.conf).
             (paths.inside(DAEMONS_CGROUP_CONF), render_cgroup_conf(release))]
    paths.inside(DAEMONS_CONF).parent.mkdir(exist_ok=True)
    gres.make_gpu_files([paths.inside(f) for f in gres.gpu_files(GPU_DIR)])
    return {path for path, text in files if _write_if_changed(path, text)}


def _slurm_in(root: Path) -> Callable[[list[str]], subprocess.CompletedProcess[str]]:
    """Runs Slurm's client commands inside the chroot (the host's older clients cannot talk to its Slurm)."""

    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(chroot.chroot_argv(root, argv), capture_output=True, text=True, env=chroot.CHROOT_ENV)
    return run


def up(name: str, *, root: Path | None = None, ssh_port: int | None = None, slurmctld_port: int | None = None,
       slurmd_port: int | None = None, min_job_age: int | None = None, mirror: str | None = None,
       write_profiles: bool = True, log: Log = _quiet) -> ReleaseInfo:
    """Build the release's chroot once (debootstrap + its packages), mount what it needs and start its
    daemons; idempotent (seconds when up already). Options left None keep the last ``up``'s value."""
    t0 = time.monotonic()
    release = get_release(name)
    packages.check_platform()
    paths = release_paths(release, root)
    _check_traversable(paths.base)
    _mkdir(paths.base)
    with _locked(paths.base):
        t_build = time.monotonic()
        built = chroot.ensure_built(release, paths, mirror=mirror, log=log)
        if built:
            log(f"built the {release.name} chroot in {time.monotonic() - t_build:.0f} s")
        overrides = {"ssh_port": ssh_port, "slurmctld_port": slurmctld_port, "slurmd_port": slurmd_port,
                     "min_job_age": min_job_age}
        settings = _detect_settings(_load_settings(paths), overrides, default=_default_settings(release))
        mounted = chroot.ensure_mounts(paths.root, log=log)
        chroot.prepare_dirs(paths.root)
        changed = _write_configs(release, settings, paths)
        paths.settings_file.write_text(settings.to_json())
        chroot.ensure_users(settings, paths)
        for user in settings.users:
            gres.point_bashrc_at(paths.inside(f"/home/{user}"), DAEMONS_CONF)
        comps = build_release_components(settings, paths, release.name)
        started = []
        for comp_name in RELEASE_COMPONENTS:
            comp = comps[comp_name]
            restart = needs_restart(comp, changed)
            if restart:
                _stop_slurmd_before_slurmctld(comps, comp_name, log=log)
            if _ensure_running(comp, None, restart=restart, log=log):
                started.append(comp_name)
            if comp_name == "slurmd":
                wait_node_idle(release.name, _slurm_in(paths.root), log=log,
                               hint=f"see {paths.log_file('slurmd')} and {paths.log_file('slurmctld')}")
        profiles = _write_profiles(release_profiles(release, settings, paths), paths.profile,
                                   install=write_profiles, log=log)
    st = status(name, root=root)
    if not st.ok:
        bad = ", ".join(c.name for c in st.components if not c.ok)
        raise SandboxError(f"{release.name} sandbox components not healthy after up: {bad}",
                           hint=f"run `atlas-sweeps sandbox status --release {release.name}`")
    return ReleaseInfo(release=release, paths=paths, settings=settings, profiles=profiles, status=st, built=built,
                       mounted=tuple(str(m) for m in mounted), started=tuple(started),
                       seconds=time.monotonic() - t0)


def status(name: str, *, root: Path | None = None) -> SandboxStatus:
    """Each daemon of the chroot sandbox: pid, liveness, whether its port or socket answers (read-only)."""
    release = get_release(name)
    paths = release_paths(release, root)
    settings = _load_settings(paths)
    if settings is None or not chroot.is_built(release, paths):
        return SandboxStatus(root=paths.base, configured=False, components=[])
    comps = build_release_components(settings, paths, release.name)
    return SandboxStatus(root=paths.base, configured=True, components=component_statuses(comps, RELEASE_COMPONENTS))


def down(name: str, *, root: Path | None = None, log: Log = _quiet) -> list[str]:
    """Stop the chroot sandbox's daemons by pid (reverse start order), then every other process still inside
    the chroot (sessions, job steps), then unmount what ``up`` mounted. Returns what it stopped/unmounted."""
    release = get_release(name)
    paths = release_paths(release, root)
    if not paths.base.exists():
        log(f"no {release.name} sandbox at {paths.base}: nothing to stop")
        return []
    settings = _load_settings(paths)
    stopped: list[str] = []
    with _locked(paths.base):
        if settings is not None:
            comps = build_release_components(settings, paths, release.name)
            stopped += [n for n in reversed(RELEASE_COMPONENTS) if _stop(comps[n], log=log)]
        rest = daemons.stop_pids(chroot.processes_in(paths.root))
        if rest:
            log(f"stopped {len(rest)} other process(es) in the chroot (pid {', '.join(map(str, rest))})")
            stopped.append("processes")
        if chroot.unmount_all(paths.root, log=log):
            stopped.append("mounts")
    return stopped

