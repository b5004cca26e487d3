"""Test program for packing: records its run, CUDA_VISIBLE_DEVICES, pid and start/end times as JSON in --out
(default /tmp/atlas-pack-probe/$ATLAS_LAUNCH), prints lines naming its run, and fails with 5 when --fail
equals --run."""

import argparse
import json
import os
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--run", type=int, required=True)
parser.add_argument("--seconds", type=float, default=3)
parser.add_argument("--fail", type=int, default=-1)
parser.add_argument("--out", default=os.path.join("/tmp/atlas-pack-probe", os.environ.get("ATLAS_LAUNCH", "x")))
args, _ = parser.parse_known_args()
os.makedirs(args.out, exist_ok=True)
start = time.time()
print(f"probe run={args.run} starts", flush=True)
time.sleep(args.seconds)
record = {"run": args.run, "cvd": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid(),
          "start": start, "end": time.time(), "atlas_run": os.environ.get("ATLAS_RUN")}
with open(os.path.join(args.out, f"run{args.run}.{os.getpid()}.json"), "w") as f:
    json.dump(record, f)
print(f"probe run={args.run} done", flush=True)
if args.run == args.fail:
    print(f"ValueError: run {args.run} was told to fail", file=sys.stderr, flush=True)
    sys.exit(5)
