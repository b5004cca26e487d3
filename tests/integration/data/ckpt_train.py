"""Test program for the preemption tests: a training loop of --steps one-second steps that checkpoints every
step (and on SIGUSR1, then exits) to checkpoints/<run id>.json under WANDB_DIR, and resumes from it at start.
With --wandb it logs to W&B and, on SIGUSR1, marks the run preempting and stops unfinished (exit 1), so the
sweep hands it out again as the same run."""

import argparse
import json
import os
import signal
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=30)
parser.add_argument("--wandb", type=lambda v: v == "True", default=False)
args, _ = parser.parse_known_args()
run = None
if args.wandb:
    import wandb

    run = wandb.init()
run_id = run.id if run else os.environ.get("WANDB_RUN_ID") or os.environ.get("ATLAS_RUN_ID") or "no-run-id"
folder = os.path.join(os.environ.get("WANDB_DIR") or ".", "checkpoints")  # outlives the job; the snapshot is read-only
path = os.path.join(folder, f"{run_id}.json")
state = {"step": 0, "starts": []}
if os.path.exists(path):
    with open(path) as fh:
        state = json.load(fh)
state["starts"].append(state["step"])  # where each attempt began: [0, 12] means it resumed at step 12


def save() -> None:
    os.makedirs(folder, exist_ok=True)
    with open(path + ".tmp", "w") as fh:
        json.dump(state, fh)
    os.replace(path + ".tmp", path)


def on_signal(signum: int, _frame: object) -> None:
    save()
    if run:
        run.mark_preempting()
    print(f"checkpointed at step {state['step']} on signal {signum}", flush=True)
    sys.exit(1 if run else 0)


signal.signal(signal.SIGUSR1, on_signal)
print(f"run {run_id} starts at step {state['step']} (restarts: {os.environ.get('ATLAS_RESTARTS')})", flush=True)
save()
while state["step"] < args.steps:
    time.sleep(1)
    state["step"] += 1
    save()
    if run:
        run.log({"step": state["step"]})
    print(f"step {state['step']}", flush=True)
print(f"finished at step {state['step']}", flush=True)
