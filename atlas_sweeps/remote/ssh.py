"""``SshRemote``: the ``Remote`` seam over ONE authenticated paramiko transport per CLI invocation.

Honours ~/.ssh/config (HostName, User, Port, IdentityFile, IdentitiesOnly, ProxyJump, ProxyCommand) and
the ssh-agent; checks host keys strictly; asks for passwords / one-time codes only when the server wants
them. Scripts, log streams and rsync (through ``Relay``) all open channels on the same transport.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from atlas_sweeps.errors import HostKeyError, RemoteError
from atlas_sweeps.remote.base import CallCounter, RemoteTarget, Result, wrap_for_streaming
from atlas_sweeps.remote.hostkeys import (
    HostKeyVerdict,
    changed_key_message,
    host_key_verdict,
    known_hosts_entry_name,
    known_hosts_line,
    unknown_key_message,
)
from atlas_sweeps.remote.local import run_rsync
from atlas_sweeps.remote.relay import Relay

# sshd's MaxSessions defaults to 10 channels per connection; leave headroom for a stray script.
MAX_CHANNELS = 8
_DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")
_RSA_NAMES = ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")


@dataclass(frozen=True)
class Endpoint:
    """One SSH hop after ~/.ssh/config is applied."""

    alias: str
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    identities_only: bool
    known_hosts: str
    proxy_jump: str | None
    proxy_command: str | None

    @property
    def label(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"


def resolve_endpoint(target: RemoteTarget, config: paramiko.SSHConfig) -> Endpoint:
    """Merge the profile's target with ~/.ssh/config (the profile wins where it says something)."""
    assert target.host
    entry = config.lookup(target.host)
    files = [target.identity_file] if target.identity_file else []
    files += list(entry.get("identityfile", []))
    known = target.known_hosts or (entry.get("userknownhostsfile", "").split() or [None])[0] \
        or "~/.ssh/known_hosts"
    jump = entry.get("proxyjump")
    return Endpoint(
        alias=target.host,
        hostname=entry.get("hostname", target.host),
        port=int(target.port or entry.get("port", 22)),
        user=target.user or entry.get("user") or getpass.getuser(),
        identity_files=tuple(os.path.expanduser(f) for f in files),
        identities_only=entry.get("identitiesonly", "no").lower() == "yes",
        known_hosts=os.path.expanduser(known),
        proxy_jump=None if jump in (None, "none") else jump,
        proxy_command=None if entry.get("proxycommand") in (None, "none") else entry.get("proxycommand"),
    )


def parse_jump(spec: str) -> RemoteTarget:
    """One ProxyJump hop, ``[user@]host[:port]``, as a target."""
    user, _, rest = spec.rpartition("@")
    host, sep, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
    return RemoteTarget(host=host if sep else rest, port=int(port) if sep else None, user=user or None)


def _load_ssh_config() -> paramiko.SSHConfig:
    path = Path.home() / ".ssh" / "config"
    return paramiko.SSHConfig.from_path(str(path)) if path.is_file() else paramiko.SSHConfig()


class SshRemote(CallCounter):
    """The login node over one SSH connection. Build with ``SshRemote.connect``; ``close`` when done."""

    def __init__(self, transports: list[paramiko.Transport], *, label: str) -> None:
        self._transports = transports
        self._transport = transports[-1]
        self.label = label
        self._slots = threading.BoundedSemaphore(MAX_CHANNELS)
        CallCounter.__init__(self)
        self._relay: Relay | None = None

    @classmethod
    def connect(cls, target: RemoteTarget, *, accept_new_host_key: bool = False,
                password_prompt: Callable[[str], str]) -> SshRemote:
        """Connect (through any ProxyJump hops) and authenticate once."""
        config = _load_ssh_config()
        transports: list[paramiko.Transport] = []
        try:
            endpoint = _connect_chain(target, config, transports, accept_new_host_key=accept_new_host_key,
                                      password_prompt=password_prompt)
        except BaseException:
            for transport in reversed(transports):
                transport.close()
            raise
        return cls(transports, label=endpoint.label)

    def _open_channel(self) -> paramiko.Channel:
        self._slots.acquire()
        try:
            return self._transport.open_session(timeout=30)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self._slots.release()
            raise RemoteError(f"could not open a channel to {self.label}: {exc}",
                              hint="the connection dropped or the server limits sessions (MaxSessions); retry") from exc

    def _close_channel(self, channel: paramiko.Channel) -> None:
        channel.close()
        self._slots.release()

    def run_script(self, script: str, *, timeout: float | None = None) -> Result:
        self._count()
        channel = self._open_channel()
        try:
            channel.exec_command("bash -s")
            out: list[bytes] = []
            err: list[bytes] = []
            readers = [threading.Thread(target=_drain, args=(channel.recv, out), daemon=True),
                       threading.Thread(target=_drain, args=(channel.recv_stderr, err), daemon=True)]
            for reader in readers:
                reader.start()
            channel.sendall(script.encode())
            channel.shutdown_write()
            if not channel.status_event.wait(timeout):
                raise RemoteError(f"script on {self.label} timed out after {timeout:g} s",
                                  hint="raise the timeout or check the login node's load")
            for reader in readers:
                reader.join()
            code = channel.recv_exit_status()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise RemoteError(f"lost the connection to {self.label}: {exc}", hint="check the network and retry") from exc
        finally:
            self._close_channel(channel)
        return Result(command=script, exit_code=255 if code < 0 else code,
                      stdout=b"".join(out).decode(errors="replace"), stderr=b"".join(err).decode(errors="replace"))

    def stream_script(self, script: str, *, on_stdout: Callable[[str], None],
                      stop: threading.Event | None = None) -> int:
        self._count()
        channel = self._open_channel()
        try:
            channel.exec_command("bash -s")
            # stdin stays open: closing it is how the remote side learns we left (see wrap_for_streaming).
            channel.sendall(wrap_for_streaming(script).encode())
            threading.Thread(target=_drain, args=(channel.recv_stderr, None), daemon=True).start()
            channel.settimeout(0.2)
            pending = b""
            while True:
                if stop is not None and stop.is_set():
                    return -1
                try:
                    data = channel.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                pending += data
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    on_stdout(line.decode(errors="replace"))
            if pending:
                on_stdout(pending.decode(errors="replace"))
            code = channel.recv_exit_status()
            return 255 if code < 0 else code
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise RemoteError(f"lost the connection to {self.label}: {exc}", hint="check the network and retry") from exc
        finally:
            self._close_channel(channel)

    def rsync(self, args: list[str], *, on_progress: Callable[[str], None] | None = None) -> Result:
        self._count()
        if self._relay is None:
            self._relay = Relay(open_channel=self._open_relay_channel, release_channel=self._slots.release)
        return run_rsync(["rsync", "-e", self._relay.rsh, *args], env=None, on_progress=on_progress)

    def _open_relay_channel(self) -> paramiko.Channel:
        self._slots.acquire()
        try:
            return self._transport.open_session(timeout=30)
        except BaseException:
            self._slots.release()
            raise

    def rsync_path(self, path: str) -> str:
        # The relay ignores the host part; it is only there so rsync treats the path as remote.
        return f"cluster:{path}"

    def close(self) -> None:
        if self._relay is not None:
            self._relay.close()
            self._relay = None
        for transport in reversed(self._transports):
            transport.close()


def _drain(recv: Callable[[int], bytes], sink: list[bytes] | None) -> None:
    with contextlib.suppress(OSError, EOFError):
        while True:
            data = recv(65536)
            if not data:
                return
            if sink is not None:
                sink.append(data)


def _connect_chain(target: RemoteTarget, config: paramiko.SSHConfig, transports: list[paramiko.Transport], *,
                   accept_new_host_key: bool, password_prompt: Callable[[str], str]) -> Endpoint:
    """Connect to ``target``, first through its ProxyJump hops; append each transport to ``transports``."""
    endpoint = resolve_endpoint(target, config)
    sock: Any = None
    if endpoint.proxy_jump:
        for hop in endpoint.proxy_jump.split(","):
            hop_target = parse_jump(hop.strip())
            hop_target = RemoteTarget(host=hop_target.host, port=hop_target.port, user=hop_target.user,
                                      known_hosts=target.known_hosts)
            hop_endpoint = resolve_endpoint(hop_target, config)
            transports.append(_open_transport(hop_endpoint, sock, accept_new_host_key=accept_new_host_key,
                                              password_prompt=password_prompt))
            sock = None
        sock = _jump_channel(transports[-1], endpoint)
    elif endpoint.proxy_command:
        sock = paramiko.ProxyCommand(endpoint.proxy_command)
    transports.append(_open_transport(endpoint, sock, accept_new_host_key=accept_new_host_key,
                                      password_prompt=password_prompt))
    return endpoint


def _jump_channel(jump: paramiko.Transport, endpoint: Endpoint) -> paramiko.Channel:
    try:
        return jump.open_channel("direct-tcpip", (endpoint.hostname, endpoint.port), ("127.0.0.1", 0), timeout=15)
    except (paramiko.SSHException, OSError) as exc:
        raise RemoteError(f"the jump host could not reach {endpoint.hostname}:{endpoint.port}: {exc}",
                          hint="check ProxyJump and HostName in ~/.ssh/config") from exc


def _open_transport(endpoint: Endpoint, sock: Any, *, accept_new_host_key: bool,
                    password_prompt: Callable[[str], str]) -> paramiko.Transport:
    where = f"{endpoint.hostname}:{endpoint.port}"
    if sock is None:
        try:
            sock = socket.create_connection((endpoint.hostname, endpoint.port), timeout=15)
        except OSError as exc:
            raise RemoteError(f"cannot connect to {where}: {exc.strerror or exc}",
                              hint="check host and port in the profile or ~/.ssh/config, and your network/VPN") from exc
    transport = paramiko.Transport(sock)
    try:
        known = _known_keys(endpoint)
        _prefer_key_types(transport, list(known))
        try:
            transport.start_client(timeout=20)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise RemoteError(f"SSH handshake with {where} failed: {exc}",
                              hint="is an SSH server listening there? try `ssh -v` to the same host") from exc
        _check_host_key(transport, endpoint, known, accept_new=accept_new_host_key)
        _authenticate(transport, endpoint, password_prompt)
        transport.set_keepalive(30)
    except BaseException:
        transport.close()
        raise
    return transport


def _known_keys(endpoint: Endpoint) -> dict[str, str]:
    keys = paramiko.HostKeys()
    if os.path.isfile(endpoint.known_hosts):
        try:
            keys.load(endpoint.known_hosts)
        except (OSError, paramiko.SSHException) as exc:
            raise RemoteError(f"cannot read {endpoint.known_hosts}: {exc}", hint="fix or move that file") from exc
    found = keys.lookup(known_hosts_entry_name(endpoint.hostname, endpoint.port)) or {}
    return {name: key.get_base64() for name, key in found.items()}


def _prefer_key_types(transport: paramiko.Transport, known_types: list[str]) -> None:
    """Ask for a host key type we already know, as OpenSSH does, so a known host never looks unknown."""
    if not known_types:
        return
    wanted: list[str] = []
    for name in known_types:
        wanted += list(_RSA_NAMES) if name == "ssh-rsa" else [name]
    options = transport.get_security_options()
    offered = list(options.key_types)
    options.key_types = [k for k in wanted if k in offered] + [k for k in offered if k not in wanted]


def _check_host_key(transport: paramiko.Transport, endpoint: Endpoint, known: dict[str, str], *,
                    accept_new: bool) -> None:
    key = transport.get_remote_server_key()
    key_type, blob = key.get_name(), key.get_base64()
    verdict = host_key_verdict(known, key_type=key_type, key_base64=blob)
    args = dict(key_type=key_type, key_base64=blob, known_hosts=endpoint.known_hosts)
    if verdict is HostKeyVerdict.CHANGED:
        raise HostKeyError(changed_key_message(endpoint.hostname, endpoint.port, **args))
    if verdict is HostKeyVerdict.UNKNOWN:
        if not accept_new:
            raise HostKeyError(unknown_key_message(endpoint.hostname, endpoint.port, **args))
        path = Path(endpoint.known_hosts)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with path.open("a") as handle:
            handle.write(known_hosts_line(endpoint.hostname, endpoint.port, key_type=key_type, key_base64=blob))


def _candidate_keys(endpoint: Endpoint, password_prompt: Callable[[str], str]) -> list[tuple[str, Any]]:
    """(description, loader) pairs in the order OpenSSH would roughly try them."""
    candidates: list[tuple[str, Any]] = [(path, path) for path in endpoint.identity_files if os.path.isfile(path)]
    if not endpoint.identities_only:
        with contextlib.suppress(Exception):
            candidates += [(f"agent key {k.get_name()}", k) for k in paramiko.Agent().get_keys()]
        if not endpoint.identity_files:
            ssh_dir = Path.home() / ".ssh"
            candidates += [(str(ssh_dir / n), str(ssh_dir / n)) for n in _DEFAULT_KEYS if (ssh_dir / n).is_file()]
    return candidates


def _load_key(path: str, password_prompt: Callable[[str], str]) -> paramiko.PKey | None:
    try:
        return paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException:
        return paramiko.PKey.from_path(path, passphrase=password_prompt(f"Passphrase for key {path}: "))
    except (paramiko.SSHException, OSError, ValueError):
        return None


def _authenticate(transport: paramiko.Transport, endpoint: Endpoint, password_prompt: Callable[[str], str]) -> None:
    """Public key(s) first, then a password or keyboard-interactive answers when the server asks (2FA)."""
    user = endpoint.user
    try:
        transport.auth_none(user)
        return
    except paramiko.BadAuthenticationType as exc:
        allowed = list(exc.allowed_types)
    except paramiko.SSHException:
        allowed = ["publickey", "password", "keyboard-interactive"]
    tried: list[str] = []
    if "publickey" in allowed:
        for description, source in _candidate_keys(endpoint, password_prompt):
            key = _load_key(source, password_prompt) if isinstance(source, str) else source
            if key is None:
                continue
            tried.append(description)
            try:
                remaining = transport.auth_publickey(user, key)
            except paramiko.BadAuthenticationType as exc:
                allowed = list(exc.allowed_types)
                break
            except paramiko.AuthenticationException:
                continue
            if transport.is_authenticated():
                return
            allowed = list(remaining)  # partial success: the server wants a second factor
            break
    if "password" in allowed:
        for _ in range(3):
            tried.append("password")
            try:
                transport.auth_password(user, password_prompt(f"{endpoint.label} password: "), fallback=False)
            except paramiko.AuthenticationException:
                continue
            if transport.is_authenticated():
                return
    elif "keyboard-interactive" in allowed:
        tried.append("keyboard-interactive")

        def answer(title: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
            return [password_prompt(prompt) for prompt, _echo in prompts]

        with contextlib.suppress(paramiko.AuthenticationException):
            transport.auth_interactive(user, answer)
            if transport.is_authenticated():
                return
    raise RemoteError(f"{endpoint.label} refused the login (tried: {', '.join(tried) or 'nothing usable'}; "
                      f"server allows: {', '.join(allowed)})",
                      hint="check user and IdentityFile in the profile or ~/.ssh/config, or load your key "
                           "into ssh-agent; `ssh -v` to the same host shows what the server accepts")
