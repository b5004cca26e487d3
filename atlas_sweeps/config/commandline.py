"""The command line W&B's agent (wandb 0.31, `wandb_agent.Agent._command_run`) would run for one sweep
run, rebuilt here so the embedded local backend starts programs exactly as `wandb agent` does.

Rules copied from wandb (sdk/launch/sweeps/utils.py and wandb_agent.py):
- the template is the sweep's `command:` list, or `${env} ${interpreter} ${program} ${args}`;
- `${envvar:NAME}` inside any item is replaced by the environment variable NAME, or by the text
  NAME itself when it is unset (W&B's fallback); only upper-case names match;
- an item that is exactly `${macro}` is replaced by that macro's list; unknown macros vanish
  (the composite loader rejects them first); any other item is passed as text;
- args are `--name=value` with Python's str() of the value (`--flag=True`, `--lr=1e-05`); a nested
  parameter is one arg whose value is the str() of its dict, as W&B's engine nests run configs;
- W&B's server hands runs' args over sorted by name (JSON from Go maps), so args are sorted here.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from atlas_sweeps.errors import ConfigError

DEFAULT_COMMAND: tuple[str, ...] = ("${env}", "${interpreter}", "${program}", "${args}")
_ENVVAR = re.compile(r"\$\{envvar\:([A-Z0-9_]*)\}")


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value, key=str)}
    return value


def command_args(run: Mapping[str, Any]) -> dict[str, Any]:
    """Every `${...}` arg macro for one run, as wandb's create_sweep_command_args builds them."""
    flags: list[str] = []
    no_hyphens: list[str] = []
    no_booleans: list[str] = []
    no_equals: list[str] = []
    hydra_append: list[str] = []
    hydra_override: list[str] = []
    as_dict: dict[str, Any] = {}
    for param, value in _sorted(dict(run)).items():
        flag = f"{param}={value}"
        flags.append("--" + flag)
        no_hyphens.append(flag)
        no_equals += [f"--{param}", str(value)]
        hydra_append.append("+" + flag)
        hydra_override.append("++" + flag)
        if isinstance(value, bool):
            if value:
                no_booleans.append("--" + param)
        else:
            no_booleans.append("--" + flag)
        as_dict[param] = value
    return {
        "args": flags,
        "args_no_equals": no_equals,
        "args_no_hyphens": no_hyphens,
        "args_no_boolean_flags": no_booleans,
        "args_json": [json.dumps(as_dict, default=str)],
        "args_dict": list(as_dict),  # W&B splices a dict into the argv: its keys (a quirk, kept)
        "args_append_hydra": hydra_append,
        "args_override_hydra": hydra_override,
    }


def args_json(run: Mapping[str, Any]) -> str:
    """The text W&B's agent writes to the `${args_json_file}` file for a run."""
    return str(command_args(run)["args_json"][0])


def build_command(config: Mapping[str, Any], run: Mapping[str, Any], *, interpreter: str = "python",
                  env: str | None = "/usr/bin/env", args_json_file: str | None = None,
                  environ: Mapping[str, str] | None = None) -> list[str]:
    """The argv `wandb agent` would run for ``run`` ({param: value}) of the sweep ``config``.

    ``env=None`` drops `${env}` (as W&B does on Windows). ``environ`` resolves `${envvar:NAME}`
    (default: this process's environment, like the agent; build on the compute node for its values).
    A command using `${args_json_file}` needs ``args_json_file``: a path the caller fills with
    :func:`args_json` before starting the run (W&B uses wandb/sweep-ID/config-RUN.json)."""
    environ = os.environ if environ is None else environ
    template = [str(c) for c in (config.get("command") or DEFAULT_COMMAND)]
    command: list[str] = []
    for chunk in template:
        # W&B replaces matches back to front; equivalent to one left-to-right pass here
        command.append(_ENVVAR.sub(lambda m: environ.get(m.group(1), m.group(1)), chunk))
    if "${args_json_file}" in command and args_json_file is None:
        raise ConfigError("the sweep's command uses ${args_json_file}, which this backend does not write",
                          hint="use ${args_json} or ${args}, or the W&B backend (--backend wandb)")
    program = config.get("program")
    if "${program}" in command and not program:
        raise ConfigError("the sweep's command uses ${program} but the sweep has no program",
                          hint="add program: main.py")
    macros: dict[str, list[str]] = {
        **command_args(run),
        "interpreter": [interpreter],
        "program": [str(program)],
        "args_json_file": [str(args_json_file)],
    }
    if env is not None:
        macros["env"] = [env]
    argv: list[str] = []
    for chunk in command:
        if chunk.startswith("${") and chunk.endswith("}"):
            argv += macros.get(chunk[2:-1]) or []
        else:
            argv.append(chunk)
    return argv


# For runs whose argv is built here but run on a compute node (the local backend): `${envvar:NAME}` and
# `${args_json_file}` become tokens that the job replaces at run time, as W&B's agent would resolve them there.
ARGS_JSON_FILE_TOKEN = "@@ATLAS_ARGS_JSON_FILE@@"
_ENV_TOKEN = re.compile(r"@@ATLAS_ENV:([A-Z0-9_]*)@@")


class _DeferredEnviron(dict):  # type: ignore[type-arg]
    """An environment whose every variable is a token naming it."""

    def get(self, name: str, default: object = None) -> str:  # type: ignore[override]
        return f"@@ATLAS_ENV:{name}@@"


DEFERRED_ENVIRON: Mapping[str, str] = _DeferredEnviron()


def deferred_env_names(argv: Sequence[str]) -> list[str]:
    """The variables whose tokens ``argv`` holds, in order of first use."""
    names: list[str] = []
    for arg in argv:
        names += [n for n in _ENV_TOKEN.findall(arg) if n not in names]
    return names
