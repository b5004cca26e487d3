"""Cluster users, their SSH keys (the cluster user also has a passphrase-protected one) and the 2FA user's
password; the login node's host key and known_hosts."""

from __future__ import annotations

import pwd
import secrets
import subprocess
from pathlib import Path

from atlas_sweeps.errors import SandboxError
from atlas_sweeps.sandbox.config import SandboxSettings, known_hosts_line
from atlas_sweeps.sandbox.paths import SandboxPaths


def _run(cmd: list[str], *, input: str | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, input=input)
    if proc.returncode != 0:
        raise SandboxError(f"`{' '.join(cmd[:3])}` failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def ensure_user(name: str) -> bool:
    """Create an unprivileged user with a bash login shell and a home; returns True when created. A
    useradd'ed account is locked ('!'), and sshd without PAM refuses even key logins to locked accounts,
    so the password field becomes '*' (no password, not locked)."""
    created = False
    if not user_exists(name):
        _run(["useradd", "--create-home", "--shell", "/bin/bash", "--user-group", name])
        created = True
        remove_stale_files(name, uid=pwd.getpwnam(name).pw_uid)
    shadow = _run(["getent", "shadow", name]).split(":")
    if len(shadow) > 1 and shadow[1].startswith("!"):
        _run(["usermod", "-p", "*", name])
    home = Path(pwd.getpwnam(name).pw_dir)
    if home.exists():
        home.chmod(home.stat().st_mode | 0o011)  # others may traverse (the 2FA user reads atlas's venv)
    return created


def remove_stale_files(name: str, *, uid: int, tmp: Path = Path("/tmp")) -> list[Path]:
    """Remove ``/tmp/*.<name>.log`` files an earlier user of the same name left (another uid): wandb's CLI
    writes ``debug-cli.<user>.log`` there and fails with a permission error on someone else's."""
    removed = []
    for path in tmp.glob(f"*.{name}.log"):
        try:
            if path.is_file() and not path.is_symlink() and path.stat().st_uid != uid:
                path.unlink()
                removed.append(path)
        except OSError:
            continue
    return removed


def ensure_keypair(path: Path, *, comment: str) -> bool:
    """An ed25519 key pair at ``path`` and ``path.pub``; returns True when generated."""
    if path.exists() and path.with_name(path.name + ".pub").exists():
        return False
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".pub").unlink(missing_ok=True)
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    path.chmod(0o600)
    return True


def ensure_passphrase_keypair(path: Path, passphrase_file: Path, *, comment: str) -> bool:
    """An ed25519 key pair at ``path`` whose private half is encrypted with a random passphrase, kept 0600
    in ``passphrase_file``; returns True when generated. Made in-process, so the passphrase is in no argv."""
    public = path.with_name(path.name + ".pub")
    if path.exists() and public.exists() and passphrase_file.exists():
        return False
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    passphrase = secrets.token_urlsafe(18)
    key = Ed25519PrivateKey.generate()
    for target in (passphrase_file, path):
        target.unlink(missing_ok=True)
        target.touch(mode=0o600)
    passphrase_file.write_text(passphrase + "\n")
    path.write_bytes(key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.OpenSSH,
                                       ser.BestAvailableEncryption(passphrase.encode())))
    openssh = key.public_key().public_bytes(ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH).decode()
    public.write_text(f"{openssh} {comment}\n")
    return True


def public_key(path: Path) -> str:
    return path.with_name(path.name + ".pub").read_text().strip()


def ensure_password(user: str, paths: SandboxPaths) -> str:
    """The user's random password, kept 0600 in the sandbox dir, and set in /etc/shadow."""
    pw_file = paths.password_file(user)
    if pw_file.exists() and pw_file.read_text().strip():
        password = pw_file.read_text().strip()
    else:
        password = secrets.token_urlsafe(18)
        pw_file.touch(mode=0o600)
        pw_file.write_text(password + "\n")
    pw_file.chmod(0o600)
    _run(["chpasswd"], input=f"{user}:{password}\n")
    return password


def ensure_users_and_keys(settings: SandboxSettings, paths: SandboxPaths) -> None:
    """Users, key pairs, authorized keys (kept in the sandbox, named by sshd_config), host key and
    known_hosts entry."""
    paths.keys.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths.keys.chmod(0o700)
    paths.authorized_keys_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    ensure_keypair(paths.host_key, comment="atlas-sweeps-sandbox-host")
    ensure_passphrase_keypair(paths.passphrase_key(settings.user), paths.key_passphrase_file(settings.user),
                              comment=f"{settings.user}-passphrase@atlas-sweeps-sandbox")
    for user in settings.users:
        ensure_user(user)
        ensure_keypair(paths.user_key(user), comment=f"{user}@atlas-sweeps-sandbox")
        keys = [paths.user_key(user)] + ([paths.passphrase_key(user)] if user == settings.user else [])
        auth = paths.authorized_keys_dir / user
        _write_if_changed(auth, "".join(public_key(key) + "\n" for key in keys), mode=0o644)
    ensure_password(settings.user_2fa, paths)
    line = known_hosts_line(port=settings.ssh_port, host_public_key=public_key(paths.host_key))
    _write_if_changed(paths.known_hosts, line, mode=0o644)


def _write_if_changed(path: Path, text: str, *, mode: int) -> bool:
    if path.exists() and path.read_text() == text:
        path.chmod(mode)
        return False
    path.write_text(text)
    path.chmod(mode)
    return True
