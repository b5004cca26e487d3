"""Where a launch's files live on the cluster (pure). Everything sits under the profile's remote directory:

    snapshots/<launch>/            the code, read-only (hard links to the previous snapshot where unchanged)
    launches/<launch>/<sweep>/     job.sbatch and, for the local backend, runs/<task>.args
    logs/<launch>/<sweep>/         %A_%a.out and %A_%a.err, and %A_%a.exit: the task's exit code, written
                                   by its script as it exits (what status reads where sacct cannot tell);
                                   a packed task's runs: %A_%a.r<run>.out/.err/.exit (launch/packing.py)
    wandb/<launch>/<sweep>/        WANDB_DIR: run files stay outside the shared snapshot
"""

from __future__ import annotations

import getpass
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class LaunchLayout:
    """Remote paths of one launch under ``root``, an absolute path: scripts quote every path, and a quoted
    ``~`` is never expanded (nor does Slurm expand it), so a ``~`` here would name a directory called ``~``."""

    root: str
    launch_id: str

    def __post_init__(self) -> None:
        if not self.root.startswith("/"):
            raise ValueError(f"remote root {self.root!r} is not absolute: resolve it first (resolve_root)")

    @property
    def snapshots(self) -> str:
        return f"{self.root}/snapshots"

    @property
    def snapshot(self) -> str:
        return f"{self.snapshots}/{self.launch_id}"

    @property
    def launch_dir(self) -> str:
        return f"{self.root}/launches/{self.launch_id}"

    def sweep_dir(self, sweep: str) -> str:
        return f"{self.launch_dir}/{sweep}"

    def script(self, sweep: str) -> str:
        return f"{self.sweep_dir(sweep)}/job.sbatch"

    def args_dir(self, sweep: str) -> str:
        return f"{self.sweep_dir(sweep)}/runs"

    def log_dir(self, sweep: str) -> str:
        return f"{self.root}/logs/{self.launch_id}/{sweep}"

    def wandb_dir(self, sweep: str) -> str:
        return f"{self.root}/wandb/{self.launch_id}/{sweep}"

    def log_pattern(self, sweep: str, stream: str) -> str:
        """The ``--output``/``--error`` pattern; ``%A_%a`` is the array job and task id."""
        return f"{self.log_dir(sweep)}/%A_%a.{stream}"


@dataclass(frozen=True)
class RetryLayout(LaunchLayout):
    """A retry round's own job files (when it cannot reuse the launch's: a W&B retry, ``retry --resync``):
    ``launches/<launch>/retry<N>/<sweep>/`` and its logs likewise, run in ``code`` (default: the launch's
    snapshot); its runs' W&B files go with the sweep's own (``sync`` finds them there)."""

    attempt: int = 2
    code: str = ""

    @property
    def snapshot(self) -> str:
        return self.code or super().snapshot

    def sweep_dir(self, sweep: str) -> str:
        return f"{self.launch_dir}/retry{self.attempt}/{sweep}"

    def log_dir(self, sweep: str) -> str:
        return f"{self.root}/logs/{self.launch_id}/retry{self.attempt}/{sweep}"


EXIT_STREAM = "exit"  # <array>_<task>.exit: the exit code the task's script wrote as it exited
RUN_STREAM = "run"  # <array>_<task>.run: the W&B run an agent task is on (its id and parameters)


def exit_files(output_pattern: str, *, job_id: str, stream: str = EXIT_STREAM) -> tuple[str, str]:
    """``(directory, glob)`` of the exit-code files (or ``stream``'s files) of array ``job_id`` whose
    ``--output`` is ``output_pattern``."""
    return posixpath.dirname(output_pattern), f"{job_id}_*.{stream}"


def task_file_lines(text: str, *, job_id: str, stream: str) -> Iterator[tuple[str, str]]:
    """``grep -s ""``'s ``<array>_<rest>.<stream>:<content>`` lines over such files (``exit_files``) of array
    ``job_id``, as ``(rest, content)``: ``rest`` is the task id, or ``<task>.r<run>`` for a packed run."""
    suffix = f".{stream}"
    for line in text.splitlines():
        name, sep, content = line.partition(":")
        stem = name.rsplit("/", 1)[-1]
        if not sep or not stem.endswith(suffix):
            continue
        array, _, rest = stem.removesuffix(suffix).partition("_")
        if array == job_id:
            yield rest, content


def log_path(pattern: str, *, job_id: str, task: int | None) -> str:
    """The real file name of ``pattern`` for one array task (what Slurm writes)."""
    return pattern.replace("%A", job_id).replace("%a", str(task if task is not None else 0)).replace("%j", job_id)


def resolve_root(remote_dir: str, *, home: str) -> str:
    """``remote_dir`` made absolute as the preflight does on the login node: ``~``, ``~/x`` and relative
    paths are under ``home``."""
    if remote_dir == "~":
        return home
    if remote_dir.startswith("~/"):
        return f"{home}/{remote_dir[2:]}"
    return remote_dir if remote_dir.startswith("/") else f"{home}/{remote_dir}"


def guessed_home(user: str | None) -> str:
    """A login node's usual home directory for ``user`` (else ours, as ssh would log in as us): what a
    script is rendered with before the preflight has learnt the real one (a dry run, the preflight's probe)."""
    return f"/home/{user or getpass.getuser()}"


def is_under_home(remote_dir: str) -> bool:
    """Whether ``remote_dir`` depends on the remote home directory (known only on the login node)."""
    return not remote_dir.startswith("/")
