"""``doctor``'s checks (pure): what the probe learnt about a profile's cluster, one line per check with its
result and, when it fails, what to change. A failing check is one that would stop a launch (or its jobs);
a warning is one that would not (no accounting, an old rsync that works)."""

from __future__ import annotations

from dataclasses import dataclass

from atlas_sweeps.clusters.probe import ClusterFacts
from atlas_sweeps.config.profile import Profile

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    """One line of ``doctor``: what was checked, how it went, and what to do when it did not."""

    name: str
    status: str  # ok, warn, fail
    detail: str
    fix: str = ""


def job_test_script(profile: Profile) -> str:
    """A job script with the profile's ``#SBATCH`` options, for ``sbatch --test-only`` (partition, account,
    QOS, time and GPUs are checked by Slurm itself)."""
    directives = "".join(f"#SBATCH {d}\n" for d in profile.slurm.directives())
    return f"#!/bin/bash\n{directives}true\n"


def checks(profile: Profile, facts: ClusterFacts, *, login: str, needs_wandb: bool) -> list[Check]:
    """Every check of ``profile`` on the cluster ``facts`` describe, in the order a launch meets them."""
    out = [Check("login", OK, login)]
    if not facts.complete:
        return out + [Check("probe", FAIL, "the probe script stopped before its end",
                            "the connection may have dropped; run doctor again")]
    out.append(_setup(profile, facts))
    out.append(Check("interpreter", OK, f"{profile.interpreter} is {facts.interpreter}") if facts.interpreter
               else Check("interpreter", FAIL, f"{profile.interpreter!r} is not found after the set-up lines",
                          f"set interpreter (e.g. \"python3\") or add the set-up line that provides it, in "
                          f"{profile.source or 'the profile'}"))
    out.append(_partition(profile, facts))
    if facts.test_only is not None:
        out.append(Check("sbatch --test-only", OK, "Slurm accepts a job with the profile's options")
                   if facts.test_only == "" else
                   Check("sbatch --test-only", FAIL, f"Slurm refuses the profile's job options: {facts.test_only}",
                         "fix the [slurm] options (partition, account, qos, time, gpus) in the profile"))
    out.append(Check("accounting", OK, "sacct answers") if facts.accounting else
               Check("accounting", WARN, f"no accounting ({facts.accounting_error or 'sacct failed'})",
                     "nothing to do: status reads how jobs ended from the exit codes their scripts write"))
    out.append(Check("rsync", OK, " ".join(facts.rsync.split())) if facts.rsync else
               Check("rsync", FAIL, "rsync is not installed on the login node",
                     "ask the admins for rsync (launch copies your code with it)"))
    if facts.max_array_size is not None:
        out.append(Check("MaxArraySize", OK, f"{facts.max_array_size} (larger sweeps are split into several arrays)"))
    if needs_wandb:
        out.append(Check("W&B login", FAIL, facts.wandb_problems[0],
                         "log in on the login node as it says (jobs use your W&B login there)")
                   if facts.wandb_problems else Check("W&B login", OK, "credentials found on the cluster"))
    if facts.compute_wandb is not None:
        out.append(Check("compute → W&B", OK, "a job reached the W&B server") if facts.compute_wandb else
                   Check("compute → W&B", WARN if not needs_wandb else FAIL,
                         f"a job could not reach the W&B server ({facts.compute_detail or 'no detail'})",
                         "use backend = \"local\" (runs log offline; `atlas-sweeps sync` uploads them)"))
    return out


def _setup(profile: Profile, facts: ClusterFacts) -> Check:
    if not profile.setup:
        return Check("set-up lines", OK, "none")
    if facts.setup_failed is None:
        return Check("set-up lines", OK, f"{len(profile.setup)} line(s) ran")
    line = profile.setup[facts.setup_failed] if facts.setup_failed < len(profile.setup) else "?"
    error = f": {facts.setup_error}" if facts.setup_error else ""
    return Check("set-up lines", FAIL, f"line {facts.setup_failed + 1} failed: {line!r}{error}",
                 f"fix or remove that line of setup in {profile.source or 'the profile'}")


def _partition(profile: Profile, facts: ClusterFacts) -> Check:
    names = ", ".join(p.name + ("*" if p.default else "") for p in facts.partitions) or "none"
    wanted = profile.slurm.partition
    if not wanted:
        default = facts.default_partition
        return Check("partition", OK, f"the cluster's default ({default.name if default else 'none'})")
    found = facts.partition(wanted)
    if found is None:
        return Check("partition", FAIL, f"there is no partition {wanted!r} (partitions: {names})",
                     f"set [slurm] partition to one of them in {profile.source or 'the profile'}")
    if not found.up:
        return Check("partition", WARN, f"partition {wanted} is not up: jobs will wait", "ask the admins, or pick another")
    return Check("partition", OK, f"{wanted} (time limit {found.time_limit})")


def would_stop_a_launch(results: list[Check]) -> bool:
    return any(c.status == FAIL for c in results)
