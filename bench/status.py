"""Benchmark of ``status``: remote calls per refresh on the sandbox (1 job and many jobs) and the local time
to parse and render 5,000 array tasks from recorded squeue/sacct output. Prints a markdown table.

    .venv/bin/python bench/status.py              (the sandbox must be up: atlas-sweeps sandbox up)
    .venv/bin/python bench/status.py --no-sandbox (only the local parse/merge/render figures)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
CLI = str(ROOT / ".venv" / "bin" / "atlas-sweeps")
PROGRAM = ROOT / "tests" / "integration" / "data" / "status_sleep.py"

# One recorded line of each kind (sandbox, slurm-wlm 22.05.8); the bench repeats them with new task ids.
SQUEUE_RUNNING = "{j}|{t}|{r}|RUNNING|None|vm|0:04|10:00|2026-11-28T07:06:58|2026-11-28T07:16:58|0|0"
SQUEUE_PENDING = "{j}|{t}|{r}|PENDING|JobArrayTaskLimit||0:00|10:00|N/A|N/A|0|0"
SACCT_DONE = "{j}_{t}|{r}|COMPLETED|0:0|00:00:04|00:10:00|2026-11-28T07:06:58|2026-11-28T07:07:02|vm|None"


def _launch(tmp: Path, runs: int, state: Path) -> tuple[str, str]:
    work = tmp / f"runs{runs}"
    work.mkdir()
    shutil.copy(PROGRAM, work / "status_sleep.py")
    (work / "bench.yml").write_text(
        "program: status_sleep.py\nmethod: grid\nparameters:\n  seconds:\n    value: 20\n"
        f"  run:\n    values: [{', '.join(str(i) for i in range(runs))}]\n")
    env = {**os.environ, "ATLAS_SWEEPS_STATE_DIR": str(state)}
    out = subprocess.run([CLI, "launch", "bench", "--cluster", "sandbox", "--nodes", "2", "--json"], cwd=work,
                         env=env, capture_output=True, text=True, check=True)
    doc = json.loads(out.stdout)
    return doc["launch"], doc["sweeps"][0]["jobs"][0]["job_id"]


def remote_calls(runs: int, tmp: Path) -> tuple[float, float]:
    """Remote calls per refresh and seconds per refresh over three refreshes of a launch of ``runs`` tasks."""
    from atlas_sweeps.config.profile import load_profile
    from atlas_sweeps.remote import open_remote
    from atlas_sweeps.state.store import StateDB
    from atlas_sweeps.status.poller import Poller

    state = tmp / f"state{runs}"
    launch_id, _ = _launch(tmp, runs, state)
    os.environ["ATLAS_SWEEPS_STATE_DIR"] = str(state)
    db = StateDB.open_default()
    remotes = []

    def factory(cluster: str):  # type: ignore[no-untyped-def]
        remotes.append(open_remote(load_profile(cluster, project_dir=ROOT)))
        return remotes[-1]

    poller = Poller(db=db, remote_factory=factory)
    launch = db.launch(launch_id)
    poller.poll([launch])  # opens the session
    before = sum(r.calls for r in remotes)
    start = time.perf_counter()
    for _ in range(3):
        snap = poller.poll([launch])
        assert snap.error is None, snap.error
    elapsed = (time.perf_counter() - start) / 3
    calls = (sum(r.calls for r in remotes) - before) / 3
    poller.close()
    subprocess.run([CLI, "cancel", launch_id, "--yes"], env={**os.environ}, capture_output=True)
    return calls, elapsed


def parse_render(tasks: int) -> dict[str, float]:
    """Seconds to parse, merge, and render ``tasks`` array tasks (half running/pending in squeue, half done
    in sacct), as ``--once`` (every row: the plain renderer it uses above PLAIN_ROWS, and rich's Table for
    comparison) and live (40 rows)."""
    from atlas_sweeps.slurm.merge import merge_tasks
    from atlas_sweeps.slurm.sacct import parse_sacct
    from atlas_sweeps.slurm.squeue import parse_squeue
    from atlas_sweeps.state.store import JobRecord, LaunchRecord, SweepRecord
    from atlas_sweeps.status.document import status_document
    from atlas_sweeps.status.model import StatusSnapshot, build_launch_status
    from atlas_sweeps.status.view import render_status

    job = "5000"
    half = tasks // 2
    squeue = "\n".join((SQUEUE_RUNNING if t < half + 100 else SQUEUE_PENDING).format(j=job, t=t, r=10000 + t)
                       for t in range(half, tasks))
    sacct = "\n".join(SACCT_DONE.format(j=job, t=t, r=10000 + t) for t in range(half))
    launch = LaunchRecord(id="bench", created=time.time(), config_path="bench.yml", config_text="", cluster="c",
                          backend="local", nodes=100, remote_dir="/r", snapshot="", status="submitted",
                          total_runs=tasks, total_hours=1.0)
    sweeps = [SweepRecord(launch_id="bench", name="bench", tags=(), runs=tasks, jobs=100, config={}, log_dir="/l")]
    jobs = [JobRecord(launch_id="bench", sweep_name="bench", chunk=0, job_id=job, job_name="atlas-bench-bench",
                      array_spec=f"0-{tasks - 1}%100", task_offset=0, task_count=tasks, output="/l/%A_%a.out",
                      error="/l/%A_%a.err", script="/s", submitted=time.time())]
    logs = {(job, t): f"step {t} loss=0.123" for t in range(half, half + 100)}
    figures = {}
    t0 = time.perf_counter()
    live = parse_squeue(squeue, job_ids=[job])
    done = parse_sacct(sacct, job_ids=[job])
    states = merge_tasks(arrays={job: tasks}, squeue=live, sacct=done, last_seen=[])
    status = build_launch_status(launch, sweeps, jobs, states=states, log_lines=logs, polled=time.time(),
                                 accounting=True)
    figures["parse + merge"] = time.perf_counter() - t0
    parsed = figures["parse + merge"]
    snap = StatusSnapshot(launches=(status,), refreshed=time.time())
    views = (("render --once (all rows, plain aligned text)", None, None, False),
             ("render --once (all rows, plain, colored terminal)", None, None, True),
             ("render --once (all rows, rich Table as before)", None, False, False),
             ("render live (40 rows)", 40, None, False))
    for name, rows, plain, color in views:
        if plain is False and tasks > 5000:
            continue  # rich's Table takes about a millisecond per row
        console = Console(file=io.StringIO(), width=160, color_system="truecolor" if color else None,
                          force_terminal=color)
        t0 = time.perf_counter()
        console.print(render_status(snap, live=rows is not None, max_rows=rows, plain=plain), crop=False)
        figures[name] = time.perf_counter() - t0
        if rows is not None:
            figures["parse + merge + render live (what a refresh costs here)"] = parsed + figures[name]
    t0 = time.perf_counter()
    json.dumps(status_document(snap))
    figures["--json document"] = time.perf_counter() - t0
    return figures


def stored_refresh(tasks: int, tmp: Path) -> float:
    """Seconds of a whole refresh of ``tasks`` array tasks but the SSH round trip: the poll's recorded answer
    parsed, merged with the last states seen, written to the state database (best of three after the first)."""
    import base64

    from atlas_sweeps.remote.base import Result
    from atlas_sweeps.state.store import JobRecord, LaunchRecord, StateDB, SweepRecord
    from atlas_sweeps.status.poller import Poller

    job, half = "5000", tasks // 2
    squeue = "\n".join((SQUEUE_RUNNING if t < half + 100 else SQUEUE_PENDING).format(j=job, t=t, r=10000 + t)
                       for t in range(half, tasks))
    sacct = "\n".join(SACCT_DONE.format(j=job, t=t, r=10000 + t) for t in range(half))
    answer = "".join(f"ATLAS {key} {base64.b64encode(value.encode()).decode()}\n" for key, value in
                     (("squeue", squeue), ("accounting", "yes"), ("sacct", sacct), ("done", "ok")))

    class Recorded:  # the login node's answer, as recorded; no session
        calls = 0

        def run_script(self, script: str, *, timeout: float | None = None) -> Result:
            return Result(command="bash -s", exit_code=0, stdout=answer, stderr="")

        def describe(self) -> str:
            return "recorded answer, no session"

        def close(self) -> None:
            pass

    db = StateDB(tmp / f"refresh{tasks}.db")
    db.add_launch(LaunchRecord(id="bench", created=time.time(), config_path="bench.yml", config_text="", cluster="c",
                               backend="local", nodes=100, remote_dir="/r", snapshot="", status="submitted",
                               total_runs=tasks, total_hours=1.0))
    db.add_sweep(SweepRecord(launch_id="bench", name="bench", tags=(), runs=tasks, jobs=1, config={}, log_dir="/l"))
    db.add_job(JobRecord(launch_id="bench", sweep_name="bench", chunk=0, job_id=job, job_name="atlas-bench-bench",
                         array_spec=f"0-{tasks - 1}%100", task_offset=0, task_count=tasks, output="/l/%A_%a.out",
                         error="/l/%A_%a.err", script="/s", submitted=time.time()))
    poller = Poller(db=db, remote_factory=lambda _cluster: Recorded())  # type: ignore[arg-type,return-value]
    launch = db.launch("bench")
    assert launch is not None
    poller.poll([launch])  # the first poll has no last states to read
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        poller.poll([launch])
        times.append(time.perf_counter() - t0)
    db.close()
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-sandbox", action="store_true", help="skip the figures that need the sandbox cluster")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the local figures; the best is shown")
    args = parser.parse_args(argv)
    rows = []
    if not args.no_sandbox:
        with tempfile.TemporaryDirectory() as tmp:
            for runs in (1, 60):
                calls, seconds = remote_calls(runs, Path(tmp))
                rows.append((f"remote calls per refresh, {runs} array task(s) on the sandbox", f"{calls:g}"))
                rows.append((f"wall time per refresh, {runs} array task(s) (one SSH round trip)",
                             f"{seconds * 1000:.0f} ms"))
    for tasks in (5000, 50000):
        runs = [parse_render(tasks) for _ in range(max(1, args.repeat))]
        for name in runs[0]:
            best = min(run[name] for run in runs)
            rows.append((f"{name}, {tasks:,} array tasks (recorded output)", f"{best * 1000:.0f} ms"))
    with tempfile.TemporaryDirectory() as tmp:
        for tasks in (5000, 50000):
            seconds = stored_refresh(tasks, Path(tmp))
            rows.append((f"whole refresh but the SSH round trip (parse, merge, state DB), {tasks:,} array tasks",
                         f"{seconds * 1000:.0f} ms"))
    print("| measurement | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
