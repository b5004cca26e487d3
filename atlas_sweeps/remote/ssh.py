"""``SshRemote``: the ``Remote`` seam over ONE authenticated SSH connection per CLI invocation.

fabric's ``Connection`` does the connecting: ~/.ssh/config and /etc/ssh/ssh_config (HostName, User, Port,
IdentityFile, ProxyJump chains, ProxyCommand, ConnectTimeout). We add what it lacks: strict host keys (its
client would auto-add unknown ones) and an OpenSSH-like login (agent keys first, an encrypted key's
passphrase asked once, then a password or one-time code when the server wants a second factor). Scripts,
log streams and rsync (through ``Relay``) all open paramiko channels on the one transport.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shlex
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
from fabric import Config, Connection
from paramiko.auth_strategy import AuthStrategy
from paramiko.hostkeys import InvalidHostKey

from atlas_sweeps.errors import AtlasError, ConfigError, HostKeyError, RemoteError, UsageError
from atlas_sweeps.remote.base import CallCounter, LineSplitter, RemoteTarget, Result, wrap_for_streaming
from atlas_sweeps.remote.hostkeys import append_known_host, changed_key_message, unknown_key_message
from atlas_sweeps.remote.local import run_rsync
from atlas_sweeps.remote.relay import Relay

# sshd's MaxSessions defaults to 10 channels per connection; leave headroom for a stray script.
MAX_CHANNELS = 8
_DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")
Prompt = Callable[[str], str]


def connection_for(target: RemoteTarget, *, ssh_config: paramiko.SSHConfig | None = None) -> Connection:
    """fabric's (unopened) Connection for ``target``; the profile wins over ssh_config where it says something."""
    config = Config(ssh_config=ssh_config, overrides={"timeouts": {"connect": 15}})
    conn = Connection(target.host, user=target.user, port=target.port, config=config)
    jumps = conn.ssh_config.get("proxyjump", "")
    if "," in jumps or jumps.lower() == "none":
        # fabric chains `ProxyJump a,b` as b then a (fabric#2203; OpenSSH goes through a first), and would
        # take `ProxyJump none` (no jump) for a host named "none".
        gateway = None
        for hop in jumps.split(",") if "," in jumps else []:
            gateway = Connection(hop.strip(), config=config.clone(), gateway=gateway)
        conn.gateway = gateway or conn.ssh_config.get("proxycommand")
    return conn


def hops(conn: Connection) -> list[Connection]:
    """The connection and its ProxyJump gateways, target first (a ProxyCommand gateway is a string)."""
    chain = [conn]
    while isinstance(chain[-1].gateway, Connection):
        chain.append(chain[-1].gateway)
    return chain


def identity_files(conn: Connection, profile_file: str | None) -> list[str]:
    """Key files to try after the agent's: the profile's, then ssh_config's, else the default ~/.ssh ones."""
    files = [profile_file] if profile_file else []
    files += list(conn.ssh_config.get("identityfile", []))
    if not files:
        files = [str(Path.home() / ".ssh" / name) for name in _DEFAULT_KEYS]
    return [os.path.expanduser(f) for f in files]


class SshRemote(CallCounter):
    """The login node over one SSH connection. Build with ``SshRemote.connect``; ``close`` when done."""

    def __init__(self, chain: list[Connection]) -> None:
        self._chain = chain
        self._transport: paramiko.Transport = chain[0].transport
        self.label = _label(chain[0])
        self._slots = threading.BoundedSemaphore(MAX_CHANNELS)
        CallCounter.__init__(self)
        self._relay: Relay | None = None

    @classmethod
    def connect(cls, target: RemoteTarget, *, accept_new_host_key: bool = False,
                password_prompt: Prompt | None = None) -> SshRemote:
        """Connect (through any ProxyJump hops) and authenticate once; ``password_prompt`` asks on a terminal."""
        conn = connection_for(target)
        known_hosts = os.path.expanduser(target.known_hosts or (
            conn.ssh_config.get("userknownhostsfile", "").split() or ["~/.ssh/known_hosts"])[0])
        chain = hops(conn)
        unlocked: dict[str, paramiko.PKey] = {}  # keys decrypted in this invocation, shared by all hops
        for hop in chain:
            hop.client.set_missing_host_key_policy(_StrictPolicy(hop, known_hosts, accept_new=accept_new_host_key))
            if os.path.isfile(known_hosts):
                try:
                    hop.client.load_host_keys(known_hosts)
                except (OSError, paramiko.SSHException, InvalidHostKey) as exc:
                    raise ConfigError(f"not a usable known_hosts file: {getattr(exc, 'line', exc)!s:.80}",
                                      path=known_hosts, hint="fix or remove that line") from None
            files = identity_files(hop, target.identity_file if hop is conn else None)
            hop.connect_kwargs = {"auth_strategy": _Login(hop, files, password_prompt, unlocked)}
        try:
            _open(conn, chain, known_hosts)
        except BaseException:
            for hop in chain:
                hop.close()
            raise
        return cls(chain)

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
            splitter = LineSplitter()
            while True:
                if stop is not None and stop.is_set():
                    return -1
                try:
                    data = channel.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                for line in splitter.feed(data):
                    on_stdout(line)
            for line in splitter.close():
                on_stdout(line)
            code = channel.recv_exit_status()
            return 255 if code < 0 else code
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise RemoteError(f"lost the connection to {self.label}: {exc}", hint="check the network and retry") from exc
        finally:
            self._close_channel(channel)

    def rsync(self, args: list[str], *, on_progress: Callable[[str], None] | None = None) -> Result:
        self._count()
        if self._relay is None:
            self._relay = Relay(open_channel=self._open_channel, release_channel=self._slots.release)
        return run_rsync(["rsync", "-e", self._relay.rsh, *args], env=None, on_progress=on_progress)

    def rsync_path(self, path: str) -> str:
        # The relay ignores the host part; it is only there so rsync treats the path as remote.
        return f"cluster:{path}"

    def describe(self) -> str:
        return f"paramiko session to {self.label}"

    def close(self) -> None:
        if self._relay is not None:
            self._relay.close()
            self._relay = None
        for hop in self._chain:
            hop.close()


def _label(conn: Connection) -> str:
    return f"{conn.user}@{conn.host}:{conn.port}"


def _drain(recv: Callable[[int], bytes], sink: list[bytes] | None) -> None:
    with contextlib.suppress(OSError, EOFError):
        while True:
            data = recv(65536)
            if not data:
                return
            if sink is not None:
                sink.append(data)


def _open(conn: Connection, chain: list[Connection], known_hosts: str) -> None:
    """fabric opens the gateways and the connection; its and paramiko's errors become one-line ones."""
    where = f"{conn.host}:{conn.port}"
    try:
        conn.open()
    except AtlasError:
        raise
    except paramiko.BadHostKeyException as exc:  # a key of that host is known and this one differs
        hop = next((h for h in chain if h.host == exc.hostname), conn)
        raise HostKeyError(changed_key_message(hop.host, hop.port, key_type=exc.key.get_name(),
                                               key_base64=exc.key.get_base64(), known_hosts=known_hosts)) from None
    except (paramiko.SSHException, EOFError) as exc:
        raise RemoteError(f"SSH connection to {where} failed: {exc}",
                          hint="is an SSH server listening there? try `ssh -v` to the same host") from exc
    except OSError as exc:
        raise RemoteError(f"cannot connect to {where}: {exc.strerror or exc}",
                          hint="check host and port in the profile or ~/.ssh/config, and your network/VPN") from exc
    conn.transport.set_keepalive(30)


class _StrictPolicy(paramiko.MissingHostKeyPolicy):
    """Refuses a host whose key is not in known_hosts; records it only with --accept-new-host-key.
    (paramiko itself refuses a changed key, with BadHostKeyException, before asking this policy.)"""

    def __init__(self, conn: Connection, known_hosts: str, *, accept_new: bool) -> None:
        self._conn, self._known_hosts, self._accept_new = conn, known_hosts, accept_new

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        key_type, blob = key.get_name(), key.get_base64()
        if not self._accept_new:
            raise HostKeyError(unknown_key_message(self._conn.host, self._conn.port, key_type=key_type,
                                                   key_base64=blob, known_hosts=self._known_hosts))
        append_known_host(Path(self._known_hosts), hostname, key_type=key_type, key_base64=blob)


def _ask(prompt: Prompt | None, text: str, *, missing: AtlasError) -> str:
    """``prompt(text)``, or ``missing`` raised when there is no terminal to ask on (getpass would fall back
    to an echoing stdin: its warning is made an error here, so nothing is read from a pipe)."""
    if prompt is None:
        raise missing
    with warnings.catch_warnings():
        warnings.simplefilter("error", getpass.GetPassWarning)
        try:
            return prompt(text)
        except (EOFError, getpass.GetPassWarning):
            raise missing from None


class _Login(AuthStrategy):
    """Logs in as OpenSSH does: agent keys, then key files (an encrypted one's passphrase asked on the terminal
    once per invocation), then a password or keyboard-interactive answers when the server asks (2FA)."""

    def __init__(self, conn: Connection, files: list[str], prompt: Prompt | None,
                 unlocked: dict[str, paramiko.PKey]) -> None:
        super().__init__(ssh_config=conn.ssh_config)
        self.user, self.label = conn.user, _label(conn)
        self.files, self.prompt, self.unlocked = files, prompt, unlocked
        self.identities_only = conn.ssh_config.get("identitiesonly", "no").lower() == "yes"

    def authenticate(self, transport: paramiko.Transport) -> list[str]:
        try:
            transport.auth_none(self.user)
            return []
        except paramiko.BadAuthenticationType as exc:
            allowed = list(exc.allowed_types)
        except paramiko.SSHException:
            allowed = ["publickey", "password", "keyboard-interactive"]
        tried: list[str] = []
        if "publickey" in allowed:
            for description, key in self._keys():
                tried.append(description)
                try:
                    remaining = transport.auth_publickey(self.user, key)
                except paramiko.BadAuthenticationType as exc:
                    allowed = list(exc.allowed_types)
                    break
                except paramiko.AuthenticationException:
                    continue
                if transport.is_authenticated():
                    return []
                allowed = list(remaining)  # partial success: the server wants a second factor
                break
        if "password" in allowed or "keyboard-interactive" in allowed:
            tried.append("password" if "password" in allowed else "keyboard-interactive")
            if self._second_factor(transport, password="password" in allowed):
                return []
        raise RemoteError(f"{self.label} refused the login (tried: {', '.join(tried) or 'nothing usable'}; "
                          f"server allows: {', '.join(allowed)})",
                          hint="check user and IdentityFile in the profile or ~/.ssh/config, or load your key "
                               "with `ssh-add`; `ssh -v` to the same host shows what the server accepts")

    def _keys(self) -> Iterator[tuple[str, paramiko.PKey]]:
        """Agent keys first (under IdentitiesOnly only those of the key files), then the key files the agent
        does not hold, each loaded only when reached."""
        file_blobs = {_public_blob(path) for path in self.files} - {None}
        offered: set[str] = set()
        agent = paramiko.Agent()
        try:
            try:
                agent_keys = list(agent.get_keys())
            except (paramiko.SSHException, OSError):
                agent_keys = []  # a stale SSH_AUTH_SOCK: as without an agent
            for key in agent_keys:
                if not self.identities_only or key.get_base64() in file_blobs:
                    offered.add(key.get_base64())
                    yield f"agent key {key.get_name()}", key
        finally:
            agent.close()
        for path in self.files:
            if os.path.isfile(path) and _public_blob(path) not in offered:
                loaded = self._load(path)
                if loaded is not None:
                    yield path, loaded

    def _load(self, path: str) -> paramiko.PKey | None:
        if path in self.unlocked:
            return self.unlocked[path]
        hint = f"or load it once with `ssh-add {shlex.quote(path)}` (ssh-agent keeps it for later commands)"
        try:
            key = paramiko.PKey.from_path(path)
        except TypeError:  # encrypted: cryptography wants the passphrase
            passphrase = _ask(self.prompt, f"Enter passphrase for key '{path}':", missing=UsageError(
                f"the key {path} is passphrase-protected, no ssh-agent holds it and there is no terminal to ask",
                hint=f"run from a terminal, {hint}"))
            if not passphrase:
                return None  # as OpenSSH: an empty answer skips the key
            try:
                key = paramiko.PKey.from_path(path, password=passphrase.encode())
            except (ValueError, TypeError, paramiko.SSHException):
                raise UsageError(f"wrong passphrase for the key {path}", hint=f"try again, {hint}") from None
        except (OSError, ValueError, paramiko.SSHException):
            return None  # unreadable, or not a key paramiko can use
        self.unlocked[path] = key
        return key

    def _second_factor(self, transport: paramiko.Transport, *, password: bool) -> bool:
        missing = RemoteError(f"{self.label} asked for a password and no prompt is available",
                              hint="run from a terminal or set up key-based login")
        if password:
            for _ in range(3):
                try:
                    transport.auth_password(self.user, _ask(self.prompt, f"{self.label} password: ", missing=missing),
                                            fallback=False)
                except paramiko.AuthenticationException:
                    continue
                if transport.is_authenticated():
                    return True
            return False

        def answer(title: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
            return [_ask(self.prompt, prompt, missing=missing) for prompt, _echo in prompts]

        with contextlib.suppress(paramiko.AuthenticationException):
            transport.auth_interactive(self.user, answer)
        return transport.is_authenticated()


def _public_blob(path: str) -> str | None:
    """The base64 public key in ``path``.pub (readable without the passphrase), if there is one."""
    with contextlib.suppress(OSError, IndexError):
        return Path(path + ".pub").read_text().split()[1]
    return None
