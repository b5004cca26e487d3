"""``status`` on the sandbox through the real CLI: one launch of a sweep whose runs print and sleep
(tests/integration/data/status_sleep.yml, one task at a time), watched with ``--once --json``, live in tmux
(rows change; sshd stopped mid-way shows the retry, then recovers), ``--wait``, and after the jobs left
squeue, from sacct."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
CLI = str(Path(__file__).parents[2] / ".venv" / "bin" / "atlas-sweeps")


def run_cli(args: list[str], *, state: Path, timeout: float = 120, cwd: Path = DATA) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATLAS_SWEEPS_STATE_DIR": str(state), "NO_COLOR": "1", "COLUMNS": "160"}
    return subprocess.run([CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def unseen_copy(state: Path, to: Path) -> Path:
    """A state directory ``to`` holding a copy of ``state``'s database without the task states any poll saw
    (as in another terminal): the next poll must ask the cluster."""
    to.mkdir()
    shutil.copy(state / "state.db", to / "state.db")
    with sqlite3.connect(to / "state.db") as db:
        db.execute("DELETE FROM task_states")
        db.execute("DELETE FROM launch_polls")
    return to


def tasks_of(doc: dict) -> dict[str, dict]:
    return {t["job_id"]: t for launch in doc["launches"] for s in launch["sweeps"] for t in s["tasks"]}


@pytest.fixture(scope="module")
def launched(sandbox, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One launch shared by the module, with every ``status --once --json`` document seen while it starts."""
    state = tmp_path_factory.mktemp("status-state")
    out = run_cli(["launch", "status_sleep", "--cluster", sandbox.profile, "--nodes", "1", "--json"], state=state)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    job_id = result["sweeps"][0]["jobs"][0]["job_id"]
    docs = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        snap = run_cli(["status", "--once", "--json", "--launch", result["launch"]], state=state)
        assert snap.returncode == 0, snap.stderr
        docs.append(json.loads(snap.stdout))
        states = {t["state"] for d in docs for t in tasks_of(d).values()}
        if {"PENDING", "RUNNING"} <= states and any(t["log_line"] for t in tasks_of(docs[-1]).values()):
            break
        time.sleep(1)
    return {"state": state, "launch": result["launch"], "job_id": job_id, "early": docs, "sandbox": sandbox}


def test_once_json_shows_pending_and_running_tasks_with_log_lines(launched: dict) -> None:
    seen = [tasks_of(d) for d in launched["early"]]
    job = launched["job_id"]
    last = seen[-1]
    assert sorted(last) == [f"{job}_{i}" for i in range(5)]
    running = [t for t in last.values() if t["state"] == "RUNNING"]
    assert len(running) == 1 and running[0]["node"] and running[0]["time_limit"] == 600
    assert running[0]["log_line"].startswith("tick ")
    pending = [t for t in last.values() if t["state"] == "PENDING"]
    assert pending and all(t["reason"] == "JobArrayTaskLimit" for t in pending)  # throttled at 1
    counts = launched["early"][-1]["launches"][0]["sweeps"][0]["counts"]
    assert counts["running"] == 1 and counts["total"] == 5 and launched["early"][-1]["remote_calls"] == 1


def _pane(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout


def _wait_pane(session: str, predicate, *, timeout: float) -> str:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    text = _pane(session)
    while time.monotonic() < deadline:
        text = _pane(session)
        if predicate(text):
            return text
        time.sleep(0.5)
    raise AssertionError(f"pane never matched; last capture:\n{text}")


def _row(text: str, slurm_id: str) -> str:
    return next((line for line in text.splitlines() if line.startswith(slurm_id + " ")), "")


def test_live_table_in_tmux_changes_and_survives_sshd_restart(launched: dict) -> None:
    sandbox = launched["sandbox"]
    session = f"atlas-status-{os.getpid()}"
    env = f"ATLAS_SWEEPS_STATE_DIR={launched['state']} "
    # As a person does it: a terminal with a shell first (a command started with the pane itself can see
    # tmux's initial 80x24 before the pane takes its size), then the command typed into it.
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "40"], check=True)
    try:
        _wait_pane(session, lambda t: t.strip() != "", timeout=10)  # the shell's prompt
        subprocess.run(["tmux", "send-keys", "-t", session, f"{env}{CLI} status --launch {launched['launch']}",
                        "Enter"], check=True)
        first = _wait_pane(session, lambda t: "last refresh" in t, timeout=20)
        job = launched["job_id"]
        rows = {i: _row(first, f"{job}_{i}") for i in range(5)}
        # Rows change as the jobs progress: some task's row (state, elapsed or log line) differs later.
        _wait_pane(session, lambda t: any(_row(t, f"{job}_{i}") != rows[i] for i in range(5)), timeout=30)
        subprocess.run([CLI, "sandbox", "down", "--only", "sshd"], check=True, capture_output=True)
        try:
            broken = _wait_pane(session, lambda t: re.search(r"retry \d+ in \d+ s", t) is not None, timeout=30)
            assert "(stale)" in broken and "last good data" in broken
        finally:
            subprocess.run([CLI, "sandbox", "up"], check=True, capture_output=True)
        recovered = _wait_pane(session, lambda t: "retry" not in t and "last refresh" in t, timeout=90)
        assert f"{job}_0" in recovered
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        del sandbox


def test_wait_blocks_until_done_and_fails_when_a_task_failed(launched: dict) -> None:
    out = run_cli(["status", "--wait", "--timeout", "150", "--json", "--launch", launched["launch"]],
                  state=launched["state"], timeout=200)
    assert out.returncode == 1, out.stderr  # run 4 exits 3
    tasks = tasks_of(json.loads(out.stdout))
    job = launched["job_id"]
    assert [tasks[f"{job}_{i}"]["state"] for i in range(5)] == ["COMPLETED"] * 4 + ["FAILED"]
    assert tasks[f"{job}_4"]["exit_code"] == 3 and tasks[f"{job}_0"]["exit_code"] == 0


def test_after_jobs_leave_squeue_final_states_come_from_sacct(launched: dict, tmp_path: Path) -> None:
    sandbox = launched["sandbox"]
    job = launched["job_id"]
    deadline = time.monotonic() + 150  # MinJobAge, then slurmctld's purge pass
    while time.monotonic() < deadline:
        listed = subprocess.run(sandbox.ssh_argv(f"squeue --array --states=all --noheader -j {job} -O JobID"),
                                capture_output=True, text=True)
        if not listed.stdout.strip():
            break
        time.sleep(5)
    else:
        pytest.fail(f"job {job} stayed in squeue for 150 s")
    # Another terminal with no last-seen states (as after copying the DB elsewhere): only sacct knows.
    fresh = unseen_copy(launched["state"], tmp_path / "state")
    out = run_cli(["status", "--once", "--json", "--launch", launched["launch"]], state=fresh)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    tasks = tasks_of(doc)
    assert {t["source"] for t in tasks.values()} == {"sacct"}
    assert [tasks[f"{job}_{i}"]["state"] for i in range(5)] == ["COMPLETED"] * 4 + ["FAILED"]
    assert tasks[f"{job}_4"]["exit_code"] == 3 and doc["launches"][0]["accounting"] is True
    # ls reads the stored poll without contacting the cluster.
    listed = json.loads(run_cli(["ls", "--json"], state=fresh).stdout)
    assert listed["launches"][0]["counts"]["done"] == 4 and listed["launches"][0]["counts"]["failed"] == 1


def test_status_without_launches_names_the_next_step(tmp_path: Path) -> None:
    out = run_cli(["status", "--once"], state=tmp_path)
    assert out.returncode == 0 and "atlas-sweeps launch" in out.stderr


def test_status_once_does_not_import_wandb(launched: dict) -> None:
    code = ("import sys\nfrom atlas_sweeps.cli import main\nmain(['status', '--once', '--launch', "
            f"{launched['launch']!r}])\nprint('WANDB' if 'wandb' in sys.modules else 'CLEAN')")
    env = {**os.environ, "ATLAS_SWEEPS_STATE_DIR": str(launched["state"])}
    out = subprocess.run([str(Path(CLI).parent / "python"), "-c", code], env=env, cwd=DATA, capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip().endswith("CLEAN"), out.stdout + out.stderr


def _contradictions(doc: dict) -> list[str]:
    """Tasks whose state and exit code disagree (COMPLETED is exit 0; FAILED is a non-zero exit)."""
    return [f"{tid} {t['state']} {t['exit_code']}" for tid, t in tasks_of(doc).items()
            if (t["state"] == "COMPLETED" and t["exit_code"] != 0) or (t["state"] == "FAILED" and t["exit_code"] == 0)]


def test_exit_codes_agree_with_states_in_an_array_whose_first_task_fails(sandbox, tmp_path: Path) -> None:
    """Issue 10: in an array with a failed task, no completed task shows an exit code (squeue's record of
    the array's original job is one of the tasks), in every refresh while it runs and after."""
    shutil.copy(DATA / "status_sleep.py", tmp_path / "status_sleep.py")
    (tmp_path / "mixed.yml").write_text("program: status_sleep.py\nmethod: grid\nparameters:\n"
                                        "  seconds:\n    value: 2\n  run:\n    values: [4, 0, 1, 2]\n")
    state = tmp_path / "state"
    out = run_cli(["launch", "mixed.yml", "--cluster", sandbox.profile, "--nodes", "4", "--json"], state=state,
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    launch_id, job = result["launch"], result["sweeps"][0]["jobs"][0]["job_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        doc = json.loads(run_cli(["status", "--once", "--json", "--launch", launch_id], state=state, cwd=tmp_path).stdout)
        assert not _contradictions(doc), doc
        if doc["launches"][0]["finished"]:
            break
        time.sleep(1)
    tasks = tasks_of(doc)
    assert [(tasks[f"{job}_{i}"]["state"], tasks[f"{job}_{i}"]["exit_code"]) for i in range(4)] == \
        [("FAILED", 3)] + [("COMPLETED", 0)] * 3
    assert {t["source"] for t in tasks.values()} == {"squeue"}  # read while slurmctld still held them


# -- errors retrying cannot fix (issue 9, part 5) ------------------------------------------------------------
@pytest.fixture()
def changed_key(launched: dict, tmp_path: Path) -> dict[str, str]:
    """Environment whose ``sandbox`` profile's known_hosts holds another key for the sandbox's address (as
    after a man-in-the-middle or a reinstall), and a state copy whose tasks were never seen (a poll must
    connect)."""
    sandbox = launched["sandbox"]
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    key_type, key = (tmp_path / "other.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[{sandbox.host}]:{sandbox.port} {key_type} {key}\n")
    clusters = tmp_path / "config" / "atlas-sweeps" / "clusters"
    clusters.mkdir(parents=True)
    profile = sandbox.profiles[sandbox.profile].read_text()
    assert f'known_hosts = "{sandbox.known_hosts}"' in profile
    (clusters / f"{sandbox.profile}.toml").write_text(
        profile.replace(f'known_hosts = "{sandbox.known_hosts}"', f'known_hosts = "{known}"'))
    state = unseen_copy(launched["state"], tmp_path / "state")
    return {"XDG_CONFIG_HOME": str(tmp_path / "config"), "ATLAS_SWEEPS_STATE_DIR": str(state)}


def test_wait_stops_on_a_changed_host_key_with_its_message_and_code(launched: dict, changed_key: dict) -> None:
    env = {**os.environ, **changed_key, "NO_COLOR": "1"}
    out = subprocess.run([CLI, "status", "--wait", "--launch", launched["launch"]], cwd=DATA, env=env,
                         capture_output=True, text=True, timeout=60)  # before: retried forever
    assert out.returncode == 2, out.stderr
    assert "CHANGED" in out.stderr and "man-in-the-middle" in out.stderr and "retrying" not in out.stderr


def test_live_status_stops_on_a_changed_host_key(launched: dict, changed_key: dict) -> None:
    session = f"atlas-status-key-{os.getpid()}"
    env = " ".join(f"{k}={v}" for k, v in changed_key.items())
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "40"], check=True)
    try:
        _wait_pane(session, lambda t: t.strip() != "", timeout=10)
        subprocess.run(["tmux", "send-keys", "-t", session,
                        f"{env} {CLI} status --launch {launched['launch']}; echo EXIT=$?", "Enter"], check=True)
        text = _wait_pane(session, lambda t: re.search(r"^EXIT=\d+", t, re.M) is not None, timeout=30)
        assert re.search(r"^EXIT=2$", text, re.M) and "CHANGED" in text.replace("\n", ""), text
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
