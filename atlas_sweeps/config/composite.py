"""The composite sweep file: a W&B sweep YAML whose `parameters:` may hold shared parameters plus a
`subtests:` map keyed by comma-separated tags. Each subtest becomes one W&B sweep config (shared merged
with the subtest, subtest wins), validated here so mistakes surface as file:line before anything runs."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atlas_sweeps.config.params import (
    DISTRIBUTIONS,
    PARAM_KEYS,
    count_runs,
    expand_runs,
    iter_params,
    param_kind,
)
from atlas_sweeps.config.yamlfile import LineMap, load_yaml
from atlas_sweeps.errors import ConfigError, did_you_mean

# W&B's sweep config schema (sweeps/config/schema.json, top level) plus our private keys.
WANDB_KEYS = ("program", "method", "parameters", "metric", "metrics", "command", "early_terminate",
              "run_cap", "name", "description", "project", "entity", "job", "image_uri", "controller",
              "scheduler", "apiVersion", "kind")
PRIVATE_KEYS = ("_num_trials", "_num_nodes")
METHODS = ("grid", "random", "bayes")
SUFFIXES = (".yml", ".yaml")
# Macros W&B's agent expands when a `command:` item is exactly `${name}` (wandb_agent.Agent._command_run).
COMMAND_MACROS = ("env", "interpreter", "program", "args", "args_no_equals", "args_no_hyphens",
                  "args_no_boolean_flags", "args_json", "args_json_file", "args_append_hydra",
                  "args_override_hydra")
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")  # W&B's propertyNames pattern
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_MAX_TAG_TEXT = 80


@dataclass(frozen=True)
class SweepSpec:
    """One sweep to create: its safe name (``-t<trial>`` for a ``_num_trials`` copy), its tags, the W&B config,
    and how many jobs."""

    name: str
    tags: tuple[str, ...]
    config: dict[str, Any]
    num_nodes: int | None
    line: int


@dataclass(frozen=True)
class CompositeFile:
    """A validated composite file: the sweeps it stands for, in file order."""

    path: Path
    sweeps: tuple[SweepSpec, ...]


def resolve_config_path(arg: str, *, cwd: Path | None = None) -> Path:
    """The sweep file ``arg`` names; `.yml`/`.yaml` may be left off, as the original script allowed."""
    base = Path(arg).expanduser()
    if not base.is_absolute():
        base = (cwd or Path.cwd()) / base
    if base.is_file():
        return base
    if base.is_dir():
        raise ConfigError("is a directory, not a sweep file", path=arg, hint="name a .yml file")
    found = [base.with_name(base.name + s) for s in SUFFIXES if base.with_name(base.name + s).is_file()]
    if len(found) == 1:
        return found[0]
    if found:
        raise ConfigError(f"ambiguous: both {found[0].name} and {found[1].name} exist", path=arg,
                          hint="give the full file name")
    tried = ", ".join([base.name] + [base.name + s for s in SUFFIXES if not base.name.endswith(s)])
    raise ConfigError(f"sweep file not found (tried {tried} in {base.parent})", path=arg,
                      hint="check the name and the directory")


class _Checker:
    """Raises ConfigErrors that name the file and the line of the offending key."""

    def __init__(self, path: Path, lines: LineMap) -> None:
        self.path = path
        self.lines = lines

    def fail(self, message: str, at: tuple[Hashable, ...], *, hint: str | None = None) -> ConfigError:
        return ConfigError(message, path=str(self.path), line=self.lines.line(*at), hint=hint)

    def positive_int(self, raw: Any, key: str, at: tuple[Hashable, ...]) -> int:
        value = raw.get("value") if isinstance(raw, dict) and set(raw) == {"value"} else raw
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(f"{key} must be a positive integer, got {raw!r}", at,
                            hint=f"write {key}: 4 (or {key}: {{value: 4}})")
        return value


def _normalise(ck: _Checker, params: Any, at: tuple[Hashable, ...]) -> dict[str, Any]:
    """Shorthand to full dicts (scalar → {value}, list → {values}), recursively, with checks."""
    if not isinstance(params, dict) or not params:
        raise ck.fail(f"{'.'.join(map(str, at))} must be a non-empty mapping of parameters", at,
                      hint="write name: value, name: [values] or name: {values: [...]}")
    out: dict[str, Any] = {}
    for name, cfg in params.items():
        here = at + (name,)
        if not isinstance(name, str) or not _PARAM_NAME.match(name):
            raise ck.fail(f"parameter name {name!r} is not allowed by W&B", here,
                          hint="use letters, digits, _ . - and start with a letter or _")
        if cfg is None:
            raise ck.fail(f"parameter {name!r} has no value", here,
                          hint=f"give one ({name}: 1), or write {name}: {{value: null}} for None")
        if isinstance(cfg, list):
            cfg = {"values": cfg}
        elif not isinstance(cfg, dict):
            cfg = {"value": cfg}
        else:
            cfg = dict(cfg)
        unknown = [k for k in cfg if k not in PARAM_KEYS]
        if unknown:
            raise ck.fail(f"parameter {name!r}: unknown key {unknown[0]!r}, {did_you_mean(str(unknown[0]), PARAM_KEYS)}",
                          here + (unknown[0],),
                          hint=f"to pass a mapping as a constant write {name}: {{value: {{...}}}}")
        if "parameters" in cfg:
            if len(cfg) > 1:
                raise ck.fail(f"parameter {name!r}: nested `parameters` cannot sit beside other keys", here)
            cfg["parameters"] = _normalise(ck, cfg["parameters"], here + ("parameters",))
        if "value" in cfg and "values" in cfg:
            raise ck.fail(f"parameter {name!r} has both value and values", here, hint="keep one")
        if "values" in cfg and (not isinstance(cfg["values"], list) or not cfg["values"]):
            raise ck.fail(f"parameter {name!r}: values is empty", here + ("values",),
                          hint="list at least one value, or remove the parameter")
        if "probabilities" in cfg:
            probs, values = cfg["probabilities"], cfg.get("values")
            if not isinstance(probs, list) or not isinstance(values, list) or len(probs) != len(values):
                raise ck.fail(f"parameter {name!r}: probabilities must be a list as long as values",
                              here + ("probabilities",))
        if "distribution" in cfg and cfg["distribution"] not in DISTRIBUTIONS:
            raise ck.fail(f"parameter {name!r}: unknown distribution {cfg['distribution']!r}, "
                          + did_you_mean(str(cfg["distribution"]), DISTRIBUTIONS), here + ("distribution",))
        out[name] = cfg
    return out


def _check_top(ck: _Checker, data: dict[str, Any]) -> None:
    """Top-level keys, method, metric, program/command, run_cap."""
    for key in data:
        if key not in WANDB_KEYS and key not in PRIVATE_KEYS:
            hint = ("`subtests:` goes inside `parameters:`" if key == "subtests"
                    else did_you_mean(str(key), WANDB_KEYS + PRIVATE_KEYS))
            raise ck.fail(f"unknown top-level key {key!r}", (key,), hint=hint)
    method = data.get("method")
    if method is None:
        raise ck.fail("no `method`", (), hint="add method: grid (or random, bayes)")
    if method not in METHODS:
        close = did_you_mean(str(method), METHODS) if isinstance(method, str) else ""
        raise ck.fail(f"unknown method {method!r} {close}".strip(), ("method",),
                      hint="use grid, random or bayes")
    if method == "bayes" and not data.get("metric"):
        raise ck.fail("method bayes needs a `metric` to optimise", ("method",),
                      hint="add metric: {name: valid_loss, goal: minimize}")
    if "metric" in data and not (isinstance(data["metric"], dict) and data["metric"].get("name")):
        raise ck.fail("metric must be a mapping with a name", ("metric",),
                      hint="write metric: {name: valid_loss, goal: minimize}")
    if "run_cap" in data:
        ck.positive_int(data["run_cap"], "run_cap", ("run_cap",))
    command = data.get("command")
    if command is not None:
        if not isinstance(command, list):
            raise ck.fail("command must be a list", ("command",),
                          hint="write command: [${env}, ${interpreter}, ${program}, ${args}]")
        for i, item in enumerate(command):
            text = str(item)
            if text.startswith("${") and text.endswith("}") and not text.startswith("${envvar:"):
                macro = text[2:-1]
                if macro == "args_dict":
                    raise ck.fail("${args_dict} puts only the parameter names on the command line",
                                  ("command", i), hint="use ${args_json} or ${args}")
                if macro not in COMMAND_MACROS:
                    raise ck.fail(f"unknown command macro {text!r} (W&B's agent would drop it silently), "
                                  + did_you_mean(macro, COMMAND_MACROS), ("command", i))
    uses_program = command is None or not command or any(str(c) == "${program}" for c in command)
    program = data.get("program")
    if uses_program and not (isinstance(program, str) and program.strip()):
        raise ck.fail("no `program` to run", (), hint="add program: main.py (the script W&B's agent runs)")


def _check_runs(path: Path, line: int, config: dict[str, Any]) -> None:
    """Surface what counting/expanding would reject (grid over a distribution, min > max) at file:line."""
    try:
        if config["method"] == "grid":
            count_runs(config)
        elif config["method"] == "random":
            expand_runs(config, count=1)
        else:
            for name, cfg in iter_params(config["parameters"]):
                param_kind(cfg, name=".".join(name))
    except ConfigError as exc:
        raise ConfigError(exc.message, path=str(path), line=line, hint=exc.hint) from None


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text)


def _short_hash(tags: tuple[str, ...]) -> str:
    return hashlib.sha256("\x1f".join(tags).encode()).hexdigest()[:8]


def _names(stem: str, tag_sets: list[tuple[str, ...]]) -> list[str]:
    """Names safe for files and job names; a hash of the raw tags is added when sanitising changed
    them, they were cut short, or two subtests would otherwise share a name."""
    base = _safe(stem) or "sweep"
    if base[0] in "-.":
        base = "_" + base[1:]
    names: list[str] = []
    altered: list[bool] = []
    for tags in tag_sets:
        if not tags:
            names.append(base)
            altered.append(False)
            continue
        text = "-".join(_safe(t) for t in tags)
        changed = text != "-".join(tags) or len(text) > _MAX_TAG_TEXT
        names.append(f"{base}_{text[:_MAX_TAG_TEXT]}")
        altered.append(changed)
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return [f"{n}-{_short_hash(t)}" if (a or counts[n] > 1) else n
            for n, t, a in zip(names, tag_sets, altered, strict=True)]


def load_composite(path: Path, *, tags_param: str | None = None) -> CompositeFile:
    """Load and validate a composite sweep file into one SweepSpec per subtest (per trial)."""
    path = Path(path)
    data, lines = load_yaml(path)
    ck = _Checker(path, lines)
    if not isinstance(data, dict):
        what = "empty" if data is None else f"a {type(data).__name__}, not a mapping"
        raise ck.fail(f"the sweep file is {what}", (),
                      hint="start from configs/simple_grid.yml: program, method, parameters")
    _check_top(ck, data)
    if "parameters" not in data:
        raise ck.fail("no `parameters`", (), hint="add parameters: {hp1: {values: [1, 2, 3]}}")
    raw_params = data["parameters"]
    if not isinstance(raw_params, dict) or not raw_params:
        raise ck.fail("`parameters` must be a non-empty mapping", ("parameters",))
    shared = dict(raw_params)
    subtests_raw = shared.pop("subtests", None)
    has_subtests = "subtests" in raw_params

    file_trials = (ck.positive_int(data["_num_trials"], "_num_trials", ("_num_trials",))
                   if "_num_trials" in data else None)
    file_nodes = (ck.positive_int(data["_num_nodes"], "_num_nodes", ("_num_nodes",))
                  if "_num_nodes" in data else None)
    shared_nodes, shared_trials = file_nodes, None
    if "_num_trials" in shared:
        shared_trials = ck.positive_int(shared.pop("_num_trials"), "_num_trials", ("parameters", "_num_trials"))
    if "_num_nodes" in shared:
        shared_nodes = ck.positive_int(shared.pop("_num_nodes"), "_num_nodes", ("parameters", "_num_nodes"))
    shared_norm = _normalise(ck, shared, ("parameters",)) if shared else {}

    # (tags, params, nodes, trials, line) per subtest
    entries: list[tuple[tuple[str, ...], dict[str, Any], int | None, int | None, int]] = []
    if not has_subtests:
        if not shared_norm:
            raise ck.fail("`parameters` holds no parameters", ("parameters",))
        entries.append(((), shared_norm, shared_nodes, shared_trials or file_trials, lines.line("parameters")))
    else:
        at = ("parameters", "subtests")
        if not isinstance(subtests_raw, dict) or not subtests_raw:
            raise ck.fail("`subtests` is empty", at,
                          hint='add at least one subtest: subtests: {"tag1,tag2": {hp1: [1, 2]}}')
        seen: dict[frozenset[str], str] = {}
        for key, sub in subtests_raw.items():
            here = at + (str(key),)
            tags = tuple(t.strip() for t in str(key).split(","))
            if any(not t for t in tags):
                raise ck.fail(f"subtest {str(key)!r} has an empty tag", here,
                              hint="tags are comma-separated names, e.g. iso_tests,hp1_iso")
            if len(set(tags)) != len(tags):
                raise ck.fail(f"subtest {str(key)!r} repeats a tag", here, hint="list each tag once")
            tagset = frozenset(tags)
            if tagset in seen:
                raise ck.fail(f"subtest {str(key)!r} has the same tags as {seen[tagset]!r}", here,
                              hint="give each subtest its own tag set")
            seen[tagset] = str(key)
            if not isinstance(sub, dict) or not sub:
                raise ck.fail(f"subtest {str(key)!r} is empty", here,
                              hint="give it at least one parameter (or remove it)")
            sub = dict(sub)
            nodes, trials = shared_nodes, shared_trials or file_trials
            if "_num_nodes" in sub:
                nodes = ck.positive_int(sub.pop("_num_nodes"), "_num_nodes", here + ("_num_nodes",))
            if "_num_trials" in sub:
                trials = ck.positive_int(sub.pop("_num_trials"), "_num_trials", here + ("_num_trials",))
            merged = dict(shared_norm)
            if sub:
                merged.update(_normalise(ck, sub, here))
            if not merged:
                raise ck.fail(f"subtest {str(key)!r} has no parameters", here)
            entries.append((tags, merged, nodes, trials, lines.line(*here)))

    names = _names(path.stem, [e[0] for e in entries])
    final = [[n if t is None else f"{n}-t{t}" for t in (range(e[3]) if e[3] else [None])]
             for n, e in zip(names, entries, strict=True)]
    flat = [n for group in final for n in group]
    clashing = {n for n in flat if flat.count(n) > 1}
    for i, group in enumerate(final):  # e.g. tag "a-t0" beside tag "a" with trials
        if clashing.intersection(group):
            names[i] = f"{names[i]}-{_short_hash(entries[i][0])}"
    top = {k: v for k, v in data.items() if k not in PRIVATE_KEYS}
    for entry in entries:
        _check_runs(path, entry[4], {**top, "parameters": entry[1]})
    sweeps: list[SweepSpec] = []
    for name, (tags, params, nodes, trials, line) in zip(names, entries, strict=True):
        if tags_param is not None:
            if tags_param in params:
                raise ConfigError(f"parameter {tags_param!r} is set in the file and also added for tags",
                                  path=str(path), line=line, hint=f"rename the parameter or drop {tags_param}")
            params = {**params, tags_param: {"value": ",".join(tags)}}
        for trial in range(trials) if trials else [None]:
            config = {**top, "parameters": params}
            sweeps.append(SweepSpec(
                name=name if trial is None else f"{name}-t{trial}", tags=tags,
                config=_copy(config), num_nodes=nodes, line=line))
    return CompositeFile(path=path, sweeps=tuple(sweeps))


def _copy(value: Any) -> Any:
    """Deep copy of plain YAML data, so sweeps never share mutable parts (W&B mutates `command`)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
