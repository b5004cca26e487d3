"""The sandbox node's GPUs without GPUs (pure rendering; the device files are made by ``make_gpu_files``).

Slurm 22.05 and 24.11 accept a gres.conf ``File=`` that is any character device: the sandbox makes one per
"GPU" (device number 1:3, what /dev/null is) with ``AutoDetect=off`` and no cgroup device constraint
(``TaskPlugin=task/none``), so ``--gres=gpu:N``/``--gpus`` allocate real Slurm GPUs and Slurm sets
``CUDA_VISIBLE_DEVICES``. (A regular file is accepted too, with "not a valid character or block device"
in slurmd's log; that is the fallback where mknod is refused.)

Everything reads ``slurm.conf.d/daemons.conf``: the GPU lines, then an ``Include`` of slurm.conf, which
stays as an earlier version wrote it, so a sandbox ``up`` of a version that knows no GPUs finds nothing
changed and restarts nothing (running jobs of other test sessions live on). The daemons get it with ``-f``;
the cluster users' sessions through the first line of their ``~/.bashrc`` (Debian's bash reads it for every
command run through sshd, after sshd_config's ``SetEnv SLURM_CONF=slurm.conf``): clients check
``--gres``/``--gpus`` against their own config's GresTypes. gres.conf sits beside daemons.conf, where slurmd
looks for it."""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

GPUS = 4
DAEMONS_DIR = "slurm.conf.d"  # under the directory of slurm.conf; its path starts with slurm.conf's own
DAEMONS_CONF = "daemons.conf"
GRES_CONF = "gres.conf"
_NULL_DEVICE = (1, 3)


def gpu_files(directory: Path | str, count: int = GPUS) -> list[str]:
    """The device files standing for the node's GPUs: ``DIR/gpu0`` ... ``DIR/gpu{count-1}``."""
    return [f"{directory}/gpu{i}" for i in range(count)]


def render_daemons_conf(slurm_conf: str, *, count: int = GPUS) -> str:
    """The daemons' slurm.conf: GresTypes and a node default of ``count`` GPUs, then slurm.conf itself
    (``NodeName=DEFAULT`` must come before the node's line to apply to it)."""
    return f"""\
# The sandbox daemons' config: the node's GPUs, then slurm.conf; generated, do not edit.
GresTypes=gpu
NodeName=DEFAULT Gres=gpu:{count}
Include {slurm_conf}
"""


def render_gres_conf(files: list[str]) -> str:
    """gres.conf: one GPU per device file, nothing detected (there is no NVML here)."""
    lines = "".join(f"Name=gpu File={f}\n" for f in files)
    return f"# The sandbox node's GPUs, backed by device files; generated, do not edit.\nAutoDetect=off\n{lines}"


BASHRC_MARK = "# atlas-sweeps sandbox: Slurm with the node's GPUs"


def bashrc_with_slurm_conf(text: str, slurm_conf: str) -> str:
    """``text`` (a ~/.bashrc) with our ``export SLURM_CONF=...`` as its first line, once: first, because
    Debian's .bashrc returns early for non-interactive shells."""
    kept = [ln for ln in text.splitlines(keepends=True) if not ln.rstrip().endswith(BASHRC_MARK)]
    return f"export SLURM_CONF={shlex.quote(slurm_conf)}  {BASHRC_MARK}\n" + "".join(kept)


def point_bashrc_at(home: Path, slurm_conf: str) -> bool:
    """Rewrite ``home``/.bashrc with ``bashrc_with_slurm_conf`` in place (its owner stays); returns True
    when it changed."""
    path = home / ".bashrc"
    old = path.read_text() if path.exists() else ""
    new = bashrc_with_slurm_conf(old, slurm_conf)
    if new == old:
        return False
    with open(path, "w") as handle:
        handle.write(new)
    return True


def make_gpu_files(paths: list[Path]) -> list[Path]:
    """Create each missing device file (a character device 1:3, else a regular file where mknod is not
    allowed); returns the ones it created."""
    made = []
    for path in paths:
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(*_NULL_DEVICE))
        except PermissionError:
            path.touch(mode=0o666)
        path.chmod(0o666)
        made.append(path)
    return made


__all__ = ["BASHRC_MARK", "DAEMONS_CONF", "DAEMONS_DIR", "GPUS", "GRES_CONF", "bashrc_with_slurm_conf", "gpu_files",
           "make_gpu_files", "point_bashrc_at", "render_daemons_conf", "render_gres_conf"]
