"""Test program for the status/tail tests: prints `tick N run=R` every half second for --seconds, then
exits 3 for run 4 (0 otherwise), so tests see running output, completions and a failure."""

import argparse
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--seconds", type=float, default=5)
parser.add_argument("--run", type=int, default=0)
args, _ = parser.parse_known_args()
for i in range(int(args.seconds * 2)):
    print(f"tick {i} run={args.run}", flush=True)
    time.sleep(0.5)
print(f"finished run={args.run}", flush=True)
sys.exit(3 if args.run == 4 else 0)
