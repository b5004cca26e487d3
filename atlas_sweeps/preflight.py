"""The one remote call made before anything is created (pure script + parser): login works, the remote
directory is writable, the interpreter resolves after the profile's set-up lines, ``sbatch --test-only``
accepts a rendered script, Slurm's ``MaxArraySize``, and (on resume) the launch's jobs already known."""

from __future__ import annotations

import base64
import shlex
from dataclasses import dataclass, field

from atlas_sweeps.remote_protocol import EMIT_FUNCTION, parse_facts
from atlas_sweeps.sbatch import DEFAULT_MAX_ARRAY_SIZE, parse_max_array_size


@dataclass(frozen=True)
class PreflightReport:
    """What the login node said; ``problems`` are one-line messages, empty when all is well."""

    root: str
    max_array_size: int
    python: str | None
    problems: tuple[str, ...]
    existing_jobs: dict[str, str] = field(default_factory=dict)  # job name -> job id


def preflight_script(*, remote_dir: str, setup: tuple[str, ...], interpreter: str, need: str,
                     test_script: str, job_names: tuple[str, ...] = (),
                     extra_checks: tuple[str, ...] = ()) -> str:
    """The bash script. ``need`` is the command jobs must find (the interpreter, or ``wandb``);
    ``extra_checks`` are the backend's own bash lines (they ``emit problem`` on failure)."""
    names = ",".join(job_names)
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
        'elif [ ! -w "$root" ]; then emit problem "$root is not writable by $(id -un)"; fi',
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
        'if ! out=$(cd "$tmp" && sbatch --test-only --job-name=atlas-preflight --output=/dev/null '
        '"$tmp/test.sbatch" 2>&1); then emit problem "sbatch --test-only rejected the job script: $out"; fi',
        'rm -rf "$tmp"',
        'emit config "$(scontrol show config 2>/dev/null | grep -i MaxArraySize)"',
        *extra_checks,
    ]
    if names:
        q = shlex.quote(names)
        lines += [
            f"emit squeue \"$(squeue -h --name={q} -o '%F|%j' 2>/dev/null | sort -u)\"",
            f"emit sacct \"$(sacct -X -n -P --name={q} -S now-30days -o JobID,JobName 2>/dev/null)\"",
        ]
    return "\n".join(lines) + "\n"


def parse_preflight(stdout: str) -> PreflightReport:
    """The report from the script's ``ATLAS`` lines."""
    root, python, max_array = "", None, DEFAULT_MAX_ARRAY_SIZE
    problems: list[str] = []
    existing: dict[str, str] = {}
    for key, value in parse_facts(stdout):
        if key == "root":
            root = value
        elif key == "problem":
            problems.append(" ".join(value.split()))
        elif key == "python":
            python = value.strip()
        elif key == "config":
            max_array = parse_max_array_size(value)
        elif key in ("squeue", "sacct"):
            for line in value.splitlines():
                job_id, _, name = line.partition("|")
                if name and job_id:
                    existing.setdefault(name.strip(), job_id.split("_", 1)[0].strip())
    if not root:
        problems.insert(0, "the login node did not answer the preflight script")
    return PreflightReport(root=root, max_array_size=max_array, python=python, problems=tuple(problems),
                           existing_jobs=existing)
