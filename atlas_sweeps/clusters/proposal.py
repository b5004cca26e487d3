"""The profile ``cluster add`` proposes from what the probe found (pure): where to connect as the user said,
the default partition with a time limit it allows, a GPU when its nodes have them, the default account when
the user has several, the interpreter jobs will find, a virtualenv's activate line, and the backend the
compute nodes can use. Each choice comes with the reason shown to the user."""

from __future__ import annotations

from dataclasses import dataclass

from atlas_sweeps.clusters.probe import ClusterFacts
from atlas_sweeps.config.profile import Profile, SlurmOptions
from atlas_sweeps.slurm.durations import format_duration, parse_duration

DEFAULT_TIME = "01:00:00"


@dataclass(frozen=True)
class Proposal:
    """The profile to write and why each part of it is what it is."""

    profile: Profile
    reasons: tuple[str, ...]


def propose(name: str, *, host: str, facts: ClusterFacts, user: str | None = None, port: int | None = None,
            identity_file: str | None = None, known_hosts: str | None = None,
            transport: str | None = None) -> Proposal:
    """A working profile for the cluster ``facts`` describe."""
    reasons: list[str] = []
    part = facts.default_partition
    slurm = SlurmOptions()
    if part is not None:
        time = _time_for(part.default_time, part.time_limit)
        gpus = 1 if part.gpus else None
        slurm = SlurmOptions(partition=part.name, time=time, gpus=gpus)
        reasons.append(f"partition {part.name}: the cluster's default"
                       + (f" ({part.gpus} GPU(s) per node: one per job)" if gpus else " (no GPUs in its nodes)"))
        reasons.append(f"time {time}: " + ("the partition's default" if part.default_time not in ("n/a", "")
                                            else f"within its limit ({part.time_limit})"))
    if facts.default_account and len(facts.accounts) > 1:
        slurm = SlurmOptions(**{**vars(slurm), "account": facts.default_account})
        reasons.append(f"account {facts.default_account}: your default of {', '.join(facts.accounts)}")
    interpreter = "python" if "python" in facts.commands else "python3"
    setup: tuple[str, ...] = ()
    if facts.venvs:
        setup = (f"source {facts.venvs[0]}",)
        reasons.append(f"setup: activates {facts.venvs[0]}, found in your home on the login node")
    elif facts.module or "conda" in facts.commands:
        reasons.append("setup: none yet; add your `module load` / `conda activate` lines to the profile")
    if "python" not in facts.commands:
        reasons.append("interpreter python3: there is no `python` on the login node")
    backend = None
    if facts.compute_wandb is not None:
        backend = "wandb" if facts.compute_wandb else "local"
        reasons.append(f"backend {backend}: compute nodes " + ("reach W&B" if facts.compute_wandb else
                                                             "cannot reach W&B; runs log offline, sync them later"))
    profile = Profile(name=name, host=host, port=port, user=user, identity_file=identity_file,
                      known_hosts=known_hosts, transport=transport, setup=setup, interpreter=interpreter,
                      backend=backend, slurm=slurm)
    return Proposal(profile=profile, reasons=tuple(reasons))


def _time_for(default_time: str, limit: str) -> str:
    """The partition's default time, else an hour, never above its limit."""
    if parse_duration(default_time) is not None:
        return default_time
    most = parse_duration(limit)
    hour = parse_duration(DEFAULT_TIME) or 3600
    return DEFAULT_TIME if most is None or most >= hour else _slurm_time(most)


def _slurm_time(seconds: int) -> str:
    """Seconds as Slurm's ``[D-]HH:MM:SS``."""
    text = format_duration(seconds)
    return text if text.count(":") == 2 else f"00:{text.zfill(5)}"
