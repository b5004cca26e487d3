"""``OpenSshRemote``: the ``Remote`` seam on the system's OpenSSH client, every call and every rsync through
ONE ControlMaster socket. The master outlives the command (``ControlPersist``), so a password or second
factor typed once serves every later ``atlas-sweeps`` command until it expires or ``atlas-sweeps logout``
(paramiko cannot use an OpenSSH master: paramiko#852). Same rules as ``SshRemote``: strict host keys, the
profile's known_hosts, scripts on ``bash -s``'s stdin, nothing secret in argv (ssh itself asks on the
terminal for what it needs)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from atlas_sweeps.errors import AuthError, HostKeyError, RemoteError, UsageError
from atlas_sweeps.remote.base import CallCounter, RemoteTarget, Result
from atlas_sweeps.remote.hostkeys import unknown_key_message
from atlas_sweeps.remote.local import run_rsync, stream_process

DEFAULT_PERSIST = "12h"  # one login a working day


def control_dir() -> Path:
    """The private directory of our master sockets (0700, ours): ``$XDG_RUNTIME_DIR/atlas-sweeps``, else
    ``/tmp/atlas-sweeps-<uid>``, short enough for a Unix socket path; ``ATLAS_SWEEPS_CONTROL_DIR`` overrides."""
    override = os.environ.get("ATLAS_SWEEPS_CONTROL_DIR")
    if override:
        return Path(override)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "atlas-sweeps" if runtime else Path(tempfile.gettempdir()) / f"atlas-sweeps-{os.getuid()}"


def _private_dir(path: Path) -> Path:
    """``path`` created 0700, or refused when another user owns it or others may enter it (a socket there
    could be another user's master, or replaced under us)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise UsageError(f"{path} must be a directory of yours that only you can enter (mode 0700)",
                         hint="remove it, or set ATLAS_SWEEPS_CONTROL_DIR to such a directory")
    return path


@dataclass(frozen=True)
class SshCommand:
    """The ``ssh`` options one target uses, as data (pure): every call shares them, so every call finds the
    one master socket. The socket is named after the options that decide what the connection trusts
    (host, port, user, key, known_hosts), so two profiles never share a master they would not both open."""

    target: RemoteTarget
    socket_dir: Path
    accept_new_host_key: bool = False
    batch: bool = False  # no terminal: fail instead of asking

    @property
    def socket(self) -> Path:
        t = self.target
        key = "\0".join(str(v or "") for v in (t.host, t.port, t.user, t.identity_file, t.known_hosts))
        return self.socket_dir / hashlib.sha256(key.encode()).hexdigest()[:20]

    def options(self) -> list[str]:
        t = self.target
        opts = ["-o", f"ControlPath={self.socket}",
                "-o", "StrictHostKeyChecking=" + ("accept-new" if self.accept_new_host_key else "yes"),
                "-o", "ServerAliveInterval=30", "-o", "ConnectTimeout=15"]
        if t.known_hosts:
            opts += ["-o", f"UserKnownHostsFile={os.path.expanduser(t.known_hosts)}"]
        if t.identity_file:
            opts += ["-i", os.path.expanduser(t.identity_file)]
        if t.port:
            opts += ["-p", str(t.port)]
        if t.user:
            opts += ["-l", t.user]
        if self.batch:
            opts += ["-o", "BatchMode=yes"]
        return opts

    def master(self, *, persist: str) -> list[str]:
        """Open the master and put it in the background once logged in (``-f``); it lives ``persist``."""
        return ["ssh", "-M", "-N", "-f", "-o", f"ControlPersist={persist}", *self.options(), "--", self.host]

    def control(self, operation: str) -> list[str]:
        """``ssh -O check|exit``: asks the local master only, no round trip to the login node."""
        return ["ssh", "-O", operation, "-o", f"ControlPath={self.socket}", "--", self.host]

    def run(self, command: str) -> list[str]:
        """A command through the master only (``ControlMaster=no``: never a master of its own)."""
        return ["ssh", "-T", "-o", "ControlMaster=no", *self.options(), "--", self.host, command]

    def rsh(self) -> str:
        """rsync's ``-e``: rsync splits it on spaces and honours double quotes (not backslashes)."""
        words = ["ssh", "-T", "-o", "ControlMaster=no", *self.options()]
        for word in words:
            if '"' in word:
                raise UsageError(f"a path in the SSH options contains a double quote, which rsync cannot pass: {word}",
                                 hint="rename the file or directory")
        return " ".join(f'"{w}"' if " " in w else w for w in words)

    @property
    def host(self) -> str:
        return self.target.host or ""


class OpenSshRemote(CallCounter):
    """The login node through one OpenSSH ControlMaster; build with ``connect``. ``close`` leaves the master
    running for the next command (``logout`` ends it)."""

    transport = "openssh"

    def __init__(self, command: SshCommand, *, persist: str) -> None:
        CallCounter.__init__(self)
        self._ssh = command
        self._persist = persist
        self.label = f"{command.target.user + '@' if command.target.user else ''}{command.host}"

    @classmethod
    def connect(cls, target: RemoteTarget, *, accept_new_host_key: bool = False,
                persist: str = DEFAULT_PERSIST) -> OpenSshRemote:
        """Reuse the master when it is up, else open it (ssh asks on the terminal for what it needs)."""
        if shutil.which("ssh") is None:
            raise UsageError("the openssh transport needs the ssh command, which is not installed here",
                             hint="install OpenSSH's client, or set transport = \"paramiko\" in the profile")
        command = SshCommand(target=target, socket_dir=_private_dir(control_dir()),
                             accept_new_host_key=accept_new_host_key, batch=not _has_terminal())
        remote = cls(command, persist=persist)
        remote.ensure_master()
        return remote

    # -- the master ------------------------------------------------------------------------------------
    def master_up(self) -> bool:
        done = subprocess.run(self._ssh.control("check"), capture_output=True, text=True, stdin=subprocess.DEVNULL)
        return done.returncode == 0

    def ensure_master(self) -> None:
        """The master is up after this (one login when it was not); a local check, no round trip."""
        if self._ssh.socket.exists() and self.master_up():
            return
        with contextlib.suppress(FileNotFoundError):
            self._ssh.socket.unlink()  # a dead master's socket: ssh would refuse to bind a new one
        # The backgrounded master keeps the stderr it was given: a file, not a pipe we would wait on forever.
        with tempfile.TemporaryFile() as err:
            done = subprocess.run(self._ssh.master(persist=self._persist), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=err)
            err.seek(0)
            message = err.read().decode(errors="replace")
        if done.returncode != 0:
            raise self._login_error(message)

    def _login_error(self, stderr: str) -> Exception:
        text = " ".join(stderr.split())
        t = self._ssh.target
        where = f"{t.host}:{t.port or 22}"
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr:
            known = t.known_hosts or "~/.ssh/known_hosts"
            fingerprint = re.search(r"SHA256:[A-Za-z0-9+/=]+", stderr)
            return HostKeyError(
                f"the host key of {where} CHANGED ({fingerprint.group(0) if fingerprint else 'a new key'}, not the one "
                f"in {known}): someone may be intercepting the connection (man-in-the-middle), or the host was "
                f"reinstalled; refusing to connect. If your admins confirm the new key, remove the old one with "
                f"`ssh-keygen -f {shlex.quote(known)} -R {shlex.quote(_entry(t))}` and connect again")
        if "Host key verification failed" in stderr or "host key is known" in stderr:
            return HostKeyError(self._unknown_key(where))
        if "Permission denied" in stderr or "Too many authentication failures" in stderr:
            hint = ("load your key with `ssh-add`, or run from a terminal so ssh can ask for what it needs"
                    if self._ssh.batch else "check user and IdentityFile in the profile or ~/.ssh/config; "
                    "`ssh -v` to the same host shows what the server accepts")
            return AuthError(f"{where} refused the login: {text[-200:]}", hint=hint)
        return RemoteError(f"SSH connection to {where} failed: {text[-300:] or 'ssh exited without a message'}",
                           hint="check host and port in the profile or ~/.ssh/config, and your network/VPN")

    def _unknown_key(self, where: str) -> str:
        """The unknown-key message with the key's fingerprint, read with ssh-keyscan when it can be."""
        t = self._ssh.target
        known = t.known_hosts or "~/.ssh/known_hosts"
        with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
            scan = subprocess.run(["ssh-keyscan", "-p", str(t.port or 22), "-t", "ed25519", "--", t.host or ""],
                                  capture_output=True, text=True, timeout=10)
            _name, key_type, blob = scan.stdout.split()[:3]
            return unknown_key_message(t.host or "", t.port or 22, key_type=key_type, key_base64=blob,
                                       known_hosts=known)
        return (f"the host key of {where} is not in {known}; verify it (your cluster's documentation), then rerun "
                "with --accept-new-host-key to add it")

    # -- the Remote seam -------------------------------------------------------------------------------
    def run_script(self, script: str, *, timeout: float | None = None) -> Result:
        self._count()
        self.ensure_master()
        try:
            done = subprocess.run(self._ssh.run("bash -s"), input=script.encode(), capture_output=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise RemoteError(f"script on {self.label} timed out after {timeout:g} s",
                              hint="raise the timeout or check the login node's load") from exc
        return Result(command=script, exit_code=done.returncode, stdout=done.stdout.decode(errors="replace"),
                      stderr=done.stderr.decode(errors="replace"))

    def stream_script(self, script: str, *, on_stdout: Callable[[str], None],
                      stop: threading.Event | None = None) -> int:
        self._count()
        self.ensure_master()
        proc = subprocess.Popen(self._ssh.run("bash -s"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        # stdin stays open: closing it is how the remote side learns we left (see wrap_for_streaming).
        return stream_process(proc, script, on_stdout=on_stdout, stop=stop, stopper=_close_when_set)

    def rsync(self, args: list[str], *, on_progress: Callable[[str], None] | None = None) -> Result:
        self._count()
        self.ensure_master()
        return run_rsync(["rsync", "-e", self._ssh.rsh(), *args], env=None, on_progress=on_progress)

    def rsync_path(self, path: str) -> str:
        return f"{self._ssh.host}:{path}"

    def describe(self) -> str:
        return f"openssh to {self.label}, master {'up' if self.master_up() else 'down'} ({self._ssh.socket})"

    def close(self) -> None:
        """Nothing to close: the master stays up for the next command until ControlPersist ends."""

    def logout(self) -> bool:
        """End the master (``ssh -O exit``); False when none was up."""
        if not self.master_up():
            return False
        subprocess.run(self._ssh.control("exit"), capture_output=True, stdin=subprocess.DEVNULL)
        return True


def _entry(target: RemoteTarget) -> str:
    port = target.port or 22
    return target.host or "" if port == 22 else f"[{target.host}]:{port}"


def _has_terminal() -> bool:
    """Whether ssh can ask on a terminal (it reads passwords from /dev/tty, not from stdin)."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def _close_when_set(stop: threading.Event, proc: subprocess.Popen[bytes]) -> None:
    while proc.poll() is None:
        if stop.wait(0.2):
            with contextlib.suppress(OSError):
                proc.stdin.close()  # type: ignore[union-attr]  # end-of-input: the remote side cleans up
            with contextlib.suppress(OSError):
                proc.terminate()
            return


def master_for(target: RemoteTarget) -> OpenSshRemote:
    """The (possibly not running) master of ``target``, to ask whether it is up or to end it; opens nothing."""
    command = SshCommand(target=target, socket_dir=control_dir(), batch=True)
    return OpenSshRemote(command, persist=target.control_persist or DEFAULT_PERSIST)


def uses_control_master(host: str) -> bool:
    """Whether the user's ssh config already sets ControlMaster for ``host`` (``ssh -G``: no connection)."""
    if shutil.which("ssh") is None:
        return False
    try:
        done = subprocess.run(["ssh", "-G", "--", host], capture_output=True, text=True, timeout=10,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and control_master_set(done.stdout)


def control_master_set(ssh_g_output: str) -> bool:
    """Whether ``ssh -G``'s effective configuration turns ControlMaster on (auto, yes, ask, autoask)."""
    settings = dict(line.split(" ", 1) for line in ssh_g_output.splitlines() if " " in line)
    return settings.get("controlmaster", "false").strip() not in ("false", "no")
