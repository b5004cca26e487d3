"""The one remote call that writes every file of a launch and submits every job (pure script + parser).
It stops at the first failed ``sbatch``, so what was submitted is exactly what it reported."""

from __future__ import annotations

import base64
import io
import shlex
import tarfile
from dataclasses import dataclass

from atlas_sweeps.jobs import PreparedSweep
from atlas_sweeps.remote_protocol import EMIT_FUNCTION, parse_line
from atlas_sweeps.sbatch import parse_sbatch_parsable


@dataclass(frozen=True)
class SubmitEvent:
    """One submission's outcome: a job id, or sbatch's error message."""

    key: str
    job_id: str | None
    error: str | None


def _tarball(files: dict[str, bytes], *, root: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for path, data in sorted(files.items()):
            rel = path[len(root):].lstrip("/") if path.startswith(root + "/") else path.lstrip("/")
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            info.mode = 0o755 if path.endswith(".sbatch") else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def submit_script(sweeps: list[PreparedSweep], *, root: str, skip: frozenset[str] = frozenset(),
                  extra_dirs: tuple[str, ...] = ()) -> str:
    """Bash that unpacks all scripts and argument files, makes the log and W&B directories, then calls
    ``sbatch`` for every submission whose key is not in ``skip``, reporting each as it goes."""
    files: dict[str, bytes] = {}
    dirs: set[str] = set(extra_dirs)
    for sweep in sweeps:
        files[sweep.script_path] = sweep.script_text.encode()
        files.update(sweep.files)
        dirs.add(sweep.log_dir)
    payload = base64.encodebytes(_tarball(files, root=root)).decode()
    lines = [
        EMIT_FUNCTION,
        "set -u",
        "umask 022",
        f"root={shlex.quote(root)}",
        'mkdir -p "$root" || exit 1',
        "base64 -d <<'ATLAS_PAYLOAD' | tar -xzf - -C \"$root\" || { emit fatal 'could not unpack the job files'; exit 1; }",
        payload.rstrip("\n"),
        "ATLAS_PAYLOAD",
        "mkdir -p " + " ".join(shlex.quote(d) for d in sorted(dirs)) + " || { emit fatal 'could not create log directories'; exit 1; }",
        'errf=$(mktemp)',
        "submit() {",
        '  local key=$1; shift',
        '  if out=$("$@" 2>"$errf"); then emit "submitted:$key" "$out"',
        '  else rc=$?; emit "failed:$key" "$(cat "$errf") (sbatch exit $rc)"; rm -f "$errf"; exit 3; fi',
        "}",
    ]
    for sweep in sweeps:
        for sub in sweep.submissions:
            if sub.key not in skip:
                lines.append(f"submit {shlex.quote(base64.b32encode(sub.key.encode()).decode())} {sub.command()}")
    lines += ['rm -f "$errf"', "emit done ok"]
    return "\n".join(lines) + "\n"


def parse_submit_line(line: str) -> SubmitEvent | None:
    """The event on one stdout line of the submit script, if it carries one."""
    fact = parse_line(line)
    if fact is None:
        return None
    kind, _, encoded = fact[0].partition(":")
    if kind not in ("submitted", "failed") or not encoded:
        return None
    key = base64.b32decode(encoded).decode()
    if kind == "submitted":
        return SubmitEvent(key=key, job_id=parse_sbatch_parsable(fact[1]), error=None)
    return SubmitEvent(key=key, job_id=None, error=" ".join(fact[1].split()))
