"""What the cluster knows about a launch's job arrays, for ``launch --resume`` (pure): the bash lines that
list them (part of the one preflight call), the parser of their answer, and the decision which chunks were
already submitted. An answer that cannot be trusted stops the resume; it never leads to a second array."""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass

from atlas_sweeps.errors import RemoteError

# A chunk's array may finish and leave squeue only ``MinJobAge`` after it was submitted; keep a margin for
# slurmctld's purge pass and clocks.
_PURGE_MARGIN = 60.0
DEFAULT_MIN_JOB_AGE = 300

ChunkKey = tuple[str, int]  # (sweep name, chunk index)


def name_prefix(launch_id: str) -> str:
    """Every job name of a launch starts with this (see ``jobs.job_name``)."""
    return f"atlas-{launch_id}-"


def lookup_lines(launch_id: str, *, since: float) -> list[str]:
    """Bash lines that ``emit`` the launch's arrays known to squeue (``-t all``: also recently finished
    ones) and to sacct (since ``since``, a day early for time zones), or each command's error.
    squeue and sacct filter by exact name only, so the user's jobs are filtered by the name prefix here."""
    prefix = shlex.quote(name_prefix(launch_id))
    start = time.strftime("%Y-%m-%d", time.gmtime(since - 86400))
    keep = f"awk -F'|' -v p={prefix} 'index($2, p) == 1' | sort -u"
    return [
        f"if out=$(squeue --me -h -t all -o '%F|%j' 2>&1); then emit jobs_squeue \"$(printf '%s\\n' \"$out\" | {keep})\"; "
        'else emit jobs_squeue_error "$out"; fi',
        f"if out=$(sacct -X -n -P -S {start} -o JobID,JobName 2>&1); then "
        f"emit jobs_sacct \"$(printf '%s\\n' \"$out\" | {keep})\"; "
        'else emit jobs_sacct_error "$out"; fi',
    ]


@dataclass(frozen=True)
class ClusterJobs:
    """The lookup's answer: (job name, array job id) rows from each command, or its error."""

    squeue: tuple[tuple[str, str], ...] = ()
    sacct: tuple[tuple[str, str], ...] = ()
    squeue_error: str | None = None
    sacct_error: str | None = None
    min_job_age: int = DEFAULT_MIN_JOB_AGE
    answered: bool = False


def parse_rows(text: str) -> tuple[tuple[str, str], ...]:
    """``JobID|JobName`` lines (``123``, ``123_4`` or ``123_[5-9]``) as (name, array job id) pairs."""
    rows = []
    for line in text.splitlines():
        job_id, sep, name = line.partition("|")
        if sep and job_id.strip() and name.strip():
            rows.append((name.strip(), job_id.strip().split("_", 1)[0]))
    return tuple(rows)


def parse_min_job_age(scontrol_config: str) -> int:
    """``MinJobAge`` in seconds from ``scontrol show config`` (``300 sec``; Slurm's default when absent)."""
    match = re.search(r"^\s*MinJobAge\s*=\s*(\d+)", scontrol_config, re.MULTILINE)
    return int(match.group(1)) if match else DEFAULT_MIN_JOB_AGE


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300] or "no output"


def _names(keys: list[ChunkKey]) -> str:
    return ", ".join(f"{sweep} chunk {chunk}" for sweep, chunk in keys)


def adopt_submitted(*, launch_id: str, expected: Mapping[ChunkKey, str], known: Mapping[ChunkKey, str],
                    cluster: ClusterJobs, submit_started: float | None, now: float,
                    force_unknown: bool = False, retried: frozenset[str] = frozenset()) -> dict[ChunkKey, str]:
    """The chunks the database does not know but the cluster has (chunk -> array id), to record, not submit.

    ``expected`` maps every chunk of the recorded plan to its job name; ``known`` is what the database holds of
    each chunk's first array; ``retried`` names the arrays of ``retry`` rounds the database recorded (the cluster
    may list them: they are accounted for); ``submit_started`` is when a submission of this launch was last attempted (None: never, so nothing can
    exist). Raises ``RemoteError`` when the answer cannot be trusted, or when the cluster holds an array the
    plan or the database does not account for."""
    unknown = [key for key in expected if key not in known]
    if not unknown or submit_started is None:
        return {}
    resume = f"atlas-sweeps launch --resume {launch_id}"
    if not cluster.answered:
        raise RemoteError(f"could not list the job arrays of launch {launch_id}: the login node did not answer",
                          hint=f"nothing was submitted; run '{resume}' again")
    if cluster.squeue_error is not None:
        raise RemoteError(f"could not tell whether {_names(unknown)} of launch {launch_id} were submitted: "
                          f"squeue failed: {_one_line(cluster.squeue_error)}",
                          hint=f"nothing was submitted; run '{resume}' again when the cluster answers")
    if cluster.sacct_error is not None and not force_unknown:
        window = cluster.min_job_age - _PURGE_MARGIN
        if now - submit_started >= window:
            raise RemoteError(
                f"could not tell whether {_names(unknown)} of launch {launch_id} were submitted: sacct failed "
                f"({_one_line(cluster.sacct_error)}), and squeue forgets arrays {cluster.min_job_age} s "
                "(MinJobAge) after they finish",
                hint=f"nothing was submitted; if the logs of these sweeps show no array the database does not "
                     f"know, '{resume} --force-resubmit-unknown' submits them")
    ids: dict[str, set[str]] = {}
    for name, job_id in (*cluster.squeue, *cluster.sacct):
        if name not in retried:
            ids.setdefault(name, set()).add(job_id)
    by_name = {name: key for key, name in expected.items()}
    strange = sorted(name for name in ids if name not in by_name)
    if strange:
        raise RemoteError(f"the cluster has job arrays of launch {launch_id} that its recorded plan does not "
                          f"name: {', '.join(f'{n} ({sorted(ids[n])[0]})' for n in strange)}",
                          hint="nothing was submitted; cancel them with scancel if they are not wanted, "
                               f"then run '{resume}' again")
    adopted: dict[ChunkKey, str] = {}
    for name, found in sorted(ids.items()):
        key = by_name[name]
        every = sorted(found | {known[key]}) if key in known else sorted(found)
        if len(every) > 1:
            raise RemoteError(f"launch {launch_id} has {len(every)} job arrays for {key[0]} chunk {key[1]} "
                              f"({', '.join(every)}); only one may exist",
                              hint=f"cancel the extra one with scancel, then run '{resume}' again")
        if key not in known:
            adopted[key] = every[0]
    return adopted
