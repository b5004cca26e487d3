"""A program that survives preemption and time limits (README: "Preemption and time limits"): it saves a
checkpoint named by its run id on SIGUSR1 and loads it at start, so a requeued task continues the same run."""
import json, os, signal, sys, time

run_id = os.environ.get("WANDB_RUN_ID") or os.environ.get("ATLAS_RUN_ID") or "local"
path = os.path.join(os.environ.get("WANDB_DIR", "."), f"ckpt-{run_id}.json")  # outlives the job
state = json.load(open(path)) if os.path.exists(path) else {"step": 0}  # resumed when it exists
def checkpoint(signum, frame):
    json.dump(state, open(path, "w")); sys.exit(0)  # then the task requeues itself
signal.signal(signal.SIGUSR1, checkpoint)
while state["step"] < 1000:
    time.sleep(1); state["step"] += 1  # one training step
