"""A sweep's run parameters as ``status`` shows them (pure): only the ones that vary within the sweep, as
``bs=64 lr=0.1``, so a row says which run it is without repeating what every run shares."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def varying_keys(runs: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The parameter names whose values differ between ``runs`` (or that some runs lack), in first-seen order."""
    if not runs:
        return ()
    keys: dict[str, None] = {}
    for run in runs:
        keys.update(dict.fromkeys(run))
    missing = object()
    first = runs[0]
    return tuple(k for k in keys if any(run.get(k, missing) != first.get(k, missing) for run in runs))


def searched_keys(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The parameters a W&B sweep config searches over (several ``values``, a range or a distribution): what
    varies between its runs when the runs are not known in advance."""
    params = config.get("parameters") if isinstance(config, Mapping) else None
    if not isinstance(params, Mapping):
        return ()
    return tuple(k for k, spec in params.items() if isinstance(spec, Mapping) and (
        (isinstance(spec.get("values"), list) and len(spec["values"]) > 1)
        or any(x in spec for x in ("min", "max", "distribution"))))


def params_label(params: Mapping[str, Any], keys: Sequence[str]) -> str:
    """``params``'s ``keys`` as ``k=v`` words."""
    return " ".join(f"{k}={_text(params[k])}" for k in keys if k in params)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if type(value) in (int, float):  # most values, thousands a refresh: str is json's text for them, cheaper
        return str(value)
    try:
        return json.dumps(value, sort_keys=True)
    except TypeError:
        return repr(value)
