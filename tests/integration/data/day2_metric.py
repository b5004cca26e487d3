"""Test program for the Day 2 report: logs val_loss = (lr - 0.3)^2 + 0.1 / (epoch + 1) to W&B (offline on
the local backend) for three epochs; lr = 0.3 then raises (a failed run, never the best one)."""

import argparse

import wandb

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
args, _ = parser.parse_known_args()
run = wandb.init(config={"lr": args.lr})
for epoch in range(3):
    wandb.log({"epoch": epoch, "val_loss": (args.lr - 0.3) ** 2 + 0.1 / (epoch + 1)})
if abs(args.lr - 0.3) < 1e-9:
    raise RuntimeError(f"diverged at lr={args.lr}")
run.finish()
print("finished", flush=True)
