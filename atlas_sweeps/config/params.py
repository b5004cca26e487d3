"""Run counting and expansion of one W&B sweep config, following the rules of W&B's `sweeps` engine
(grid: product of sorted parameters, a value repeated with the same YAML text collapsed, so 10 and 10.0
stay two runs; random: independent draws), so the embedded local backend runs what W&B would and
`launch` can say how many runs a file means."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from typing import Any

import yaml

from atlas_sweeps.errors import ConfigError

# distribution name -> sampler(rng, cfg); a parameter's kind is one of these or constant/categorical/dict.
DISTRIBUTIONS = (
    "constant", "categorical", "categorical_w_probabilities", "int_uniform", "uniform", "q_uniform",
    "log_uniform", "log_uniform_values", "inv_log_uniform", "inv_log_uniform_values",
    "q_log_uniform", "q_log_uniform_values", "normal", "q_normal", "log_normal", "q_log_normal",
    "beta", "q_beta",
)
PARAM_KEYS = ("value", "values", "distribution", "min", "max", "mu", "sigma", "q", "probabilities",
              "a", "b", "parameters")

ParamPath = tuple[str, ...]


def param_kind(cfg: dict[str, Any], *, name: str = "?") -> str:
    """The kind of one parameter dict, as W&B infers it: a distribution name, or "dict" for nesting."""
    if "parameters" in cfg:
        return "dict"
    if "distribution" in cfg:
        dist = cfg["distribution"]
        if dist not in DISTRIBUTIONS:
            raise ConfigError(f"parameter {name}: unknown distribution {dist!r}",
                              hint="use one of: " + ", ".join(DISTRIBUTIONS))
        if dist == "categorical" and "probabilities" in cfg:
            return "categorical_w_probabilities"
        return str(dist)
    if "value" in cfg:
        return "constant"
    if "values" in cfg:
        return "categorical_w_probabilities" if "probabilities" in cfg else "categorical"
    if "min" in cfg and "max" in cfg:
        both_int = all(isinstance(cfg[k], int) and not isinstance(cfg[k], bool) for k in ("min", "max"))
        return "int_uniform" if both_int else "uniform"
    raise ConfigError(f"parameter {name}: cannot tell what it is from keys {sorted(cfg)}",
                      hint="give value, values, min/max or a distribution")


def iter_params(parameters: dict[str, Any], prefix: ParamPath = ()) -> Iterator[tuple[ParamPath, dict]]:
    """Leaf parameters as (path, dict), nested `parameters` flattened depth-first in W&B's sorted order."""
    for name in sorted(parameters, key=str):
        cfg = parameters[name]
        if not isinstance(cfg, dict):
            raise ConfigError(f"parameter {'.'.join(prefix + (str(name),))} is not a mapping",
                              hint="write it as {value: x}, {values: [...]} or a distribution")
        if "parameters" in cfg:
            yield from iter_params(cfg["parameters"], prefix + (str(name),))
        else:
            yield prefix + (str(name),), cfg


def _yaml_key(value: Any) -> str:
    """A value's identity in W&B's grid (``sweeps.grid_search.yaml_hash``, without the md5): its YAML text,
    so 10, 10.0, true and "10" are four values, while lists and mappings count by content, keys sorted."""
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=True)


def _arange(lo: float, hi: float, q: float) -> list[Any]:
    """``numpy.arange(lo, hi, q).tolist()`` exactly, as W&B's grid enumerates q_uniform: floats if any
    bound or step is a float, and numpy's rounding (``lo + i * ((lo + q) - lo)`` from the third point)."""
    size = max(0, math.ceil((hi - lo) / q))
    if any(isinstance(v, float) for v in (lo, hi, q)):
        lo, hi, q = float(lo), float(hi), float(q)
    step = (lo + q) - lo
    return [lo, lo + q][:size] + [lo + i * step for i in range(2, size)]


def _grid_values(path: ParamPath, cfg: dict[str, Any]) -> list[Any]:
    """The distinct values one parameter takes in a grid, in W&B's order: a value repeated (same YAML text)
    counts once, at its first place, holding its last spelling (as ``sweeps``' hash lookup does)."""
    name = ".".join(path)
    kind = param_kind(cfg, name=name)
    if kind == "constant":
        return [cfg["value"]]
    if kind == "categorical":
        raw = cfg["values"]
        if not isinstance(raw, list) or not raw:
            raise ConfigError(f"parameter {name}: `values` must be a non-empty list")
    elif kind == "int_uniform":
        lo, hi = _bounds(name, cfg, ints=True)
        raw = list(range(lo, hi + 1))
    elif kind == "q_uniform":
        lo, hi = _bounds(name, cfg)
        raw = _arange(lo, hi, cfg.get("q", 1.0))
    else:
        raise ConfigError(
            f"parameter {name} uses {kind}, which a grid search cannot enumerate",
            hint="grid needs value, values, int_uniform or q_uniform (use method: random for distributions)")
    distinct: dict[str, Any] = {}
    for v in raw:
        distinct[_yaml_key(v)] = v  # a repeated key keeps its first place and takes the later value
    return list(distinct.values())


def _bounds(name: str, cfg: dict[str, Any], *, ints: bool = False) -> tuple[Any, Any]:
    try:
        lo, hi = cfg["min"], cfg["max"]
    except KeyError as exc:
        raise ConfigError(f"parameter {name}: missing {exc.args[0]!r}", hint="give both min and max") from None
    kinds = (int,) if ints else (int, float)
    if not all(isinstance(v, kinds) and not isinstance(v, bool) for v in (lo, hi)):
        raise ConfigError(f"parameter {name}: min and max must be {'integers' if ints else 'numbers'}")
    if lo > hi:
        raise ConfigError(f"parameter {name}: min {lo} is greater than max {hi}")
    if lo == hi:  # W&B's engine refuses it too (sweeps' validate_min_max): min must be less than max
        raise ConfigError(f"parameter {name}: min and max are both {lo}",
                          hint=f"W&B needs min < max; for a single value write {{value: {lo}}}")
    return lo, hi


def _method(config: dict[str, Any]) -> str:
    method = config.get("method")
    if method not in ("grid", "random", "bayes"):
        raise ConfigError(f"unknown sweep method {method!r}", hint="use method: grid, random or bayes")
    return str(method)


def _cap(config: dict[str, Any], count: int | None) -> int | None:
    """The smaller of run_cap and an explicit count (W&B stops a sweep at run_cap)."""
    caps = [c for c in (config.get("run_cap"), count) if c is not None]
    return min(caps) if caps else None


def count_runs(config: dict[str, Any], *, count: int | None = None) -> int:
    """How many runs the sweep makes: grid size (capped by run_cap/count); random/bayes need a cap."""
    method = _method(config)
    cap = _cap(config, count)
    if method == "grid":
        size = math.prod(len(_grid_values(p, c)) for p, c in iter_params(config.get("parameters") or {}))
        return size if cap is None else min(size, cap)
    if cap is None:
        raise ConfigError(f"a {method} sweep never ends on its own, so its run count is unknown",
                          hint="add run_cap: N to the sweep file or pass --count N")
    return cap


def expand_runs(config: dict[str, Any], *, count: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """Every run's parameters ({name: value}, nested parameters as nested dicts), as W&B would choose
    them: grid in W&B's order, random as `count`/`run_cap` seeded draws. Bayes needs W&B's server."""
    method = _method(config)
    params = list(iter_params(config.get("parameters") or {}))
    if method == "bayes":
        raise ConfigError("bayes needs the W&B backend (--backend wandb)",
                          hint="or use method: grid or random with the local backend")
    if method == "grid":
        axes = [_grid_values(p, c) for p, c in params]
        combos = itertools.product(*axes)
        cap = _cap(config, count)
        if cap is not None:
            combos = itertools.islice(combos, cap)
        return [_nest(zip((p for p, _ in params), combo, strict=True)) for combo in combos]
    n = count_runs(config, count=count)
    rng = random.Random(seed)
    return [_nest((p, _sample(rng, p, c)) for p, c in params) for _ in range(n)]


def _nest(pairs: Any) -> dict[str, Any]:
    run: dict[str, Any] = {}
    for path, value in pairs:
        at = run
        for part in path[:-1]:
            at = at.setdefault(part, {})
        at[path[-1]] = value
    return run


def _quantize(x: float, q: Any) -> Any:
    r = round(x / q) * q  # round-half-even, like numpy.round
    return int(r) if isinstance(q, int) and not isinstance(q, bool) else float(r)


def _sample(rng: random.Random, path: ParamPath, cfg: dict[str, Any]) -> Any:
    """One draw from a parameter, with W&B's defaults (mu 0, sigma 1, q 1.0, a=b=1)."""
    name = ".".join(path)
    kind = param_kind(cfg, name=name)
    mu, sigma, q = cfg.get("mu", 0.0), cfg.get("sigma", 1.0), cfg.get("q", 1.0)
    if kind == "constant":
        return cfg["value"]
    if kind in ("categorical", "categorical_w_probabilities"):
        values = cfg.get("values")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"parameter {name}: `values` must be a non-empty list")
        if kind == "categorical":
            return values[rng.randrange(len(values))]
        probs = cfg["probabilities"]
        if len(probs) != len(values):
            raise ConfigError(f"parameter {name}: {len(probs)} probabilities for {len(values)} values")
        return rng.choices(values, weights=probs)[0]
    if kind in ("normal", "q_normal"):
        x = rng.gauss(mu, sigma)
        return x if kind == "normal" else _quantize(x, q)
    if kind in ("log_normal", "q_log_normal"):
        x = math.exp(rng.gauss(mu, sigma))
        return x if kind == "log_normal" else _quantize(x, q)
    if kind in ("beta", "q_beta"):
        x = rng.betavariate(cfg.get("a", 1.0), cfg.get("b", 1.0))
        return x if kind == "beta" else _quantize(x, q)
    lo, hi = _bounds(name, cfg, ints=kind == "int_uniform")
    if kind == "int_uniform":
        return rng.randint(lo, hi)
    if kind in ("log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values") and lo <= 0:
        raise ConfigError(f"parameter {name}: {kind} needs min > 0")
    if kind == "uniform":
        return rng.uniform(lo, hi)
    if kind == "q_uniform":
        return _quantize(rng.uniform(lo, hi), q)
    if kind == "log_uniform":  # min/max are exponents of e
        return math.exp(rng.uniform(lo, hi))
    if kind == "log_uniform_values":
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))
    if kind == "inv_log_uniform":
        return math.exp(-rng.uniform(lo, hi))
    if kind == "inv_log_uniform_values":
        return math.exp(-rng.uniform(-math.log(hi), -math.log(lo)))
    if kind == "q_log_uniform":
        return _quantize(math.exp(rng.uniform(lo, hi)), q)
    if kind == "q_log_uniform_values":
        return _quantize(math.exp(rng.uniform(math.log(lo), math.log(hi))), q)
    raise ConfigError(f"parameter {name}: distribution {kind} is not supported by the local backend",
                      hint="use the W&B backend (--backend wandb)")
