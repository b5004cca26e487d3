"""The one remote call made before anything is created (pure script + parser): login works, the remote
directory is writable, the interpreter resolves after the profile's set-up lines, ``sbatch --test-only``
accepts a rendered script, Slurm's ``MaxArraySize`` and ``MinJobAge``, where the launch's code snapshot goes
and whether it is complete (the first step of a snapshot, remote/snapshot.py), and on resume which of its
job arrays the cluster knows."""

from __future__ import annotations

import base64
import shlex
from dataclasses import dataclass, field, replace

from atlas_sweeps.launch.resume import ClusterJobs, parse_min_job_age, parse_rows
from atlas_sweeps.remote.protocol import EMIT_FUNCTION, parse_facts
from atlas_sweeps.remote.snapshot import SnapshotSite, parse_site, site_lines
from atlas_sweeps.slurm.sbatch import DEFAULT_MAX_ARRAY_SIZE, parse_max_array_size, sbatch_test_only_command
from atlas_sweeps.slurm.scontrol import show_config_command


@dataclass(frozen=True)
class PreflightReport:
    """What the login node said; ``problems`` are one-line messages, empty when all is well."""

    root: str
    max_array_size: int
    python: str | None
    problems: tuple[str, ...]
    complete: bool = False  # the script ran to its end (its last line answered)
    site: SnapshotSite | None = None  # where the snapshot goes and its state (when a snapshot was named)
    cluster_jobs: ClusterJobs = field(default_factory=ClusterJobs)  # on resume

    @property
    def snapshot(self) -> str | None:
        """The snapshot's state: "frozen" (synced completely), "writable" (a sync cut short) or "missing"."""
        return self.site.state if self.site else None


def preflight_script(*, remote_dir: str, setup: tuple[str, ...], interpreter: str, need: str,
                     test_script: str, snapshot_name: str | None = None, previous_snapshot: str | None = None,
                     job_lookup: tuple[str, ...] = (), extra_checks: tuple[str, ...] = ()) -> str:
    """The bash script. ``need`` is the command jobs must find (the interpreter, or ``wandb``);
    ``extra_checks`` are the backend's own bash lines (they ``emit problem`` on failure). ``snapshot_name``
    is the launch's snapshot to prepare and inspect, ``previous_snapshot`` the one to hard-link to if it is
    there; on resume ``job_lookup`` lists the launch's arrays (``resume.lookup_lines``)."""
    lines = [
        EMIT_FUNCTION,
        f"remote_dir={shlex.quote(remote_dir)}",
        'case "$remote_dir" in',
        '  "~") root="$HOME" ;;',
        '  "~/"*) root="$HOME/${remote_dir#\\~/}" ;;',
        '  /*) root="$remote_dir" ;;',
        '  *) root="$HOME/$remote_dir" ;;',
        "esac",
        'emit root "$root"',
        'if ! err=$(mkdir -p "$root" 2>&1); then emit problem "cannot create $root: $err";',
        'elif [ ! -w "$root" ]; then emit problem "$root is not writable by $(id -un)";',
        *(["else", *site_lines('"$root/snapshots"', name=snapshot_name, previous=previous_snapshot)]
          if snapshot_name is not None else []),
        "fi",
        "if ! command -v sbatch >/dev/null 2>&1; then emit problem \"sbatch is not on PATH on the login node\"; fi",
        "found=$(",
        "  exec 3>&1 1>/dev/null 2>&1  # set-up lines may print; only fd 3 answers",
        *(f"  {line}" for line in setup),
        f"  command -v {shlex.quote(need)} >&3",
        ")",
        f"if [ -z \"$found\" ]; then emit problem {shlex.quote(f'{need!r} is not found in a job after the set-up lines')}; "
        "else emit python \"$found\"; fi",
        'tmp=$(mktemp -d)',
        f"printf '%s' {base64.b64encode(test_script.encode()).decode()} | base64 -d > \"$tmp/test.sbatch\"",
        'if ! out=$(cd "$tmp" && ' + sbatch_test_only_command('"$tmp/test.sbatch"', job_name="atlas-preflight")
        + ' 2>&1); then emit problem "sbatch --test-only rejected the job script: $out"; fi',
        'rm -rf "$tmp"',
        f'emit config "$({show_config_command()})"',
        *extra_checks,
    ]
    lines += [*job_lookup, "emit complete yes"]  # absent when the connection died on the way
    return "\n".join(lines) + "\n"


def parse_preflight(stdout: str) -> PreflightReport:
    """The report from the script's ``ATLAS`` lines."""
    root, python, max_array = "", None, DEFAULT_MAX_ARRAY_SIZE
    problems: list[str] = []
    snapshot: dict[str, str] = {}
    complete = False
    jobs = ClusterJobs()
    for key, value in parse_facts(stdout):
        if key == "root":
            root = value
        elif key == "problem":
            problems.append(" ".join(value.split()))
        elif key == "python":
            python = value.strip()
        elif key == "config":
            max_array = parse_max_array_size(value)
            jobs = replace(jobs, min_job_age=parse_min_job_age(value))
        elif key in ("snapshots", "snapshot", "previous", "rsync"):
            snapshot[key] = value
        elif key == "complete":
            complete = True
        elif key in ("jobs_squeue", "jobs_sacct"):
            jobs = replace(jobs, **{key[5:]: parse_rows(value)})
        elif key in ("jobs_squeue_error", "jobs_sacct_error"):
            jobs = replace(jobs, **{key[5:]: value})
    if not root:
        problems.insert(0, "the login node did not answer the preflight script")
    return PreflightReport(root=root, max_array_size=max_array, python=python, problems=tuple(problems),
                           complete=complete, site=parse_site(snapshot), cluster_jobs=replace(jobs, answered=complete))
