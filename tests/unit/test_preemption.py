"""Preemption-safe jobs: the #SBATCH lines, the profile keys, and the job script's bash run for real (bash in a
temp dir, a stand-in ``scontrol`` on PATH that records its arguments): Slurm's SIGUSR1 reaches the run as its
checkpoint signal, the task requeues itself and leaves no exit code, the bound stops endless loops, and the
exit code is the program's; the restart counts squeue and sacct report reach ``status``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atlas_sweeps.config.profile import SlurmOptions, load_profile
from atlas_sweeps.errors import ConfigError, UsageError
from atlas_sweeps.launch import jobs, preemption
from atlas_sweeps.launch.preemption import Preemption, time_limit_seconds
from atlas_sweeps.slurm.merge import merge_tasks
from atlas_sweeps.slurm.sacct import parse_sacct
from atlas_sweeps.slurm.squeue import parse_squeue
from atlas_sweeps.slurm.task import TaskState
from atlas_sweeps.state.store import StateDB, TaskSeen

# The program a task runs: prints "start", checkpoints on SIGUSR1 ("checkpoint" and exit CODE), else sleeps
# STEPS tenths of a second and prints "done".
PROGRAM = """\
import signal, sys, time
code = int(sys.argv[2])
def on_usr1(signum, frame):
    print("checkpoint", flush=True)
    sys.exit(code)
signal.signal(signal.SIGUSR1, on_usr1)
print("start", flush=True)
for _ in range(int(sys.argv[1])):
    time.sleep(0.1)
print("done", flush=True)
"""


def _script(tmp_path: Path, policy: Preemption, command: str) -> Path:
    """The job script's lines jobs.prepare_sweep renders around the run, as one bash file."""
    (tmp_path / "prog.py").write_text(PROGRAM)
    (tmp_path / "logs").mkdir()
    lines = ["set -eo pipefail", "set -u", *jobs.exit_record(str(tmp_path / "logs")),
             *preemption.trap_lines(policy), preemption.run_lines(policy, command)]
    path = tmp_path / "job.sh"
    path.write_text("\n".join(lines) + "\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/scontrol-calls\n')
    (bin_dir / "scontrol").chmod(0o755)
    return path


def _run(tmp_path: Path, script: Path, *args: str, usr1_after: float | None = None,
         restarts: int = 0) -> tuple[int, str]:
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "SLURM_ARRAY_JOB_ID": "41",
           "SLURM_ARRAY_TASK_ID": "3", "SLURM_RESTART_COUNT": str(restarts)}
    log = tmp_path / "task.log"  # a file, as Slurm's --output: a run the requeue leaves behind holds no pipe open
    with log.open("w") as fh:
        proc = subprocess.Popen(["bash", str(script), *args], env=env, stdout=fh, stderr=subprocess.STDOUT,
                                cwd=tmp_path)
        if usr1_after is not None:
            time.sleep(usr1_after)
            proc.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@grace does: the batch shell only
        proc.wait(timeout=60)
    return proc.returncode, log.read_text()


def _exit_file(tmp_path: Path) -> str | None:
    path = tmp_path / "logs" / "41_3.exit"
    return path.read_text().strip() if path.exists() else None


def _calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "scontrol-calls"
    return path.read_text().splitlines() if path.exists() else []


PY = sys.executable


def test_a_run_without_the_signal_keeps_its_own_exit_code(tmp_path: Path) -> None:
    script = _script(tmp_path, Preemption(grace=15), f"{PY} prog.py 3 0")
    code, out = _run(tmp_path, script)
    assert (code, _exit_file(tmp_path), _calls(tmp_path)) == (0, "0", []) and "done" in out
    script.write_text(script.read_text().replace(f"{PY} prog.py 3 0", f"{PY} -c 'import sys; sys.exit(4)'"))
    code, out = _run(tmp_path, script)
    assert (code, _exit_file(tmp_path)) == (4, "4")


def test_usr1_checkpoints_the_run_then_requeues_the_task_and_leaves_no_exit_code(tmp_path: Path) -> None:
    script = _script(tmp_path, Preemption(grace=15), f"{PY} prog.py 100 0")
    code, out = _run(tmp_path, script, usr1_after=1.0)
    assert "start" in out and "checkpoint" in out and "done" not in out
    assert _calls(tmp_path) == ["requeue 41_3"]  # the array task, not the whole array
    assert "requeueing task 41_3 (requeue 1 of at most 3)" in out
    assert code == 0 and _exit_file(tmp_path) is None  # no final exit code: the restart writes one


def test_after_max_requeues_the_task_fails_with_a_clear_line(tmp_path: Path) -> None:
    script = _script(tmp_path, Preemption(grace=15, max_requeues=2), f"{PY} prog.py 100 7")
    code, out = _run(tmp_path, script, usr1_after=1.0, restarts=2)
    assert _calls(tmp_path) == []
    assert "not requeued: task 41_3 was requeued 2 time(s) already (max_requeues = 2)" in out
    assert (code, _exit_file(tmp_path)) == (7, "7")  # the program's own exit code, not the trap's 138
    script.write_text(script.read_text().replace("prog.py 100 7", "prog.py 100 0"))
    code, _ = _run(tmp_path, script, usr1_after=1.0, restarts=2)
    assert (code, _exit_file(tmp_path)) == (1, "1")  # a checkpointed run that exits 0 did not complete


def test_a_run_that_ignores_the_signal_is_requeued_after_the_bound(tmp_path: Path) -> None:
    policy = Preemption(grace=10)
    script = _script(tmp_path, policy, f"{PY} -c 'import signal, time; signal.signal(signal.SIGUSR1, "
                                       "signal.SIG_IGN); time.sleep(30)'")
    started = time.monotonic()
    code, out = _run(tmp_path, script, usr1_after=1.0)
    assert policy.wait_bound == 5 and 5 <= time.monotonic() - started < 20
    assert "did not exit within 5 s of SIGUSR1" in out and _calls(tmp_path) == ["requeue 41_3"]


def test_the_checkpoint_signal_goes_to_the_runs_process_group(tmp_path: Path) -> None:
    # The run is a shell whose child python is the program: both are in the run's group, the batch shell not.
    script = _script(tmp_path, Preemption(grace=15, signal="TERM"),
                     f"sh -c '{PY} -c \"import time; time.sleep(30)\"; echo child-ended-$?'")
    code, out = _run(tmp_path, script, usr1_after=1.0)
    assert "SIGTERM to the run" in out and _calls(tmp_path) == ["requeue 41_3"]
    assert "child-ended" not in out  # sh got the TERM too, not only its child


def test_a_signal_before_the_run_starts_requeues_at_once(tmp_path: Path) -> None:
    script = _script(tmp_path, Preemption(grace=15), f"{PY} prog.py 3 0")
    script.write_text(script.read_text().replace("set -m\n", "sleep 3\nset -m\n"))
    code, out = _run(tmp_path, script, usr1_after=1.0)
    assert "start" not in out and _calls(tmp_path) == ["requeue 41_3"] and code == 0


def test_directives_and_when_the_signal_is_left_out() -> None:
    assert Preemption().directives() == ("--signal=B:USR1@60", "--requeue", "--open-mode=append")
    assert Preemption.of(SlurmOptions(time="2", signal_grace=30)).directives()[0] == "--signal=B:USR1@30"
    # a one-minute job would be signalled as it starts and loop: requeue stays, the signal goes
    assert Preemption.of(SlurmOptions(time="00:01:00")).directives() == ("--requeue", "--open-mode=append")
    assert Preemption.of(SlurmOptions(requeue=False)).directives() == ()
    assert preemption.trap_lines(Preemption(requeue=False)) == ()
    assert preemption.run_lines(Preemption(requeue=False), "cmd") == "cmd"


@pytest.mark.parametrize(("text", "seconds"), [
    ("2", 120), ("10:30", 630), ("1:00:00", 3600), ("2-0", 172800), ("1-02:03", 93780), ("1-0:0:5", 86405),
    ("UNLIMITED", None), ("x", None),
])
def test_sbatch_time_limits_in_seconds(text: str, seconds: int | None) -> None:
    assert time_limit_seconds(text) == seconds


def test_run_ids_are_stable_and_wandb_safe() -> None:
    assert preemption.run_id("k3x9", "grid_a-b") == "k3x9-grid_a-b"
    odd = preemption.run_id("k3x9", "a.b c")
    assert odd.startswith("k3x9-a_b_c-") and odd != preemption.run_id("k3x9", "a_b_c")
    line = preemption.run_identity_lines("k3x9-s")[0]
    out = subprocess.run(["bash", "-c", f'task=4; SLURM_RESTART_COUNT=2; {line}; echo "$ATLAS_RUN_ID $WANDB_RESUME '
                          '$ATLAS_RESTARTS"'], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["k3x9-s-4", "allow", "2"]


def _profile_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    clusters = tmp_path / "cfg" / "atlas-sweeps" / "clusters"
    clusters.mkdir(parents=True)
    (clusters / "a.toml").write_text(text)
    return tmp_path


def test_profile_keys_are_checked_with_file_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _profile_dirs(tmp_path, monkeypatch, '[slurm]\nrequeue = true\nsignal_grace = 30\n'
                                                   'checkpoint_signal = "TERM"\nmax_requeues = 5\n')
    slurm = load_profile("a", project_dir=project).slurm
    assert Preemption.of(slurm) == Preemption(grace=30, signal="TERM", max_requeues=5)
    (tmp_path / "cfg" / "atlas-sweeps" / "clusters" / "a.toml").write_text('[slurm]\n\ncheckpoint_signal = "KILL"\n')
    with pytest.raises(ConfigError, match="expected one of USR1, USR2, TERM, INT") as err:
        load_profile("a", project_dir=project)
    assert str(err.value.line) == "3"
    (tmp_path / "cfg" / "atlas-sweeps" / "clusters" / "a.toml").write_text("[slurm]\n")
    with pytest.raises(UsageError, match="--signal-grace 1: expected an integer from 10 to 3600"):
        load_profile("a", project_dir=project).with_overrides(slurm_signal_grace=1)


def test_restart_counts_from_squeue_and_sacct_reach_the_merged_state(tmp_path: Path) -> None:
    (live,) = parse_squeue("50|0|51|RUNNING|None|vm|0:05|10:00|x|N/A|2|0\n", job_ids=["50"])
    assert live.restarts == 2
    # sacct --duplicates: the earlier attempts are REQUEUED records; the last record wins and counts them
    acct = parse_sacct("50_0|51|REQUEUED|0:0|00:00:18|00:10:00|x|y|vm|None\n"
                       "50_0|51|REQUEUED|0:0|00:00:20|00:10:00|x|y|vm|None\n"
                       "50_0|51|COMPLETED|0:0|00:00:23|00:10:00|x|y|vm|None\n", job_ids=["50"])
    assert [(t.state, t.restarts) for t in acct] == [("COMPLETED", 2)]
    # without accounting the count seen in squeue stays once the task left it
    merged = merge_tasks(arrays={"50": 1}, squeue=[], sacct=[], last_seen=[live], exit_codes={("50", 0): 0})
    assert (merged[("50", 0)].state, merged[("50", 0)].restarts) == ("COMPLETED", 2)
    store = StateDB(tmp_path / "state.db")
    store.record_task_states([TaskSeen.of(live, launch_id="l")])
    assert [t.restarts for t in store.task_states("l")] == [2]
    assert TaskState("1", 0, "PENDING").restarts == 0
