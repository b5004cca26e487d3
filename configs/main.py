"""Example training program for the sweep files in this directory (the tutorial's `main.py`).

Takes --hp1..--hp4, --seed, --wdb_entity, --tags (and --_tags), ignores other flags, logs a few
`train_loss` steps and a `valid_loss` summary to W&B (online or offline), and finishes in a second or two.
Project and entity come from the environment (WANDB_PROJECT/WANDB_ENTITY), as W&B's agent sets them.

Test hooks: it always prints one line `ATLAS_EXAMPLE_RECORD {json}` with what it received (argv and the
W&B environment); `--fail-with N` or env ATLAS_EXAMPLE_EXIT=N makes it exit N after logging.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _number(text: str) -> float | str:
    """Numbers as floats; anything else kept as text, so odd sweep values never crash the example."""
    try:
        return float(text)
    except ValueError:
        return text


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("hp1", "hp2", "hp3", "hp4"):
        parser.add_argument(f"--{name}", type=_number, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--wdb_entity", default=None, help="ignored: the entity comes from the environment")
    parser.add_argument("--tags", default=None)
    parser.add_argument("--_tags", dest="_tags", default=None)
    parser.add_argument("--fail-with", dest="fail_with", type=int, default=None)
    parser.add_argument("--steps", type=int, default=5)
    return parser.parse_known_args(argv)


def _record(argv: list[str]) -> None:
    keys = ("WANDB_TAGS", "WANDB_RUN_GROUP", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_MODE",
            "WANDB_SWEEP_ID", "WANDB_RUN_ID")
    record = {"argv": argv, **{k: os.environ.get(k) for k in keys}, "cwd": os.getcwd()}
    print("ATLAS_EXAMPLE_RECORD " + json.dumps(record, sort_keys=True), flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _record(argv)
    args, unknown = _parse(argv)
    if unknown:
        print(f"main.py: ignoring unknown arguments {unknown}", file=sys.stderr)
    import wandb  # after the record line, so even a broken W&B install leaves evidence

    config = {k: v for k, v in vars(args).items() if k not in ("fail_with", "steps")}
    run = wandb.init(config=config)
    hp1, hp2 = (v if isinstance(v, float) else 0.0 for v in (args.hp1, args.hp2))
    loss = 1.0 + abs(hp1 - 2) + abs(hp2 - 5) / 10
    for step in range(args.steps):
        loss *= 0.8
        run.log({"train_loss": loss}, step=step)
        print(f"step {step}: train_loss={loss:.4f}", flush=True)
        time.sleep(0.05)
    run.summary["valid_loss"] = loss * 1.1
    exit_code = args.fail_with if args.fail_with is not None else int(os.environ.get("ATLAS_EXAMPLE_EXIT", "0"))
    run.finish(exit_code=exit_code)
    print(f"done: valid_loss={loss * 1.1:.4f} exit={exit_code}", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
