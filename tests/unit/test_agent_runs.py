"""The run each W&B agent task is on: the wrapper the job puts first on PATH writes it as a run starts, the one
poll reads it with the exit codes, and the status row shows its id and the parameters the sweep searches."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from atlas_sweeps.backends.wandb.backend import WRAPPER_SOURCE
from atlas_sweeps.slurm.task import TaskState
from atlas_sweeps.state.store import JobRecord, LaunchRecord, SweepRecord
from atlas_sweeps.status.agent_runs import AgentRun, parse_agent_runs
from atlas_sweeps.status.model import build_launch_status
from atlas_sweeps.status.poll import ArrayQuery, parse_poll, poll_script
from atlas_sweeps.status.run_params import searched_keys


def _run_wrapper(tmp_path: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    (tmp_path / "train.py").write_text(f"import sys\nprint('args', sys.argv[1:])\nsys.exit({code})\n")
    wrapper = tmp_path / "python"
    wrapper.write_text(f"#!{sys.executable}\n{WRAPPER_SOURCE}")
    wrapper.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "ATLAS_REAL_PYTHON": sys.executable, "WANDB_RUN_ID": "r9x2",
           "ATLAS_EXIT_LOG": str(tmp_path / "exit-codes"), "ATLAS_RUN_FILE": str(tmp_path / "logs" / "7_1.run")}
    return subprocess.run([str(wrapper), str(tmp_path / "train.py"), *args], env=env, capture_output=True,
                          text=True, timeout=30)


def test_the_wrapper_records_the_run_and_its_arguments_and_keeps_the_exit_code(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    done = _run_wrapper(tmp_path, "--lr=0.001", "--opt=adam w", "--layers=[1, 2]", "--verbose", code=3)
    assert done.returncode == 3 and "args" in done.stdout
    assert (tmp_path / "exit-codes").read_text() == "r9x2 3\n"
    text = (tmp_path / "logs" / "7_1.run").read_text()
    assert parse_agent_runs(f"logs/7_1.run:{text}", job_id="7") == {
        ("7", 1): AgentRun(run_id="r9x2", params={"lr": 0.001, "opt": "adam w", "layers": [1, 2]})}


def test_the_wrapper_still_runs_the_program_when_it_cannot_write_the_run_file(tmp_path: Path) -> None:
    done = _run_wrapper(tmp_path, "--lr=1")  # no logs/ directory
    assert done.returncode == 0 and (tmp_path / "exit-codes").read_text() == "r9x2 0\n"


def test_one_poll_reads_the_run_each_agent_is_on_and_the_row_shows_it(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "7_0.run").write_text('a1b2 {"lr": 0.1, "seed": 42}\n')
    (logs / "7_0.exit").write_text("0\n")
    (logs / "8_0.run").write_text("other array\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "squeue").write_text("#!/bin/bash\necho '7|1|9|RUNNING|None|vm|0:10|10:00|2026-01-01T00:00:00|N/A|0'\n")
    (bindir / "squeue").chmod(0o755)
    query = ArrayQuery(job_id="7", job_name="atlas-l-s", task_count=2, output=f"{logs}/%A_%a.out", submitted=1.0)
    out = subprocess.run(["bash", "-s"], input=poll_script([query]), capture_output=True, text=True, check=True,
                         env={"PATH": f"{bindir}:/usr/bin:/bin"}).stdout
    result = parse_poll(out, job_ids=["7"])
    assert result.exit_codes == {("7", 0): 0}
    assert result.agent_runs == {("7", 0): AgentRun(run_id="a1b2", params={"lr": 0.1, "seed": 42})}

    config = {"method": "grid", "parameters": {"lr": {"values": [0.1, 0.01]}, "seed": {"value": 42}}}
    launch = LaunchRecord(id="l", created=1.0, config_path="c.yml", config_text="", cluster="c", backend="wandb",
                          nodes=2, remote_dir="/r", snapshot="/s", status="submitted", total_runs=2, total_hours=1.0)
    sweep = SweepRecord(launch_id="l", name="s", tags=(), runs=2, jobs=2, config=config, log_dir=str(logs),
                        sweep_id="e/p/sw")
    job = JobRecord(launch_id="l", sweep_name="s", chunk=0, job_id="7", job_name="atlas-l-s", array_spec="0-1",
                    task_offset=0, task_count=2, output=query.output, error="", script="", submitted=1.0)
    states = {("7", t): TaskState(job_id="7", task=t, state=s) for t, s in ((0, "COMPLETED"), (1, "RUNNING"))}
    status = build_launch_status(launch, [sweep], [job], states=states, log_lines={}, polled=2.0, accounting=True,
                                 agent_runs=result.agent_runs)
    first, second = status.sweeps[0].tasks
    assert (first.label, first.params) == ("a1b2: lr=0.1", {"lr": 0.1, "seed": 42})
    assert (second.label, second.params) == ("", None)  # its agent has not started a run yet


def test_the_parameters_a_sweep_searches_are_its_lists_ranges_and_distributions() -> None:
    config = {"parameters": {"a": {"values": [1, 2]}, "b": {"values": [3]}, "c": {"value": 1},
                             "d": {"min": 0.0, "max": 1.0}, "e": {"distribution": "log_uniform_values"}}}
    assert searched_keys(config) == ("a", "d", "e")
    assert searched_keys({}) == ()
