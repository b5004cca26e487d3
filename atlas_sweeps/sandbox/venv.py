"""The cluster user's own Python venv with wandb, as a researcher has on a real cluster."""

from __future__ import annotations

import pwd
import shutil
import subprocess
from pathlib import Path

from atlas_sweeps.errors import SandboxError

WANDB_VERSION = "0.31.0"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, not whatever python runs this tool


def venv_path(user: str) -> Path:
    return Path(pwd.getpwnam(user).pw_dir) / "venv"


def has_package(venv: Path, name: str, version: str) -> bool:
    """True when the venv's site-packages holds ``name==version`` (read from its dist-info, no python)."""
    return any(venv.glob(f"lib/python3*/site-packages/{name}-{version}.dist-info/METADATA"))


def _as_user(user: str, cmd: list[str]) -> None:
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    proc = subprocess.run([runuser, "-u", user, "--", *cmd], capture_output=True, text=True,
                          cwd="/", env={"PATH": "/usr/bin:/bin", "HOME": str(Path(pwd.getpwnam(user).pw_dir)),
                                        "LANG": "C.UTF-8"})
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise SandboxError(f"`{' '.join(cmd[:4])}` as {user} failed: {tail}")


def ensure_user_venv(user: str, *, wandb_version: str = WANDB_VERSION) -> bool:
    """Create ``~user/venv`` with Debian's python and pip-install wandb as that user; returns True when it
    had to install. Files stay world-readable so the 2FA user can use it too."""
    venv = venv_path(user)
    if (venv / "bin" / "python").exists() and has_package(venv, "wandb", wandb_version):
        return False
    if not (venv / "bin" / "python").exists():
        _as_user(user, [SYSTEM_PYTHON, "-m", "venv", str(venv)])
    _as_user(user, [str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", "-q",
                    f"wandb=={wandb_version}"])
    return True
