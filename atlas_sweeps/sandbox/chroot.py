"""A release's chroot on this machine: built once with debootstrap from the host's own Debian mirror, its
bind mounts (made private, checked against /proc/mounts so repeated ``up`` never stacks them), commands run
inside it, the processes that live in it, and its cluster users."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from atlas_sweeps.errors import SandboxError, UsageError
from atlas_sweeps.sandbox import daemons, packages
from atlas_sweeps.sandbox.config import SandboxSettings, known_hosts_line
from atlas_sweeps.sandbox.release_config import AUTHORIZED_KEYS_DIR, HOST_KEY, ReleasePaths, chroot_mounts
from atlas_sweeps.sandbox.releases import Release
from atlas_sweeps.sandbox.users import ensure_keypair, public_key

Log = Callable[[str], None]
CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
_POLICY_RC_D = "#!/bin/sh\n# atlas-sweeps sandbox: apt starts no daemons in this chroot.\nexit 101\n"


# --- the host's mirror (pure parsing, then the reading) -----------------------------------------------------

def parse_apt_sources(text: str, *, deb822: bool) -> list[tuple[str, tuple[str, ...]]]:
    """(URI, suites) of each binary (``deb``) source in a sources.list (one-line) or .sources (deb822) file."""
    out: list[tuple[str, tuple[str, ...]]] = []
    if not deb822:
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if not words or words[0] != "deb":
                continue
            rest = words[1:]
            if rest and rest[0].startswith("["):  # options such as [arch=amd64 signed-by=...]
                while rest and not rest[0].endswith("]"):
                    rest = rest[1:]
                rest = rest[1:]
            if len(rest) >= 2:
                out.append((rest[0], (rest[1],)))
        return out
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.strip().startswith("#") or ":" not in line or line[0].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes").lower() != "no":
            out.extend((uri, tuple(fields.get("suites", "").split())) for uri in fields.get("uris", "").split())
    return out


def pick_mirror(sources: list[tuple[str, tuple[str, ...]]], *, codename: str) -> str | None:
    """The URI that serves the host's own release (``bookworm``): the distribution's main archive."""
    return next((uri for uri, suites in sources if codename in suites), None)


def host_mirror(release: Release, *, apt_dir: Path = Path("/etc/apt"),
                os_release: Path = Path("/etc/os-release")) -> str:
    """The mirror the host's apt uses for its own release, when the host runs ``release``'s distribution."""
    info = dict(line.split("=", 1) for line in os_release.read_text().splitlines() if "=" in line)
    distro, codename = info.get("ID", "").strip('"'), info.get("VERSION_CODENAME", "").strip('"')
    sources = []
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list")),
             *sorted((apt_dir / "sources.list.d").glob("*.sources"))]
    for f in files:
        if f.is_file():
            sources += parse_apt_sources(f.read_text(), deb822=f.suffix == ".sources")
    mirror = pick_mirror(sources, codename=codename) if distro == release.distro else None
    if mirror is None:
        raise UsageError(f"found no {release.distro} mirror in {apt_dir}'s sources to fetch {release.suite} from",
                         hint="name one: atlas-sweeps sandbox up --release "
                              f"{release.name} --mirror URL")
    return mirror


# --- mounts ------------------------------------------------------------------------------------------------

def parse_mount_points(text: str) -> list[Path]:
    """Mount points in /proc/mounts text, in mount order (octal escapes such as ``\\040`` decoded)."""
    points = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            points.append(Path(fields[1].encode().decode("unicode_escape")))
    return points


def mounts_under(root: Path) -> list[Path]:
    """Every mount at or below ``root``, once per mount (a stacked mount counts twice)."""
    points = parse_mount_points(Path("/proc/mounts").read_text())
    return [p for p in points if p == root or root in p.parents]


def _run(cmd: list[str], *, what: str, input: str | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, input=input, env=env,
                          stdin=None if input is not None else subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise SandboxError(f"{what} failed (exit {proc.returncode}): {tail or '(no output)'}")
    return proc.stdout


def ensure_mounts(root: Path, *, log: Log) -> list[Path]:
    """Bind-mount /proc, /sys, /dev and /dev/pts into the chroot unless already there; each is made private
    so nothing mounted below it reaches the host. Returns what it mounted."""
    mounted = []
    for src, target in chroot_mounts(root):
        if target in mounts_under(root):
            continue
        target.mkdir(parents=True, exist_ok=True)
        _run(["mount", "--bind", src, str(target)], what=f"mount --bind {src} {target}")
        _run(["mount", "--make-private", str(target)], what=f"mount --make-private {target}")
        mounted.append(target)
    if mounted:
        log(f"mounted {', '.join(str(m.relative_to(root)) for m in mounted)} in {root}")
    return mounted


def unmount_all(root: Path, *, log: Log) -> int:
    """Unmount everything at or below ``root``, deepest and latest first (lazily when busy); returns how many."""
    count = 0
    for _ in range(20):  # stacked mounts show up again after each pass
        points = mounts_under(root)
        if not points:
            break
        for point in reversed(points):
            if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(point)], capture_output=True)
            count += 1
    left = mounts_under(root)
    if left:
        raise SandboxError(f"could not unmount {', '.join(map(str, left))}", hint="unmount them by hand")
    if count:
        log(f"unmounted {count} mount(s) under {root}")
    return count


# --- commands and processes inside ---------------------------------------------------------------------------

def chroot_argv(root: Path, argv: tuple[str, ...] | list[str], *, run_as: str | None = None) -> list[str]:
    """The host command line that runs ``argv`` inside ``root`` (as ``run_as``, resolved in the chroot)."""
    user = ["setpriv", f"--reuid={run_as}", f"--regid={run_as}", "--init-groups"] if run_as else []
    return ["chroot", str(root), *user, *argv]


def run_in(root: Path, argv: list[str], *, input: str | None = None) -> str:
    """Run ``argv`` inside the chroot with a clean environment; its stdout, or a SandboxError."""
    return _run(chroot_argv(root, argv), what=f"`{' '.join(argv[:3])}` in {root}", input=input, env=CHROOT_ENV)


def resolve_in_root(root: Path, path: str) -> str:
    """Basename of the file ``path`` resolves to inside ``root`` (absolute symlinks stay in the chroot)."""
    current = path
    for _ in range(40):
        host = root / current.lstrip("/")
        if not host.is_symlink():
            break
        target = os.readlink(host)
        current = target if target.startswith("/") else os.path.normpath(os.path.join(os.path.dirname(current),
                                                                                       target))
    return os.path.basename(current)


def processes_in(root: Path) -> list[int]:
    """Every live process whose root directory is ``root`` (the daemons, sessions and jobs of the chroot)."""
    return [pid for pid in daemons.all_pids() if daemons.process_root(pid) == root and daemons.pid_alive(pid)]


# --- building ------------------------------------------------------------------------------------------------

def _marker_text(release: Release) -> str:
    return json.dumps({"suite": release.suite, "packages": sorted(release.packages)}) + "\n"


def is_built(release: Release, paths: ReleasePaths) -> bool:
    """True when a build of this suite and package list finished here."""
    marker = paths.built_marker
    return marker.exists() and marker.read_text() == _marker_text(release) and paths.root.is_dir()


def _remove_root(paths: ReleasePaths, *, log: Log) -> None:
    """Delete a half-built chroot, never across a mount (that would delete the host's /dev or /proc); what
    still runs in it is stopped first."""
    daemons.stop_pids(processes_in(paths.root))
    unmount_all(paths.root, log=log)
    if mounts_under(paths.root):
        raise SandboxError(f"{paths.root} still has mounts; refusing to delete it")
    log(f"removing the unfinished chroot {paths.root}")
    shutil.rmtree(paths.root)


def ensure_built(release: Release, paths: ReleasePaths, *, mirror: str | None, log: Log) -> bool:
    """debootstrap the release and install its packages once; returns True when it built. A policy-rc.d
    that exits 101 keeps apt from starting the daemons it installs."""
    if is_built(release, paths):
        return False
    packages.ensure_packages(log=log, packages=("debootstrap",))
    mirror = mirror or host_mirror(release)
    paths.built_marker.unlink(missing_ok=True)
    if paths.root.exists():
        _remove_root(paths, log=log)
    paths.base.mkdir(parents=True, exist_ok=True)
    log(f"building {release.name}: debootstrap --variant=minbase {release.suite} (about a minute)")
    try:
        _run(["debootstrap", "--variant=minbase", release.suite, str(paths.root), mirror],
             what=f"debootstrap {release.suite}")
    finally:
        unmount_all(paths.root, log=lambda _m: None)  # debootstrap mounts /proc itself; a failed run leaves it
    policy = paths.inside("/usr/sbin/policy-rc.d")
    policy.write_text(_POLICY_RC_D)
    policy.chmod(0o755)
    log(f"installing {' '.join(release.packages)} in the chroot (about half a minute)")
    _run(chroot_argv(paths.root, ["apt-get", "install", "-y", "-q", "--no-install-recommends", *release.packages]),
         what=f"apt-get install in the {release.name} chroot", env={**CHROOT_ENV, "DEBIAN_FRONTEND": "noninteractive"})
    paths.built_marker.write_text(_marker_text(release))
    return True


# --- users -----------------------------------------------------------------------------------------------------

def _user_exists(root: Path, name: str) -> bool:
    return subprocess.run(chroot_argv(root, ["getent", "passwd", name]), capture_output=True,
                          env=CHROOT_ENV).returncode == 0


def _write(path: Path, text: str, *, mode: int) -> None:
    if not (path.exists() and path.read_text() == text):
        path.write_text(text)
    path.chmod(mode)


def ensure_users(settings: SandboxSettings, paths: ReleasePaths) -> None:
    """The cluster users inside the chroot (bash, a home, not locked), their keys on the host and authorized
    inside, the 2FA user's password, and the login node's host key in known_hosts."""
    root = paths.root
    paths.keys.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths.keys.chmod(0o700)
    authorized = paths.inside(AUTHORIZED_KEYS_DIR)
    authorized.mkdir(mode=0o755, parents=True, exist_ok=True)
    for user in settings.users:
        if not _user_exists(root, user):
            run_in(root, ["useradd", "--create-home", "--shell", "/bin/bash", "--user-group", user])
        run_in(root, ["usermod", "-p", "*", user])  # sshd without PAM refuses locked ('!') accounts
        ensure_keypair(paths.user_key(user), comment=f"{user}@atlas-sweeps-{root.parent.name}")
        _write(authorized / user, public_key(paths.user_key(user)) + "\n", mode=0o644)
    pw_file = paths.password_file(settings.user_2fa)
    if not (pw_file.exists() and pw_file.read_text().strip()):
        import secrets

        pw_file.touch(mode=0o600)
        pw_file.write_text(secrets.token_urlsafe(18) + "\n")
    pw_file.chmod(0o600)
    run_in(root, ["chpasswd"], input=f"{settings.user_2fa}:{pw_file.read_text().strip()}\n")
    if not paths.inside(HOST_KEY).exists():
        run_in(root, ["ssh-keygen", "-A"])
    line = known_hosts_line(port=settings.ssh_port, host_public_key=public_key(paths.inside(HOST_KEY)))
    _write(paths.known_hosts, line, mode=0o644)


def prepare_dirs(root: Path) -> None:
    """Runtime directories the daemons expect (the chroot's /run is a plain, initially empty directory)."""
    for d in ("/run/munge", "/run/sshd", "/var/log/slurm", "/var/log/munge", "/var/lib/slurm/slurmctld",
              "/var/lib/slurm/slurmd"):
        (root / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
    run_in(root, ["chown", "munge:munge", "/run/munge", "/var/log/munge"])
    (root / "run/sshd").chmod(0o755)
