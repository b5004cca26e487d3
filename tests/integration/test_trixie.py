"""The tool on the second sandbox, unlike the first: Debian 13 in a chroot with Slurm 24.11 and no accounting
(no slurmdbd, ``sacct`` says accounting is disabled), OpenSSH 10, rsync 3.5 and ``python3`` but no ``python``.
Launch, status (the hand-over from squeue to the last states seen), tail, cancel and resume through the real
CLI, then the sandbox's own ``up``/``down`` (the chroot is reused; ``down`` leaves no mounts).

Every test here runs on the trixie sandbox: each says so in its report (conftest's ``_says_which_sandbox``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.integration.conftest import SandboxCluster
from tests.integration.test_launch import CLI, Workspace, make_workspace, records_from_logs, shlex_quote
from tests.integration.test_status import DATA, tasks_of

ROOT = Path(__file__).resolve().parents[2]
RECORDER = "import sys\n\nimport main\n\nmain._record(sys.argv[1:])  # the example's record line, without W&B\n"


@pytest.fixture(scope="module")
def facts(sandbox_trixie: SandboxCluster) -> dict[str, str]:
    """What the login node runs, asked over SSH once: Slurm, rsync, OpenSSH and Python versions."""
    out = subprocess.run(sandbox_trixie.ssh_argv(
        "squeue --version; rsync --version | head -1; /usr/sbin/sshd -V 2>&1 | head -1; python3 -V; "
        "command -v python || echo no-python; sacct -X -n 2>&1 | head -1"), capture_output=True, text=True,
        timeout=60, check=True).stdout.splitlines()
    return dict(zip(("slurm", "rsync", "openssh", "python3", "python", "sacct"), out, strict=True))


@pytest.fixture(scope="module")
def ws(sandbox_trixie: SandboxCluster, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A project with the example's sweeps; its program records its arguments but needs no wandb (the
    chroot has none), and the status tests' sleeper, shortened."""
    w = make_workspace(tmp_path_factory.mktemp("trixie"), sandbox_trixie)
    (w.project / "record_args.py").write_text(RECORDER)
    grid = (w.project / "composite_grid.yml").read_text()
    (w.project / "grid.yml").write_text(grid.replace("program: main.py", "program: record_args.py"))
    shutil.copy(DATA / "status_sleep.py", w.project / "status_sleep.py")
    (w.project / "sleepy.yml").write_text("program: status_sleep.py\nmethod: grid\nparameters:\n"
                                          "  seconds:\n    value: 4\n  run:\n    values: [0, 1, 2, 3, 4]\n")
    (w.project / "slow.yml").write_text("program: status_sleep.py\nmethod: grid\nparameters:\n"
                                        "  seconds:\n    value: 300\n  run:\n    values: [0, 1, 2]\n")
    return w


@pytest.fixture(scope="module")
def sleepy(ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Five runs of ~4 s at once (run 4 exits 3), shared by the tail and status tests; ``early`` is a second
    terminal whose state DB last saw them running (a copy taken then), as a laptop closed mid-run; ``early_wait``
    another such."""
    doc = ws.launch_json("sleepy", "--cluster", ws.sandbox.profile, "--nodes", "5")
    launch, job = doc["launch"], doc["sweeps"][0]["jobs"][0]["job_id"]
    deadline = time.monotonic() + 30
    while "RUNNING" not in {t["state"] for t in tasks_of(status_json(ws, "--once", "--launch", launch)).values()}:
        assert time.monotonic() < deadline, "no task of the sleepy sweep started in 30 s"
        time.sleep(0.5)
    terminals = {}
    for name in ("early", "early_wait"):  # two such terminals: each test polls with its own
        early_dir = tmp_path_factory.mktemp(f"trixie-{name}-state")
        shutil.copy(Path(ws.env["ATLAS_SWEEPS_STATE_DIR"]) / "state.db", early_dir / "state.db")
        terminals[name] = replace(ws, env={**ws.env, "ATLAS_SWEEPS_STATE_DIR": str(early_dir)})
    return {"launch": launch, "job": job, **terminals}


def status_json(ws: Workspace, *args: str, check_code: int | None = 0, timeout: float = 60) -> dict:
    out = ws.cli("status", "--json", *args, check=False, timeout=timeout)
    if check_code is not None:
        assert out.returncode == check_code, out.stderr
    return json.loads(out.stdout)


def in_squeue(ws: Workspace, job: str) -> bool:
    """True while squeue (all states) still lists any task of ``job``; a forgotten job id is an error there."""
    out = subprocess.run(ws.sandbox.ssh_argv(f"squeue --array --states=all --noheader -j {job} -O JobID"),
                         capture_output=True, text=True, timeout=60)
    return bool(out.stdout.strip())


# --- the cluster is the other one ---------------------------------------------------------------------------

def test_trixie_login_node_is_unlike_the_first_sandbox(facts: dict[str, str]) -> None:
    assert facts["slurm"].startswith("slurm-wlm 24.11"), facts
    assert facts["rsync"].startswith("rsync  version 3.5"), facts
    assert facts["openssh"].startswith("OpenSSH_10"), facts
    assert facts["python3"].startswith("Python 3.13") and facts["python"] == "no-python", facts
    assert "accounting storage is disabled" in facts["sacct"], facts


# --- tail and status (no accounting) ---------------------------------------------------------------------------

def test_trixie_tail_follows_a_running_task_as_it_writes(ws: Workspace, sleepy: dict) -> None:
    # `timeout` bounds the whole follow; the run itself takes ~4 s
    with subprocess.Popen(["timeout", "90", *CLI, "tail", f"{sleepy['job']}_1", "-n", "100"], cwd=ws.project,
                          env=ws.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        arrivals = [(time.monotonic(), line.rstrip("\n")) for line in proc.stdout]
        end = time.monotonic()
        assert proc.wait() == 0, proc.stderr.read()
    lines = [text for _, text in arrivals]
    assert lines[0] == "tick 0 run=1" and lines[-1] == "finished run=1", lines
    # followed as written (the run takes ~4 s), not read once at the end (trixie's awk is mawk, which reads a
    # pipe in blocks unless told otherwise)
    assert end - arrivals[0][0] > 2


def test_trixie_tail_exits_with_the_task_exit_code(ws: Workspace, sleepy: dict) -> None:
    done = ws.cli("tail", f"{sleepy['job']}_0", "-n", "100", check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "tick 0 run=0" and done.stdout.splitlines()[-1] == "finished run=0"
    failed = ws.cli("tail", f"{sleepy['job']}_4", "-n", "1", check=False, timeout=120)
    assert failed.returncode == 3, failed.stderr
    assert failed.stdout.splitlines()[-1] == "finished run=4" and "FAILED" in failed.stderr


def test_trixie_status_wait_ends_with_final_states_and_exit_codes(ws: Workspace, sleepy: dict) -> None:
    doc = status_json(ws, "--wait", "--timeout", "120", "--launch", sleepy["launch"], check_code=1, timeout=180)
    tasks = tasks_of(doc)
    job = sleepy["job"]
    assert [tasks[f"{job}_{i}"]["state"] for i in range(5)] == ["COMPLETED"] * 4 + ["FAILED"], tasks
    # squeue 24.11 prints exit codes as "exit:signal" (22.05 printed a raw wait status)
    assert [tasks[f"{job}_{i}"]["exit_code"] for i in range(5)] == [0, 0, 0, 0, 3], tasks


# --- launch, cancel, resume ---------------------------------------------------------------------------------------

def test_trixie_launch_runs_every_point_with_its_arguments(ws: Workspace) -> None:
    plan = json.loads(ws.cli("launch", "grid", "--nodes", "2", "--cluster", ws.sandbox.profile, "--dry-run",
                             "--json").stdout)
    result = ws.launch_json("grid", "--nodes", "2", "--cluster", ws.sandbox.profile)
    assert result["status"] == "submitted"
    doc = status_json(ws, "--wait", "--timeout", "120", "--launch", result["launch"], timeout=180)
    assert {t["state"] for t in tasks_of(doc).values()} == {"COMPLETED"} and len(tasks_of(doc)) == 6
    for planned, sweep in zip(plan["sweeps"], result["sweeps"], strict=True):
        [job] = sweep["jobs"]
        logs = [job["output"].replace("%A", job["job_id"]).replace("%a", str(t)) for t in range(3)]
        records = records_from_logs(ws, logs)
        assert planned["run_args"][0][:3] == ["/usr/bin/env", "python3", "record_args.py"]  # no `python` here
        assert sorted(r["argv"] for r in records) == sorted(run[3:] for run in planned["run_args"])
        assert {r["WANDB_TAGS"] for r in records} == {",".join(sweep["tags"])}
        assert {r["cwd"] for r in records} == {result["snapshot"]}


def test_trixie_cancel_leaves_no_job_in_squeue_and_status_says_cancelled(ws: Workspace) -> None:
    result = ws.launch_json("slow", "--cluster", ws.sandbox.profile, "--nodes", "3")
    launch_id, job = result["launch"], result["sweeps"][0]["jobs"][0]["job_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # cancel runs that run, not only queued ones
        if {t["state"] for t in tasks_of(status_json(ws, "--once", "--launch", launch_id)).values()} == {"RUNNING"}:
            break
        time.sleep(1)
    done = ws.cli("cancel", launch_id, "--yes")
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        active = subprocess.run(ws.sandbox.ssh_argv(f"squeue --array --noheader -j {job} -O JobArrayID,State"),
                                capture_output=True, text=True, timeout=60).stdout
        if not active.strip():
            break
        time.sleep(1)
    assert not active.strip(), active
    assert {t["state"] for t in tasks_of(status_json(ws, "--once", "--launch", launch_id)).values()} == {"CANCELLED"}


def test_trixie_failed_submission_then_resume_submits_nothing_twice(ws: Workspace) -> None:
    home = ws.ssh("echo $HOME").strip()
    wrapper = (
        "#!/bin/bash\n"
        'case " $* " in *" --test-only "*) exec /usr/bin/sbatch "$@" ;; esac\n'
        f"n=$(cat {home}/testbin/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > {home}/testbin/count\n"
        f'if [ "$n" = 2 ]; then echo "sbatch: error: injected failure" >&2; exit 1; fi\n'
        'exec /usr/bin/sbatch "$@"\n'
    )
    ws.ssh(f"mkdir -p ~/testbin && rm -f ~/testbin/count && printf %s {shlex_quote(wrapper)} > ~/testbin/sbatch"
           " && chmod +x ~/testbin/sbatch && sed -i '1i export PATH=$HOME/testbin:$PATH # atlas-test' ~/.bashrc")
    try:
        failed = ws.cli("launch", "grid", "--cluster", ws.sandbox.profile, check=False)
    finally:
        ws.ssh("sed -i '/# atlas-test$/d' ~/.bashrc; rm -rf ~/testbin")
    assert failed.returncode == 1 and "injected failure" in failed.stderr, failed.stderr
    launch_id = re.search(r"launch (\w+) is incomplete", failed.stderr).group(1)
    db = sqlite3.connect(Path(ws.env["ATLAS_SWEEPS_STATE_DIR"]) / "state.db")
    assert db.execute("SELECT status FROM launches WHERE id = ?", (launch_id,)).fetchone() == ("partial",)
    # Without accounting the tool cannot prove the failed sweep's array was never submitted (squeue forgets
    # finished arrays after MinJobAge): it refuses, submits nothing, and names the flag that overrides it.
    unsure = ws.cli("launch", "--resume", launch_id, check=False)
    assert unsure.returncode != 0 and "--force-resubmit-unknown" in unsure.stderr, unsure.stderr
    assert "accounting storage is disabled" in unsure.stderr
    assert db.execute("SELECT count(*) FROM jobs WHERE launch_id = ?", (launch_id,)).fetchone() == (1,)
    resumed = ws.launch_json("--resume", launch_id, "--force-resubmit-unknown")
    assert resumed["status"] == "submitted"
    jobs = {j["job_name"]: j for s in resumed["sweeps"] for j in s["jobs"]}
    assert len(jobs) == 2
    doc = status_json(ws, "--wait", "--timeout", "120", "--launch", launch_id, timeout=180)
    assert len(tasks_of(doc)) == 6 and {t["state"] for t in tasks_of(doc).values()} == {"COMPLETED"}
    # Without accounting Slurm soon forgets finished jobs; the log files stay: one job id per sweep wrote them.
    for job in jobs.values():
        log_dir = str(Path(job["output"]).parent)
        writers = set(ws.ssh(f"cd {shlex_quote(log_dir)} && ls").split())
        assert {name.split("_", 1)[0] for name in writers} == {job["job_id"]}, writers


def test_trixie_after_jobs_leave_squeue_status_keeps_last_states_and_says_so(ws: Workspace, sleepy: dict) -> None:
    deadline = time.monotonic() + 150  # MinJobAge (10 s), then slurmctld's purge pass
    while in_squeue(ws, sleepy["job"]):
        if time.monotonic() > deadline:
            pytest.fail(f"job {sleepy['job']} stayed in squeue for 150 s")
        time.sleep(3)
    job = sleepy["job"]
    # The terminal that watched the runs end keeps their final states and exit codes.
    doc = status_json(ws, "--once", "--launch", sleepy["launch"])
    tasks = tasks_of(doc)
    assert [tasks[f"{job}_{i}"]["state"] for i in range(5)] == ["COMPLETED"] * 4 + ["FAILED"], tasks
    assert tasks[f"{job}_4"]["exit_code"] == 3 and doc["launches"][0]["accounting"] is False
    # The one that last saw them running learns how they ended from the exit codes their scripts wrote
    # (there is no sacct to ask), with the same states and codes.
    doc = status_json(sleepy["early"], "--once", "--launch", sleepy["launch"])
    tasks = tasks_of(doc)
    assert doc["launches"][0]["accounting"] is False
    assert [(tasks[f"{job}_{i}"]["state"], tasks[f"{job}_{i}"]["exit_code"], tasks[f"{job}_{i}"]["source"])
            for i in range(5)] == [("COMPLETED", 0, "exit-file")] * 4 + [("FAILED", 3, "exit-file")], tasks


def test_trixie_status_wait_ends_when_tasks_last_seen_running_left_squeue(sleepy: dict) -> None:
    """Before: a task last seen RUNNING counted as running after it left squeue, so --wait ran to --timeout."""
    early = sleepy["early_wait"]  # last saw the tasks running; the previous test saw the job leave squeue
    waited = early.cli("status", "--wait", "--timeout", "20", "--launch", sleepy["launch"], check=False, timeout=60)
    assert "timed out" not in (waited.stdout + waited.stderr).lower(), waited.stdout + waited.stderr
    assert waited.returncode == 1, waited.stdout + waited.stderr  # one run failed: --wait says so


# --- the sandbox itself -----------------------------------------------------------------------------------------

def _sandbox(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "atlas_sweeps", "sandbox", *args, "--release", "trixie"],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _mounts_under(root: Path) -> list[str]:
    return [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(f"{root}/")]


@pytest.fixture
def chroot_root(sandbox_trixie: SandboxCluster) -> Iterator[Path]:
    yield sandbox_trixie.dir / "root"
    _sandbox("up")  # whatever happened, leave the sandbox up for whoever runs next


def test_trixie_sandbox_up_reuses_the_chroot_and_down_leaves_no_mounts(sandbox_trixie: SandboxCluster,
                                                                        chroot_root: Path) -> None:
    marker = sandbox_trixie.dir / "root.built"
    built_at = marker.stat().st_mtime
    t0 = time.monotonic()
    warm = _sandbox("up")
    assert warm.returncode == 0, warm.stderr
    assert time.monotonic() - t0 < 15 and "debootstrap" not in warm.stderr and "starting" not in warm.stderr
    for _ in range(2):  # repeated down/up: never stacked mounts, never a rebuild
        down = _sandbox("down")
        assert down.returncode == 0, down.stderr
        assert _mounts_under(chroot_root) == []
        assert _processes_in(chroot_root) == []
        status = _sandbox("status", "--json")
        assert status.returncode == 1 and json.loads(status.stdout)["ok"] is False
        again = _sandbox("up")
        assert again.returncode == 0, again.stderr
        assert sorted(_mounts_under(chroot_root)) == sorted(f"{chroot_root}/{m}" for m in ("proc", "sys", "dev",
                                                                                             "dev/pts"))
    assert marker.stat().st_mtime == built_at  # the same chroot throughout
    ok = subprocess.run(sandbox_trixie.ssh_argv("sinfo -h -o %T"), capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout.strip() == "idle", ok.stdout + ok.stderr


def _processes_in(root: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and Path(os.readlink(proc / "root")) == root:
                found.append(int(proc.name))
        except OSError:
            continue
    return found
