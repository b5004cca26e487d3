"""Test program for the preemption tests: a training loop of --steps one-second steps that checkpoints every
step (and on SIGUSR1, then exits) to checkpoints/<run id>.json, and resumes from it at start."""

import argparse
import json
import os
import signal
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=30)
args, _ = parser.parse_known_args()
run_id = os.environ.get("WANDB_RUN_ID") or os.environ.get("ATLAS_RUN_ID") or "no-run-id"
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
    print(f"checkpointed at step {state['step']} on signal {signum}", flush=True)
    sys.exit(0)


signal.signal(signal.SIGUSR1, on_signal)
print(f"run {run_id} starts at step {state['step']} (restarts: {os.environ.get('ATLAS_RESTARTS')})", flush=True)
save()
while state["step"] < args.steps:
    time.sleep(1)
    state["step"] += 1
    save()
    print(f"step {state['step']}", flush=True)
print(f"finished at step {state['step']}", flush=True)
