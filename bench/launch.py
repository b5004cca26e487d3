"""Benchmark: remote round trips and wall time of ``atlas-sweeps launch`` for 1 sweep x 1 node against
10 sweeps x 8 nodes, side by side, on the sandbox cluster (run ``atlas-sweeps sandbox up`` first, as root).

    .venv/bin/python bench/launch.py [--repeat 3]

The jobs are cancelled right after each launch: this measures launching, not running."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SANDBOX = Path(os.environ.get("ATLAS_SANDBOX_DIR", "/var/lib/atlas-sweeps/sandbox"))


def sweep_file(sweeps: int, runs: int) -> str:
    subtests = "\n".join(f"    bench,s{i}:\n      x:\n        values: [{', '.join(str(v) for v in range(runs))}]"
                         for i in range(sweeps))
    return f"program: noop.py\nmethod: grid\nparameters:\n  seed: 1\n  subtests:\n{subtests}\n"


def ssh(command: str) -> str:
    argv = ["ssh", "-p", "2222", "-i", str(SANDBOX / "keys" / "atlas_ed25519"), "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={SANDBOX / 'known_hosts'}",
            "atlas@127.0.0.1", command]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def launch_once(project: Path, env: dict[str, str], name: str, nodes: int) -> tuple[float, int, int]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "atlas_sweeps", "launch", name, "--cluster", "sandbox",
                          "--nodes", str(nodes), "--json"], cwd=project, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"launch failed: {out.stderr}")
    doc = json.loads(out.stdout)
    ssh(f"scancel --name={','.join(j['job_name'] for s in doc['sweeps'] for j in s['jobs'])}")
    return elapsed, doc["remote_calls"], sum(len(s["jobs"]) for s in doc["sweeps"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"  # synced to the cluster; the state database lives beside it, not in it
        project.mkdir()
        (project / "noop.py").write_text("import sys\n")
        (project / "small.yml").write_text(sweep_file(1, 1))
        (project / "large.yml").write_text(sweep_file(10, 8))
        env = {**os.environ, "ATLAS_SWEEPS_STATE_DIR": str(Path(tmp) / "state"), "PYTHONPATH": str(ROOT)}
        env.pop("WANDB_API_KEY", None)
        rows = []
        for label, name, nodes in (("1 sweep x 1 node", "small", 1), ("10 sweeps x 8 nodes", "large", 8)):
            runs = [launch_once(project, env, name, nodes) for _ in range(args.repeat)]
            times = [r[0] for r in runs]
            rows.append((label, runs[0][2], runs[0][1], statistics.median(times), min(times)))
    print("| launch | job arrays | remote calls | wall time (median) | wall time (best) |")
    print("|---|---|---|---|---|")
    for label, arrays, calls, median, best in rows:
        print(f"| {label} | {arrays} | {calls} | {median:.2f} s | {best:.2f} s |")


if __name__ == "__main__":
    main()
