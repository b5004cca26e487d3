"""The one remote call that freezes the launch's code snapshot (the last step of a snapshot, so it is complete
before any job can run in it), writes every file of a launch and submits every job (pure script + parser).
It stops at the first failed step, reporting the cause the failing command printed (a full disk, a refused
``sbatch``), so what was submitted is exactly what it reported; its last line says it ran to the end."""

from __future__ import annotations

import base64
import io
import shlex
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass

from atlas_sweeps.launch.jobs import PreparedSweep
from atlas_sweeps.remote.protocol import EMIT_FUNCTION, parse_line
from atlas_sweeps.remote.snapshot import freeze_command
from atlas_sweeps.slurm.sbatch import Submission, parse_sbatch_parsable


@dataclass(frozen=True)
class SubmitEvent:
    """One line of the script's report: a submission's job id or sbatch's error (``kind`` "submitted" or
    "failed", ``key`` naming the submission), the snapshot made read-only ("frozen"), a step that stopped
    the script ("fatal", with the cause), or its normal end ("done")."""

    kind: str
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
                  extra_dirs: tuple[str, ...] = (), freeze: str | None = None) -> str:
    """Bash that makes the synced snapshot ``freeze`` read-only (when given), unpacks all scripts and argument
    files, makes the log and W&B directories, then calls ``sbatch`` for every submission whose key is not in
    ``skip``, reporting each as it goes."""
    files: dict[str, bytes] = {}
    dirs: set[str] = set(extra_dirs)
    for sweep in sweeps:
        files[sweep.script_path] = sweep.script_text.encode()
        files.update(sweep.files)
        dirs.add(sweep.log_dir)
    payload = base64.encodebytes(_tarball(files, root=root)).decode()
    lines = [
        *_PREAMBLE,
        "umask 022",
        f"root={shlex.quote(root)}",
        'err=$(mkdir -p "$root" 2>&1) || fail "could not create $root" "$err"',
    ]
    if freeze is not None:
        lines += [f"err=$({freeze_command(freeze)} 2>&1) || "
                  f"fail {shlex.quote(f'could not make the code snapshot {freeze} read-only')} \"$err\"",
                  f"emit frozen {shlex.quote(freeze)}"]
    lines += [
        "err=$(exec 2>&1; set -o pipefail; base64 -d <<'ATLAS_PAYLOAD' | tar -xzf - -C \"$root\"",
        payload.rstrip("\n"),
        "ATLAS_PAYLOAD",
        ') || fail "could not unpack the job files into $root" "$err"',
        "err=$(mkdir -p " + " ".join(shlex.quote(d) for d in sorted(dirs)) + ' 2>&1) || fail "could not create the log directories" "$err"',
        *_sbatch_calls(sub for sweep in sweeps for sub in sweep.submissions if sub.key not in skip),
    ]
    return "\n".join(lines) + "\n"


# Each step's own error output is the cause a user needs ("No space left on device"), not an exit code.
_PREAMBLE = (EMIT_FUNCTION, "set -u", 'fail() { emit fatal "$1: $(printf \'%s\' "$2" | tail -n 3)"; exit 1; }')


def _sbatch_calls(submissions: Iterable[Submission]) -> list[str]:
    """Bash calling ``sbatch`` for each submission in turn, reporting each job id (``submitted:<key>``) or
    sbatch's error, after which it stops; then ``done``."""
    lines = [
        'errf=$(mktemp 2>&1) || fail "could not create a temporary file" "$errf"',
        "submit() {",
        '  local key=$1; shift',
        '  if out=$("$@" 2>"$errf"); then emit "submitted:$key" "$out"',
        '  else rc=$?; emit "failed:$key" "$(cat "$errf") (sbatch exit $rc)"; rm -f "$errf"; exit 3; fi',
        "}",
    ]
    lines += [f"submit {shlex.quote(base64.b32encode(sub.key.encode()).decode())} {sub.command()}" for sub in submissions]
    return [*lines, 'rm -f "$errf"', "emit done ok"]


def sbatch_script(submissions: Iterable[Submission]) -> str:
    """The remote script of submissions whose scripts and files exist already (a retry round's arrays)."""
    return "\n".join([*_PREAMBLE, *_sbatch_calls(submissions)]) + "\n"


def parse_submit_line(line: str) -> SubmitEvent | None:
    """The event on one stdout line of the submit script, if it carries one."""
    fact = parse_line(line)
    if fact is None:
        return None
    kind, _, encoded = fact[0].partition(":")
    if kind in ("done", "fatal", "frozen"):
        return SubmitEvent(kind=kind, key="", job_id=None, error=" ".join(fact[1].split()) if kind == "fatal" else None)
    if kind not in ("submitted", "failed") or not encoded:
        return None
    key = base64.b32decode(encoded).decode()
    if kind == "submitted":
        return SubmitEvent(kind=kind, key=key, job_id=parse_sbatch_parsable(fact[1]), error=None)
    return SubmitEvent(kind=kind, key=key, job_id=None, error=" ".join(fact[1].split()))
