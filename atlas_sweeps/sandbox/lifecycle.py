"""``up``, ``down`` and ``status`` of the sandbox cluster: the orchestration over the small modules."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from atlas_sweeps.config.profile import Profile
from atlas_sweeps.errors import SandboxError, UsageError
from atlas_sweeps.sandbox import accounting, chroot, daemons, gres, packages, users, venv
from atlas_sweeps.sandbox.components import COMPONENTS, Component, build_components, daemon_env, real_exe
from atlas_sweeps.sandbox.config import (
    PROFILE_HEADER,
    SandboxSettings,
    real_memory_mb,
    render_my_cnf,
    render_profile,
    render_slurm_conf,
    render_slurmdbd_conf,
    render_sshd_config,
    sandbox_profiles,
)
from atlas_sweeps.sandbox.paths import SandboxPaths, default_root, user_clusters_dir

Log = Callable[[str], None]
_START_TIMEOUT = 60.0


def _quiet(_message: str) -> None:
    pass


@dataclass(frozen=True)
class ComponentStatus:
    """One daemon's health: its pid (if any of ours runs), and whether its port or socket answers."""

    name: str
    pid: int | None
    alive: bool
    answering: bool
    endpoint: str
    log_file: str

    @property
    def ok(self) -> bool:
        return self.alive and self.answering


@dataclass(frozen=True)
class SandboxStatus:
    """Every component's health; ``ok`` only when all are alive and answering."""

    root: Path
    configured: bool
    components: list[ComponentStatus]

    @property
    def ok(self) -> bool:
        return self.configured and all(c.ok for c in self.components)

    def to_dict(self) -> dict[str, object]:
        return {"root": str(self.root), "configured": self.configured, "ok": self.ok,
                "components": [{**asdict(c), "ok": c.ok} for c in self.components]}


@dataclass(frozen=True)
class SandboxInfo:
    """What ``up`` brought up: where everything is, the settings used, profiles written, what it did."""

    paths: SandboxPaths
    settings: SandboxSettings
    profiles: dict[str, Path]
    status: SandboxStatus
    installed: tuple[str, ...] = ()
    started: tuple[str, ...] = ()
    seconds: float = 0.0


# --- settings --------------------------------------------------------------------------------------------

def load_settings(paths: SandboxPaths) -> SandboxSettings | None:
    """The settings the last ``up`` saved, or None when there is no sandbox here."""
    try:
        return SandboxSettings.from_json(paths.settings_file.read_text())
    except FileNotFoundError:
        return None


def _detect_settings(previous: SandboxSettings | None, overrides: dict[str, int | None], *,
                     default: SandboxSettings | None = None) -> SandboxSettings:
    """This machine's name and shape over ``previous`` (else ``default``), then the non-None ``overrides``."""
    base = previous or default or SandboxSettings(hostname="", cpus=1, real_memory_mb=256)
    meminfo = Path("/proc/meminfo").read_text()
    detected = replace(base, hostname=socket.gethostname().split(".")[0],
                       cpus=len(os.sched_getaffinity(0)), real_memory_mb=real_memory_mb(meminfo))
    return replace(detected, **{k: v for k, v in overrides.items() if v is not None})


# --- files -----------------------------------------------------------------------------------------------

def _write_if_changed(path: Path, text: str, *, mode: int = 0o644, owner: str | None = None) -> bool:
    changed = not (path.exists() and path.read_text() == text)
    if changed:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.chmod(mode)
        tmp.replace(path)
    path.chmod(mode)
    if owner:
        shutil.chown(path, owner, owner)
    return changed


def _mkdir(path: Path, *, mode: int = 0o755, owner: str | None = None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    if owner:
        shutil.chown(path, owner, owner)


def _check_traversable(root: Path) -> None:
    """The cluster users reach slurm.conf and munge's socket inside the sandbox: every parent directory
    must let others through."""
    for parent in [root, *root.parents]:
        if parent.exists() and not parent.stat().st_mode & 0o001:
            raise UsageError(f"{parent} is not searchable by other users, so the cluster users cannot reach "
                             f"the sandbox's slurm.conf and munge socket under {root}",
                             hint=f"chmod o+x {parent}, or set ATLAS_SANDBOX_DIR elsewhere")


def _prepare_dirs(paths: SandboxPaths) -> None:
    for d in (paths.root, paths.etc, paths.run, paths.log, paths.state, paths.profiles,
              paths.slurmctld_state, paths.slurmd_spool):
        _mkdir(d)
    _mkdir(paths.keys, mode=0o700)
    _mkdir(paths.munge_key.parent, mode=0o700, owner="munge")
    _mkdir(paths.munge_run, mode=0o755, owner="munge")
    _mkdir(paths.log_file("munge").parent, mode=0o700, owner="munge")
    _mkdir(paths.munge_seed.parent, mode=0o700, owner="munge")
    _mkdir(paths.mysql_run, mode=0o755, owner="mysql")
    _mkdir(paths.log_file("mariadb").parent, mode=0o750, owner="mysql")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory


def _secret(path: Path, make: Callable[[], bytes], *, mode: int = 0o600, owner: str | None = None) -> bytes:
    if not path.exists() or path.stat().st_size == 0:
        path.touch(mode=mode)
        path.write_bytes(make())
    path.chmod(mode)
    if owner:
        shutil.chown(path, owner, owner)
    return path.read_bytes()


def _write_configs(settings: SandboxSettings, paths: SandboxPaths) -> set[Path]:
    """Render every config file; returns the paths whose content changed."""
    _secret(paths.munge_key, lambda: os.urandom(1024), mode=0o400, owner="munge")
    db_password = _secret(paths.db_password, lambda: os.urandom(18).hex().encode()).decode().strip()
    changed = set()
    files = [
        (paths.slurm_conf, render_slurm_conf(settings, paths), 0o644),
        (paths.slurmdbd_conf, render_slurmdbd_conf(settings, paths, db_password=db_password), 0o600),
        (paths.my_cnf, render_my_cnf(settings, paths), 0o644),
        (paths.sshd_config, render_sshd_config(settings, paths), 0o644),
        (paths.etc / "plugstack.conf", "", 0o644),
        (paths.daemons_conf, gres.render_daemons_conf(str(paths.slurm_conf)), 0o644),
        (paths.gres_conf, gres.render_gres_conf(gres.gpu_files(paths.gpu_dir)), 0o644),
    ]
    paths.daemons_conf.parent.mkdir(exist_ok=True)
    gres.make_gpu_files([Path(f) for f in gres.gpu_files(paths.gpu_dir)])
    for path, text, mode in files:
        if _write_if_changed(path, text, mode=mode):
            changed.add(path)
    return changed


def _write_profiles(profiles: list[Profile], local: Callable[[str], Path], *, install: bool,
                    log: Log) -> dict[str, Path]:
    """Each profile into the sandbox dir (``local(name)``) and, with ``install``, into the user's clusters
    dir unless a file there was not written by the sandbox."""
    written = {}
    for profile in profiles:
        text = render_profile(profile)
        local(profile.name).parent.mkdir(parents=True, exist_ok=True)
        _write_if_changed(local(profile.name), text)
        written[profile.name] = local(profile.name)
        if not install:
            continue
        target = user_clusters_dir() / f"{profile.name}.toml"
        if target.exists() and not target.read_text().startswith(PROFILE_HEADER):
            log(f"[yellow]left {target} alone: it was not written by the sandbox[/]")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_if_changed(target, text)
        written[profile.name] = target
    return written


# --- daemons ---------------------------------------------------------------------------------------------

def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return " | ".join(ln.strip() for ln in text.strip().splitlines()[-lines:]) or "(empty log)"


def _port_user(port: int) -> str:
    owners = daemons.port_listeners(port)
    return ", ".join(f"{name} pid {pid}" for name, pid in owners) or "an unknown program"


def _spawn(comp: Component, paths: SandboxPaths | None) -> None:
    comp.log_file.parent.mkdir(parents=True, exist_ok=True)
    comp.log_file.touch()
    if comp.root is not None:  # inside a chroot: its own users, a clean environment
        argv, env = chroot.chroot_argv(comp.root, comp.argv, run_as=comp.run_as), dict(chroot.CHROOT_ENV)
        if comp.run_as:
            inner = "/" + str(comp.log_file.relative_to(comp.root))
            chroot.run_in(comp.root, ["chown", f"{comp.run_as}:{comp.run_as}", inner])
    else:
        assert paths is not None
        env = daemon_env(paths)
        argv = list(comp.argv)
        if comp.run_as:
            argv = ["runuser", "-u", comp.run_as, "--", *argv]
            shutil.chown(comp.log_file, comp.run_as, comp.run_as)  # munged insists on owning its log
    with open(comp.log_file, "ab") as out:
        if comp.detach:
            # setsid -f: the daemon is not our child, so it outlives us and leaves no zombie behind.
            subprocess.run(["setsid", "-f", *argv], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                           env=env, check=True)
            return
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, timeout=60)
    if proc.returncode != 0:
        raise SandboxError(f"{comp.name} failed to start (exit {proc.returncode}): {_log_tail(comp.log_file)}",
                           hint=f"see {comp.log_file}")


def _stop(comp: Component, *, log: Log, keep_jobs: bool = False) -> list[int]:
    """Stop a component's processes (for sshd also its sessions, for slurmd its job steps unless
    ``keep_jobs``: a restarted slurmd takes its running steps back)."""
    mains = comp.pids()
    extra: list[int] = []
    if comp.name == "sshd" and comp.port is not None:
        for pid in mains:
            extra += daemons.descendants(pid)
        for name, pid in daemons.established_on_port(comp.port):
            if name == "sshd":
                extra += [pid, *daemons.descendants(pid)]
    if comp.name == "slurmd" and not keep_jobs:
        steps = Component(name="slurmstepd", exe=real_exe("/usr/sbin/slurmstepd", comp.root), argv=(),
                          pid_file=Path("/nonexistent"), log_file=comp.log_file, marker=f"SLURM_CONF={comp.marker}",
                          root=comp.root)
        for pid in steps.pids():
            extra += [pid, *daemons.descendants(pid)]
    stopped = daemons.stop_pids(mains)
    stopped += daemons.stop_pids([p for p in extra if p not in mains])
    if stopped:
        log(f"stopped {comp.name} (pid {', '.join(map(str, stopped))})")
    comp.pid_file.unlink(missing_ok=True)
    return stopped


def _ensure_running(comp: Component, paths: SandboxPaths | None, *, restart: bool, log: Log) -> bool:
    """Start ``comp`` unless ours already runs and answers; returns True when it (re)started it."""
    pids = comp.pids()
    if pids and restart:
        log(f"{comp.name}: configuration changed, restarting (running jobs keep running)")
        _stop(comp, log=log, keep_jobs=True)
        pids = []
    if pids:
        if comp.answering() or daemons.wait_until(comp.answering, timeout=10):
            return False
        log(f"[yellow]{comp.name} (pid {pids[0]}) runs but does not answer on {comp.endpoint}: restarting it[/]")
        _stop(comp, log=log)
    if comp.pid_file.exists():
        log(f"{comp.name}: removing stale pid file {comp.pid_file}")
        comp.pid_file.unlink()
    if comp.port is not None and daemons.port_open(comp.port):
        raise SandboxError(
            f"port {comp.port} on 127.0.0.1, which the sandbox's {comp.name} needs, is in use by "
            f"{_port_user(comp.port)}",
            hint=f"stop that program, or choose another port: atlas-sweeps sandbox up --{comp.name}-port N")
    if comp.socket is not None and comp.socket.exists():
        comp.socket.unlink()  # nobody of ours serves it: a leftover socket file
    log(f"starting {comp.name} on {comp.endpoint}")
    _spawn(comp, paths)
    if not daemons.wait_until(lambda: bool(comp.pids()) and comp.answering(), timeout=_START_TIMEOUT,
                              interval=0.25):
        raise SandboxError(f"{comp.name} did not come up on {comp.endpoint}: {_log_tail(comp.log_file)}",
                           hint=f"see {comp.log_file}")
    return True


def needs_restart(comp: Component, changed: set[Path]) -> bool:
    """True when one of ``comp``'s config files changed, or a Slurm daemon of ours runs with other arguments
    (an earlier version's ``up`` started it on slurm.conf rather than daemons.conf)."""
    if any(f in changed for f in comp.config_files):
        return True
    if comp.name not in ("slurmctld", "slurmd"):
        return False
    pids = comp.pids()
    return bool(pids) and " ".join(comp.argv) not in daemons.cmdline(pids[0])


def _stop_slurmd_before_slurmctld(comps: dict[str, Component], name: str, *, log: Log) -> None:
    """Before slurmctld restarts on a new config, stop slurmd (keeping its job steps): an old slurmd that
    registers with the new slurmctld (fewer GPUs than configured) gets its node drained."""
    if name == "slurmctld" and comps["slurmd"].pids():
        log("slurmd: configuration changed, stopping it while slurmctld restarts (running jobs keep running)")
        _stop(comps["slurmd"], log=log, keep_jobs=True)


def _slurm_env(paths: SandboxPaths) -> dict[str, str]:
    return {**os.environ, "SLURM_CONF": str(paths.slurm_conf)}


def _ensure_node_idle(settings: SandboxSettings, paths: SandboxPaths, *, log: Log) -> None:
    """Wait for the node to register; resume it if an earlier run left it down or drained."""
    env = _slurm_env(paths)
    wait_node_idle(settings.hostname, lambda argv: subprocess.run(argv, capture_output=True, text=True, env=env),
                   hint=f"see {paths.log_file('slurmd')} and {paths.log_file('slurmctld')}", log=log)


def wait_node_idle(node: str, run: Callable[[list[str]], subprocess.CompletedProcess[str]], *, hint: str,
                   log: Log) -> None:
    """Wait until ``node`` is usable, asking Slurm's clients through ``run``; resume it once if an earlier
    run left it down or drained."""

    def state() -> str:
        return run(["sinfo", "-h", "-N", "-n", node, "-o", "%T"]).stdout.strip().lower()

    resumed = False
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        s = state()
        if s.rstrip("*~#") in ("idle", "mixed", "allocated", "completing"):
            return
        if not resumed and any(w in s for w in ("down", "drain", "fail")):
            log(f"node {node} is {s}: resuming it")
            run(["scontrol", "update", f"NodeName={node}", "State=RESUME"])
            resumed = True
        time.sleep(0.5)
    raise SandboxError(f"node {node} did not become idle (state: {state() or 'unknown'})", hint=hint)


# --- public API ------------------------------------------------------------------------------------------

def up(*, root: Path | None = None, ssh_port: int | None = None, slurmctld_port: int | None = None,
       slurmd_port: int | None = None, slurmdbd_port: int | None = None, mysql_port: int | None = None,
       min_job_age: int | None = None, write_profiles: bool = True, install_venv: bool = True,
       log: Log = _quiet) -> SandboxInfo:
    """Install what is missing and start every component; idempotent (seconds when all is up already).
    Options left None keep the last ``up``'s value, else the default."""
    t0 = time.monotonic()
    packages.check_platform()
    paths = SandboxPaths((root or default_root()).absolute())
    _check_traversable(paths.root)
    _mkdir(paths.root)
    with _locked(paths.root):
        installed = packages.ensure_packages(log=log).installed
        overrides = {"ssh_port": ssh_port, "slurmctld_port": slurmctld_port, "slurmd_port": slurmd_port,
                     "slurmdbd_port": slurmdbd_port, "mysql_port": mysql_port, "min_job_age": min_job_age}
        settings = _detect_settings(load_settings(paths), overrides)
        ports = [settings.ssh_port, settings.slurmctld_port, settings.slurmd_port, settings.slurmdbd_port,
                 settings.mysql_port]
        if len(set(ports)) != len(ports):
            raise UsageError(f"the sandbox's ports must all differ, got {ports}")
        return _up_locked(paths, settings, installed=installed, write_profiles=write_profiles,
                          install_venv=install_venv, log=log, t0=t0)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One ``up``/``down`` at a time per sandbox directory (two test sessions may start together)."""
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _up_locked(paths: SandboxPaths, settings: SandboxSettings, *, installed: tuple[str, ...],
               write_profiles: bool, install_venv: bool, log: Log, t0: float) -> SandboxInfo:
    _prepare_dirs(paths)
    changed = _write_configs(settings, paths)
    paths.settings_file.write_text(settings.to_json())
    users.ensure_users_and_keys(settings, paths)
    for user in settings.users:
        gres.point_bashrc_at(Path(pwd.getpwnam(user).pw_dir), str(paths.daemons_conf))

    venv_error: list[BaseException] = []

    def make_venv() -> None:
        try:
            if venv.ensure_user_venv(settings.user):
                log(f"installed wandb=={venv.WANDB_VERSION} into {venv.venv_path(settings.user)}")
        except BaseException as exc:  # reported after the daemons are up
            venv_error.append(exc)

    venv_thread = None
    if install_venv:
        if not venv.has_package(venv.venv_path(settings.user), "wandb", venv.WANDB_VERSION):
            log(f"creating {venv.venv_path(settings.user)} with wandb=={venv.WANDB_VERSION} (in the background)")
        venv_thread = threading.Thread(target=make_venv, name="sandbox-venv", daemon=True)
        venv_thread.start()

    comps = build_components(settings, paths)
    started = []
    for name in COMPONENTS:
        comp = comps[name]
        if name == "mariadb" and accounting.ensure_mysql_datadir(paths):
            log("initialised MariaDB's data directory")
        restart = needs_restart(comp, changed)
        if restart:
            _stop_slurmd_before_slurmctld(comps, name, log=log)
        if _ensure_running(comp, paths, restart=restart, log=log):
            started.append(name)
        if name == "mariadb":
            accounting.ensure_db_user(paths, db_password=paths.db_password.read_text().strip())
        elif name == "slurmdbd":
            for what in accounting.ensure_associations(settings, _slurm_env(paths)):
                log(f"accounting: added {what}")
        elif name == "slurmd":
            _ensure_node_idle(settings, paths, log=log)

    profiles = _write_profiles(sandbox_profiles(settings, paths), paths.profile, install=write_profiles, log=log)
    if venv_thread is not None:
        venv_thread.join()
        if venv_error:
            raise SandboxError(f"the cluster user's venv could not be made: {venv_error[0]}")
    st = status(root=paths.root)
    if not st.ok:
        bad = ", ".join(c.name for c in st.components if not c.ok)
        raise SandboxError(f"sandbox components not healthy after up: {bad}", hint="run `atlas-sweeps sandbox status`")
    return SandboxInfo(paths=paths, settings=settings, profiles=profiles, status=st, installed=installed,
                       started=tuple(started), seconds=time.monotonic() - t0)


def status(*, root: Path | None = None) -> SandboxStatus:
    """Each component's pid, liveness and whether its port answers (read-only; needs no root for ports)."""
    paths = SandboxPaths((root or default_root()).absolute())
    settings = load_settings(paths)
    if settings is None:
        return SandboxStatus(root=paths.root, configured=False, components=[])
    return SandboxStatus(root=paths.root, configured=True,
                         components=component_statuses(build_components(settings, paths), COMPONENTS))


def component_statuses(comps: dict[str, Component], names: tuple[str, ...]) -> list[ComponentStatus]:
    """Each named component's pid, liveness and whether its endpoint answers."""
    out = []
    for name in names:
        comp = comps[name]
        pids = comp.pids()
        out.append(ComponentStatus(name=name, pid=pids[0] if pids else None, alive=bool(pids),
                                   answering=comp.answering(), endpoint=comp.endpoint,
                                   log_file=str(comp.log_file)))
    return out


def down(*, root: Path | None = None, only: str | None = None, log: Log = _quiet) -> list[str]:
    """Stop the sandbox's own processes by pid (TERM, wait, KILL), in reverse start order, or only the
    named component. Returns the components that had processes to stop."""
    if only is not None and only not in COMPONENTS:
        raise UsageError(f"unknown sandbox component {only!r}", hint=f"choose one of {', '.join(COMPONENTS)}")
    paths = SandboxPaths((root or default_root()).absolute())
    settings = load_settings(paths)
    if settings is None:
        log(f"no sandbox at {paths.root}: nothing to stop")
        return []
    comps = build_components(settings, paths)
    names = [only] if only else list(reversed(COMPONENTS))
    with _locked(paths.root):
        return [name for name in names if _stop(comps[name], log=log)]


__all__ = ["ComponentStatus", "SandboxInfo", "SandboxStatus", "down", "load_settings", "status", "up"]
