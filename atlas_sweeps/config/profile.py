"""Cluster profiles: where and how jobs run. A profile is the user's own file
(``$XDG_CONFIG_HOME/atlas-sweeps/clusters/NAME.toml``); the project file (``atlas-sweeps.toml``, tables
``[clusters.NAME]``) comes with the repository and may only add job options to a profile the user has, never
say where to connect or where credentials go. Every value is checked for its type and form (file:line), and
CLI flags that override single options pass the same checks."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from atlas_sweeps.backends import NAMES as BACKEND_NAMES
from atlas_sweeps.config import profile_values as values
from atlas_sweeps.config.tomllines import key_line
from atlas_sweeps.errors import ConfigError, UsageError, did_you_mean
from atlas_sweeps.remote.base import LOCAL_HOST, on_this_machine

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROJECT_FILE = "atlas-sweeps.toml"
STATUS_INTERVAL_FLOOR = 2.0  # the least any refresh waits (a cluster on this machine, like the sandbox)
CLUSTER_INTERVAL_FLOOR = 5.0  # the least a profile of a real, shared cluster may set


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
    # Preemption and time limits (``launch.preemption``): None is the default there (on, 60 s, USR1, 3).
    requeue: bool | None = None
    signal_grace: int | None = None
    checkpoint_signal: str | None = None
    max_requeues: int | None = None

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
        """GPUs one job asks for: ``gpus = 0`` is none (the estimate is 0 GPU-hours); 1 when the profile says
        nothing of GPUs (the estimate is then in job hours)."""
        if self.gres and self.gres.startswith("gpu"):  # the directive sbatch gets wins, as in directives()
            tail = self.gres.rsplit(":", 1)[-1]
            return int(tail) if tail.isdigit() else 1
        if self.gpus is not None:
            return int(self.gpus)
        return 1


@dataclass(frozen=True)
class Profile:
    """One cluster: login node, remote directory, job environment and defaults."""

    name: str
    host: str = LOCAL_HOST
    port: int | None = None
    user: str | None = None
    identity_file: str | None = None
    known_hosts: str | None = None
    transport: str | None = None
    control_persist: str | None = None
    remote_dir: str = "~/atlas-sweeps"
    setup: tuple[str, ...] = ()
    wrap: str | None = None
    interpreter: str = "python"
    backend: str | None = None
    wandb_online: bool = False
    wandb_entity: str | None = None
    wandb_project: str | None = None
    wandb_base_url: str | None = None
    wandb_reap: bool | None = None  # False: status leaves the pending agent tasks of idle sweeps (default: reap)
    excludes: tuple[str, ...] = ()
    status_interval: float = 15.0
    template: str | None = None
    runs_per_job: int | None = None  # launch --runs-per-job's default (launch/packing.py)
    parallel_per_job: int | None = None  # launch --parallel-per-job's default
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    source: str | None = None
    project_file: str | None = None
    project_keys: tuple[str, ...] = ()

    @property
    def project_note(self) -> str | None:
        """One line saying which job options the project file set, or None when it set none."""
        if not self.project_keys:
            return None
        return (f"the project file {self.project_file} sets {', '.join(self.project_keys)} "
                f"for cluster '{self.name}'")

    def with_overrides(self, **changes: Any) -> Profile:
        """A copy with the non-None ``changes`` applied (``slurm_*`` keys go to the Slurm options), each
        checked as the same key in a file is; UsageError naming the flag (``slurm_time`` is ``--time``)."""
        checked: dict[str, Any] = {}
        for key, value in changes.items():
            if value is None:
                continue
            dotted = "slurm." + key[6:] if key.startswith("slurm_") else key
            try:
                checked[key] = _CHECKS[dotted](value)
            except values.Invalid as exc:
                flag = "--" + dotted.rpartition(".")[2].replace("_", "-")
                raise UsageError(f"{flag} {value!r}: {exc}") from None
        slurm_changes = {k[6:]: v for k, v in checked.items() if k.startswith("slurm_")}
        plain = {k: v for k, v in checked.items() if not k.startswith("slurm_")}
        return replace(self, slurm=replace(self.slurm, **slurm_changes), **plain)


_WANDB_KEYS = {"entity": "wandb_entity", "project": "wandb_project", "base_url": "wandb_base_url",
               "online": "wandb_online", "reap": "wandb_reap"}
_HOST_KEYS = ("host", "port", "user", "identity_file", "known_hosts", "transport", "control_persist", "proxy_jump",
              "proxy_command")
# Where to connect, which host keys to trust, where the W&B key goes: only the user's own files say that. A
# project file comes with a cloned repository and may set job options only (the README's "Trust model").
CONNECTION_KEYS = frozenset({*_HOST_KEYS, "wandb.base_url"})


def _base_url(value: Any) -> str:
    from atlas_sweeps.backends.wandb.credentials import base_url_problem

    url = values.text(word=True, example="https://wandb.example.org")(value).rstrip("/")
    problem = base_url_problem(url)
    if problem:
        raise values.Invalid(problem)
    return url


def _word(example: str) -> values.Check:
    return values.text(word=True, example=example)


# Every key a profile file may hold, as ``section.key`` for [slurm] and [wandb], with its check.
_CHECKS: dict[str, values.Check] = {
    "host": values.host_name,
    "port": values.integer(low=1, high=65535),
    "user": values.user_name,
    "identity_file": values.text(example="~/.ssh/id_ed25519"),
    "known_hosts": values.text(example="~/.ssh/known_hosts"),
    "transport": values.choice("openssh", "paramiko"),
    "control_persist": values.ssh_duration,
    "remote_dir": values.text(example="~/atlas-sweeps"),
    "setup": values.strings(values.text(example="module load cuda"), example="module load cuda"),
    "wrap": values.text(example="apptainer exec --nv env.sif"),
    "interpreter": _word("python3"),
    "backend": values.choice(*BACKEND_NAMES),
    "excludes": values.strings(values.text(example="data/"), example="data/"),
    "status_interval": values.seconds,
    "template": values.text(example="my.sbatch.j2"),
    "runs_per_job": values.integer(low=1),
    "parallel_per_job": values.integer(low=1),
    "slurm.partition": _word("gpu"),
    "slurm.account": _word("mylab"),
    "slurm.qos": _word("normal"),
    "slurm.time": values.slurm_time,
    "slurm.cpus_per_task": values.integer(low=1),
    "slurm.mem": values.slurm_mem,
    "slurm.gpus": values.integer(low=0),
    "slurm.gres": _word("gpu:a100:1"),
    "slurm.constraint": _word("a100"),
    "slurm.mail_type": _word("FAIL"),
    "slurm.mail_user": _word("me@example.org"),
    "slurm.extra": values.strings(values.sbatch_option, example="--exclusive"),
    "slurm.requeue": values.boolean,
    "slurm.signal_grace": values.integer(low=10, high=3600),
    "slurm.checkpoint_signal": values.choice("USR1", "USR2", "TERM", "INT"),
    "slurm.max_requeues": values.integer(low=0, high=100),
    "wandb.entity": _word("mylab"),
    "wandb.project": _word("myproject"),
    "wandb.base_url": _base_url,
    "wandb.online": values.boolean,
    "wandb.reap": values.boolean,
}


@dataclass(frozen=True)
class _TomlFile:
    """A parsed TOML file with its text, for the line of each key in errors."""

    path: Path
    text: str
    data: dict[str, Any]

    def error(self, message: str, keys: tuple[str, ...], *, hint: str | None = None) -> ConfigError:
        return ConfigError(message, path=str(self.path), line=key_line(self.text, keys), hint=hint)


def _read_toml(path: Path) -> _TomlFile:
    try:
        text = path.read_text()
        return _TomlFile(path=path, text=text, data=tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=str(path), hint="fix the syntax") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file: {exc}", path=str(path)) from None


def _own_profile(name: str) -> Path:
    return config_home() / "clusters" / f"{name}.toml"


def _untrusted(file: _TomlFile, name: str, dotted: str, where: tuple[str, ...]) -> ConfigError:
    section, _, key = dotted.rpartition(".")
    setting = f"{key} under [{section}]" if section else key
    return file.error(
        f"cluster '{name}': a project file may not set {dotted}: it comes with the repository, and a cloned "
        "repository must not choose where to connect, which host keys to trust or where credentials go",
        where, hint=f"set {setting} in your own profile {_own_profile(name)}; the project file may set job "
                    "options only ([slurm], setup, excludes, template, [wandb] project and entity...)")


def _table_items(file: _TomlFile, table: dict[str, Any], prefix: tuple[str, ...]) -> list[tuple[str, Any]]:
    """``(dotted key, value)`` for every key of a profile table, [slurm] and [wandb] flattened."""
    items: list[tuple[str, Any]] = []
    for key, value in table.items():
        if key in ("slurm", "wandb"):
            if not isinstance(value, dict):
                raise file.error(f"{key} must be a table ([{key}] with one option per line)", prefix + (key,))
            items += [(f"{key}.{sub}", subvalue) for sub, subvalue in value.items()]
        else:
            items.append((key, value))
    return items


def _checked(name: str, file: _TomlFile, table: dict[str, Any], *, prefix: tuple[str, ...] = (),
             project: bool = False) -> dict[str, Any]:
    """The keys of one profile table, each checked, as ``{dotted key: value}``; ConfigError at file:line."""
    out: dict[str, Any] = {}
    for dotted, value in _table_items(file, table, prefix):
        where = prefix + tuple(dotted.split("."))
        if project and dotted in CONNECTION_KEYS:
            raise _untrusted(file, name, dotted, where)
        check = _CHECKS.get(dotted)
        if check is None:
            section, _, key = dotted.rpartition(".")
            known = {k.rpartition(".")[2] for k in _CHECKS if k.rpartition(".")[0] == section}
            what = f"[{section}] key" if section else "key"
            raise file.error(f"unknown {what} '{key}' in profile '{name}'", where,
                             hint=did_you_mean(key, sorted(known | (set() if section else {"slurm", "wandb"}))))
        try:
            out[dotted] = check(value)
        except values.Invalid as exc:
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            raise file.error(f"profile '{name}': {dotted} = {shown}: {exc}", where) from None
    return out


def _profile(name: str, settings: dict[str, Any], *, source: str, project: str | None,
             project_keys: tuple[str, ...]) -> Profile:
    top = {k: v for k, v in settings.items() if "." not in k}
    slurm = {k[6:]: v for k, v in settings.items() if k.startswith("slurm.")}
    wandb = {_WANDB_KEYS[k[6:]]: v for k, v in settings.items() if k.startswith("wandb.")}
    return Profile(name=name, slurm=SlurmOptions(**slurm), source=source, project_file=project,
                   project_keys=project_keys, **top, **wandb)


def _check_interval(profile: Profile, file: _TomlFile, where: tuple[str, ...]) -> None:
    floor = STATUS_INTERVAL_FLOOR if on_this_machine(profile.host) else CLUSTER_INTERVAL_FLOOR
    if profile.status_interval < floor:
        raise file.error(f"profile '{profile.name}': status_interval {profile.status_interval:g} is below the "
                         f"floor of {floor:g} s", where,
                         hint="squeue and sacct are shared by everyone on the cluster; poll every 15 s or so")


@dataclass(frozen=True)
class _Project:
    """The project file: job options per cluster name, and its default cluster."""

    file: _TomlFile | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    default: str | None = None


def _read_project(project_dir: Path) -> _Project:
    path = project_dir / PROJECT_FILE
    if not path.is_file():
        return _Project()
    file = _read_toml(path)
    for key in file.data:
        if key not in ("clusters", "default_cluster"):
            raise file.error(f"unknown key '{key}' in the project file", (key,),
                             hint=did_you_mean(key, ["clusters", "default_cluster"]))
    clusters = file.data.get("clusters", {})
    if not isinstance(clusters, dict):
        raise file.error("clusters must hold tables, one per cluster: [clusters.NAME]", ("clusters",))
    options: dict[str, dict[str, Any]] = {}
    for name, table in clusters.items():
        if not isinstance(table, dict):
            raise file.error(f"clusters.{name} must be a table of job options: [clusters.{name}]",
                             ("clusters", name))
        options[name] = _checked(name, file, table, prefix=("clusters", name), project=True)
    return _Project(file=file, options=options, default=_default_in(file))


def _default_in(file: _TomlFile) -> str | None:
    name = file.data.get("default_cluster")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise file.error("default_cluster must be the name of a cluster profile, e.g. \"hpc\"",
                         ("default_cluster",))
    return name


def _profile_from_table(name: str, table: dict[str, Any], source: str, *, text: str = "",
                        project: _Project | None = None) -> Profile:
    """The user's profile ``name`` from its parsed file (``text`` gives errors their lines), with the job
    options the project file adds for it."""
    own_file = _TomlFile(path=Path(source), text=text, data=table)
    own = _checked(name, own_file, table)
    project = project or _Project()
    extra = project.options.get(name, {})
    profile = _profile(name, {**own, **extra}, source=source,
                       project=str(project.file.path) if extra and project.file else None,
                       project_keys=tuple(extra))
    if "status_interval" in extra and project.file:
        _check_interval(profile, project.file, ("clusters", name, "status_interval"))
    else:
        _check_interval(profile, own_file, ("status_interval",))
    return profile


def _load_all(project_dir: Path) -> tuple[dict[str, Profile], _Project]:
    project = _read_project(project_dir)
    found: dict[str, Profile] = {}
    user_dir = config_home() / "clusters"
    for path in sorted(user_dir.glob("*.toml")) if user_dir.is_dir() else ():
        own = _read_toml(path)
        found[path.stem] = _profile_from_table(path.stem, own.data, str(path), text=own.text, project=project)
    return found, project


def available_profiles(*, project_dir: Path) -> dict[str, Profile]:
    """Every profile of the user's config directory, with the job options the project file adds."""
    return _load_all(project_dir)[0]


def _default_name(project: _Project) -> str | None:
    if project.default:
        return project.default
    path = config_home() / "config.toml"
    return _default_in(_read_toml(path)) if path.is_file() else None


def load_profile(name: str | None, *, project_dir: Path) -> Profile:
    """The profile called ``name``, or the default one; a clear error naming the choices otherwise."""
    profiles, project = _load_all(project_dir)
    chosen = name or _default_name(project)
    if chosen is None and len(profiles) == 1:
        chosen = next(iter(profiles))
    if chosen is None:
        if not profiles:
            raise UsageError("no cluster profile found",
                             hint="add one with 'atlas-sweeps cluster add NAME --host ALIAS', write "
                                  f"{_own_profile('NAME')} (see the README), or run "
                                  "'atlas-sweeps sandbox up' to try the sandbox")
        raise UsageError(f"several cluster profiles ({', '.join(sorted(profiles))}): pick one",
                         hint="pass --cluster NAME or set default_cluster in " + PROJECT_FILE)
    if chosen not in profiles:
        if chosen in project.options and project.file:
            line = key_line(project.file.text, ("clusters", chosen))
            raise UsageError(f"no cluster profile named '{chosen}' in your config directory",
                             hint=f"{project.file.path}:{line} only adds job options to it: where to connect "
                                  f"comes from your own profile; write {_own_profile(chosen)}")
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
        if f.name in ("name", "source", "slurm", "project_file", "project_keys") or value in (None, (), False):
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
