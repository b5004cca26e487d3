"""Cluster profiles: where and how jobs run. Read from the project file (``atlas-sweeps.toml``, tables
``[clusters.NAME]``) and from the user's config directory (``$XDG_CONFIG_HOME/atlas-sweeps/clusters/NAME.toml``);
the project file wins for the same name. CLI flags override single options."""

from __future__ import annotations

import difflib
import json
import os
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from atlas_sweeps.errors import ConfigError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROJECT_FILE = "atlas-sweeps.toml"
BACKENDS = ("local", "wandb")
STATUS_INTERVAL_FLOOR = 2.0  # the least any refresh waits (a cluster on this machine, like the sandbox)
CLUSTER_INTERVAL_FLOOR = 5.0  # the least a profile of a real, shared cluster may set
_THIS_MACHINE = ("local", "localhost", "127.0.0.1", "::1")


def config_home() -> Path:
    """The user's config directory for this tool (XDG)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "atlas-sweeps"


@dataclass(frozen=True)
class SlurmOptions:
    """Slurm options that become ``#SBATCH`` directives."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    gpus: int | None = None
    gres: str | None = None
    constraint: str | None = None
    mail_type: str | None = None
    mail_user: str | None = None
    extra: tuple[str, ...] = ()

    def directives(self) -> list[str]:
        """The ``--option=value`` strings, in a stable order."""
        pairs = [
            ("partition", self.partition), ("account", self.account), ("qos", self.qos),
            ("time", self.time), ("cpus-per-task", self.cpus_per_task), ("mem", self.mem),
            ("gres", self.gres or (f"gpu:{self.gpus}" if self.gpus else None)),
            ("constraint", self.constraint), ("mail-type", self.mail_type), ("mail-user", self.mail_user),
        ]
        out = [f"--{key}={value}" for key, value in pairs if value not in (None, "")]
        return out + list(self.extra)

    @property
    def gpus_per_job(self) -> int:
        """GPUs one job asks for (1 when none: the estimate is then in job hours)."""
        if self.gpus:
            return int(self.gpus)
        if self.gres and self.gres.startswith("gpu"):
            tail = self.gres.rsplit(":", 1)[-1]
            return int(tail) if tail.isdigit() else 1
        return 1


@dataclass(frozen=True)
class Profile:
    """One cluster: login node, remote directory, job environment and defaults."""

    name: str
    host: str = "local"
    port: int | None = None
    user: str | None = None
    identity_file: str | None = None
    known_hosts: str | None = None
    remote_dir: str = "~/atlas-sweeps"
    setup: tuple[str, ...] = ()
    wrap: str | None = None
    interpreter: str = "python"
    backend: str | None = None
    wandb_online: bool = False
    wandb_entity: str | None = None
    wandb_project: str | None = None
    wandb_base_url: str | None = None
    excludes: tuple[str, ...] = ()
    status_interval: float = 15.0
    template: str | None = None
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    source: str | None = None

    @property
    def is_local(self) -> bool:
        """True when jobs are submitted from this machine, without SSH."""
        return self.host in ("local", "localhost-no-ssh")

    def with_overrides(self, **changes: Any) -> Profile:
        """A copy with the non-None ``changes`` applied (``slurm_*`` keys go to the Slurm options)."""
        slurm_changes = {k[6:]: v for k, v in changes.items() if k.startswith("slurm_") and v is not None}
        plain = {k: v for k, v in changes.items() if not k.startswith("slurm_") and v is not None}
        return replace(self, slurm=replace(self.slurm, **slurm_changes), **plain)


_WANDB_KEYS = {"entity": "wandb_entity", "project": "wandb_project", "base_url": "wandb_base_url",
               "online": "wandb_online"}
_TOP_KEYS = {f.name for f in fields(Profile)} - {"name", "slurm", "source"}
_SLURM_KEYS = {f.name for f in fields(SlurmOptions)}


def _did_you_mean(key: str, known: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    return f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(sorted(known))}"


def _profile_from_table(name: str, table: dict[str, Any], source: str) -> Profile:
    values: dict[str, Any] = {}
    slurm: dict[str, Any] = {}
    for key, value in table.items():
        if key == "slurm" and isinstance(value, dict):
            for skey, svalue in value.items():
                if skey not in _SLURM_KEYS:
                    raise ConfigError(f"unknown Slurm option '{skey}' in profile '{name}'", path=source,
                                      hint=_did_you_mean(skey, _SLURM_KEYS))
                slurm[skey] = tuple(svalue) if skey == "extra" else svalue
        elif key == "wandb" and isinstance(value, dict):
            for wkey, wvalue in value.items():
                if wkey not in _WANDB_KEYS:
                    raise ConfigError(f"unknown [wandb] key '{wkey}' in profile '{name}'", path=source,
                                      hint=_did_you_mean(wkey, set(_WANDB_KEYS)))
                values[_WANDB_KEYS[wkey]] = wvalue
        elif key in _TOP_KEYS:
            values[key] = tuple(value) if key in ("setup", "excludes") else value
        else:
            raise ConfigError(f"unknown key '{key}' in profile '{name}'", path=source,
                              hint=_did_you_mean(key, _TOP_KEYS | {"slurm", "wandb"}))
    backend = values.get("backend")
    if backend is not None and backend not in BACKENDS:
        raise ConfigError(f"profile '{name}': backend must be one of {', '.join(BACKENDS)}, not '{backend}'",
                          path=source)
    interval = float(values.get("status_interval", 15.0))
    floor = STATUS_INTERVAL_FLOOR if values.get("host", "local") in _THIS_MACHINE else CLUSTER_INTERVAL_FLOOR
    if interval < floor:
        raise ConfigError(f"profile '{name}': status_interval {interval:g} is below the floor of {floor:g} s",
                          path=source, hint="squeue and sacct are shared by everyone on the cluster; "
                                            "poll every 15 s or so")
    return Profile(name=name, slurm=SlurmOptions(**slurm), source=source, **values)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=str(path), hint="fix the syntax") from None


def available_profiles(*, project_dir: Path) -> dict[str, Profile]:
    """Every profile visible from ``project_dir``: user config first, then the project file over it."""
    found: dict[str, Profile] = {}
    user_dir = config_home() / "clusters"
    if user_dir.is_dir():
        for path in sorted(user_dir.glob("*.toml")):
            found[path.stem] = _profile_from_table(path.stem, _read_toml(path), str(path))
    project = project_dir / PROJECT_FILE
    if project.is_file():
        for name, table in _read_toml(project).get("clusters", {}).items():
            found[name] = _profile_from_table(name, table, str(project))
    return found


def _default_name(project_dir: Path) -> str | None:
    for path in (project_dir / PROJECT_FILE, config_home() / "config.toml"):
        if path.is_file():
            name = _read_toml(path).get("default_cluster")
            if name:
                return str(name)
    return None


def load_profile(name: str | None, *, project_dir: Path) -> Profile:
    """The profile called ``name``, or the default one; a clear error naming the choices otherwise."""
    profiles = available_profiles(project_dir=project_dir)
    chosen = name or _default_name(project_dir)
    if chosen is None and len(profiles) == 1:
        chosen = next(iter(profiles))
    if chosen is None:
        if not profiles:
            raise UsageError("no cluster profile found",
                             hint=f"write {config_home() / 'clusters' / 'NAME.toml'} or [clusters.NAME] in "
                                  f"{PROJECT_FILE}, or run 'atlas-sweeps sandbox up' to try the sandbox")
        raise UsageError(f"several cluster profiles ({', '.join(sorted(profiles))}): pick one",
                         hint="pass --cluster NAME or set default_cluster in " + PROJECT_FILE)
    if chosen not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        hint = "run 'atlas-sweeps sandbox up' first" if chosen.startswith("sandbox") else f"known: {known}"
        raise UsageError(f"no cluster profile named '{chosen}'", hint=hint)
    return profiles[chosen]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML rendering for {value!r}")


def profile_toml(profile: Profile, *, header: str = "") -> str:
    """``profile`` as the TOML file ``load_profile`` reads back (set options only; [slurm] and [wandb] last)."""
    wandb_keys = {attr: key for key, attr in _WANDB_KEYS.items()}
    top, wandb = [], []
    for f in fields(Profile):
        value = getattr(profile, f.name)
        if f.name in ("name", "source", "slurm") or value in (None, (), False):
            continue
        if f.name in wandb_keys:
            wandb.append(f"{wandb_keys[f.name]} = {_toml_value(value)}")
        else:
            top.append(f"{f.name} = {_toml_value(value)}")
    slurm = [f"{f.name} = {_toml_value(getattr(profile.slurm, f.name))}" for f in fields(SlurmOptions)
             if getattr(profile.slurm, f.name) not in (None, ())]
    parts = [header.rstrip("\n")] if header else []
    parts.append("\n".join(top))
    if slurm:
        parts.append("[slurm]\n" + "\n".join(slurm))
    if wandb:
        parts.append("[wandb]\n" + "\n".join(wandb))
    return "\n\n".join(parts) + "\n"
