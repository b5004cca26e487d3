"""Benchmark: how fast the CLI starts (``--help``, ``launch --help``) against the interpreter's own start
(``python -c pass``), and whether wandb gets imported.

    .venv/bin/python bench/startup.py [--repeat 10]"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def median_time(argv: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(args: list[str], repeat: int) -> tuple[float, bool]:
    median = median_time([sys.executable, "-m", "atlas_sweeps", *args], repeat)
    trace = subprocess.run([sys.executable, "-X", "importtime", "-m", "atlas_sweeps", *args], capture_output=True,
                           text=True, check=True).stderr
    wandb = any(line.split("|")[-1].strip() == "wandb" for line in trace.splitlines())
    return median, wandb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    repeat = parser.parse_args().repeat
    print("| command | wall time (median) | imports wandb |")
    print("|---|---|---|")
    print(f"| python -c pass (the floor) | {median_time([sys.executable, '-c', 'pass'], repeat) * 1000:.0f} ms | no |")
    for args in (["--help"], ["launch", "--help"], ["status", "--help"]):
        try:
            median, wandb = measure(args, repeat)
        except subprocess.CalledProcessError:
            continue
        print(f"| atlas-sweeps {' '.join(args)} | {median * 1000:.0f} ms | {'yes' if wandb else 'no'} |")


if __name__ == "__main__":
    main()
