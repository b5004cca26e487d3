"""Test program for the Day 2 tests: --mode ok exits 0, raise raises a ValueError (a real traceback on
stderr), sleep and hang sleep for ten minutes (killed by the time limit, or cancelled)."""

import argparse
import time

parser = argparse.ArgumentParser()
parser.add_argument("--mode", default="ok")
parser.add_argument("--lr", type=float, default=0.1)
args, _ = parser.parse_known_args()
print(f"started mode={args.mode} lr={args.lr}", flush=True)
if args.mode == "raise":
    raise ValueError(f"lr too large for this run: {args.lr}")
if args.mode in ("sleep", "hang"):
    for i in range(600):
        print(f"tick {i}", flush=True)
        time.sleep(1)
print("finished", flush=True)
