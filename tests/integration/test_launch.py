"""``atlas-sweeps launch`` for real: the CLI as a subprocess, the sandbox cluster over SSH as its unprivileged
user, real rsync and Slurm. One launch of configs/composite_grid.yml is shared by the assertions on it."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import SandboxCluster

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "atlas_sweeps"]


@dataclass
class Workspace:
    """A user's project directory, config dir and state dir, isolated from the machine's."""

    project: Path
    env: dict[str, str]
    sandbox: SandboxCluster

    def cli(self, *args: str, check: bool = True, timeout: float = 180,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*CLI, *args], cwd=cwd or self.project, env=self.env, capture_output=True,
                                text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"atlas-sweeps {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def launch_json(self, *args: str) -> dict:
        return json.loads(self.cli("launch", *args, "--json").stdout)

    def ssh(self, command: str) -> str:
        return subprocess.run(self.sandbox.ssh_argv(command), capture_output=True, text=True, check=True,
                              timeout=60).stdout

    def add_profile(self, name: str, text: str) -> None:
        (Path(self.env["XDG_CONFIG_HOME"]) / "atlas-sweeps" / "clusters" / f"{name}.toml").write_text(text)


def make_workspace(tmp: Path, sandbox: SandboxCluster) -> Workspace:
    project = tmp / "project"
    shutil.copytree(ROOT / "configs", project, ignore=shutil.ignore_patterns("__pycache__"))
    clusters = tmp / "config" / "atlas-sweeps" / "clusters"
    clusters.mkdir(parents=True)
    for name, path in sandbox.profiles.items():
        shutil.copy(path, clusters / f"{name}.toml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "XDG_", "ATLAS_"))}
    env.update(XDG_CONFIG_HOME=str(tmp / "config"), ATLAS_SWEEPS_STATE_DIR=str(tmp / "state"),
               PYTHONPATH=str(ROOT), NO_COLOR="1", COLUMNS="200")
    return Workspace(project=project, env=env, sandbox=sandbox)


def wait_for_tasks(ws: Workspace, job_ids: list[str], count: int, *, timeout: float = 180) -> dict[str, str]:
    """Poll sacct until ``count`` array tasks of ``job_ids`` have a final state; returns task id -> state."""
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        out = ws.ssh(f"sacct -X -n -P -o JobID,State -j {','.join(job_ids)}")
        states = dict(line.split("|", 1) for line in out.split() if "|" in line)
        finished = {k: v for k, v in states.items() if not re.search(r"PENDING|RUNNING|\[", v + k)}
        if len(finished) >= count:
            return finished
        time.sleep(2)
    raise AssertionError(f"tasks did not finish in {timeout} s: {states}")


def records_from_logs(ws: Workspace, paths: list[str]) -> list[dict]:
    out = ws.ssh("cat " + " ".join(paths))
    return [json.loads(line.split(" ", 1)[1]) for line in out.splitlines() if line.startswith("ATLAS_EXAMPLE_RECORD ")]


def arrays_on_cluster(ws: Workspace, launch_id: str) -> dict[str, str]:
    """Job name -> array job id of every array of ``launch_id`` that Slurm knows; fails on duplicates."""
    # squeue knows fresh jobs before slurmdbd has them; sacct knows finished ones: ask both
    out = ws.ssh("squeue -h -t all -o '%F|%j'; sacct -X -n -P -o JobID,JobName -S now-1hour")
    found: dict[str, set[str]] = {}
    for line in out.splitlines():
        job_id, _, name = line.partition("|")
        if name.startswith(f"atlas-{launch_id}-"):
            found.setdefault(name, set()).add(job_id.split("_", 1)[0])
    assert all(len(ids) == 1 for ids in found.values()), found
    return {name: ids.pop() for name, ids in found.items()}


@pytest.fixture(scope="module")
def workspace(sandbox: SandboxCluster, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_workspace(tmp_path_factory.mktemp("launch"), sandbox)


@pytest.fixture(scope="module")
def grid_launch(workspace: Workspace) -> tuple[dict, dict]:
    """composite_grid.yml launched with --nodes 2; returns (dry-run document, launch document)."""
    plan = json.loads(workspace.cli("launch", "composite_grid.yml", "--nodes", "2", "--cluster", "sandbox",
                                    "--dry-run", "--json").stdout)
    result = workspace.launch_json("composite_grid.yml", "--nodes", "2", "--cluster", "sandbox")
    return plan, result


def test_composite_grid_runs_every_point_with_its_parameters_and_tags(workspace: Workspace,
                                                                      grid_launch: tuple[dict, dict]) -> None:
    plan, result = grid_launch
    assert result["status"] == "submitted"
    assert [s["tags"] for s in result["sweeps"]] == [["iso_tests", "hp1_iso"], ["iso_tests", "hp2_iso"]]
    jobs = [job for s in result["sweeps"] for job in s["jobs"]]
    assert len(jobs) == 2 and all(job["array"] == "0-2%2" for job in jobs)
    states = wait_for_tasks(workspace, [j["job_id"] for j in jobs], 6)
    assert len(states) == 6 and set(states.values()) == {"COMPLETED"}, states
    for planned, sweep in zip(plan["sweeps"], result["sweeps"], strict=True):
        [job] = sweep["jobs"]
        logs = [job["output"].replace("%A", job["job_id"]).replace("%a", str(t)) for t in range(3)]
        records = records_from_logs(workspace, logs)
        assert len(records) == 3
        expected = sorted(run[3:] for run in planned["run_args"])  # after /usr/bin/env python main.py
        assert sorted(r["argv"] for r in records) == expected
        for record in records:
            assert record["WANDB_TAGS"] == ",".join(sweep["tags"])
            assert record["WANDB_RUN_GROUP"] == sweep["name"]
            assert record["WANDB_MODE"] == "offline"
            assert record["cwd"] == result["snapshot"]


def test_launch_is_recorded_with_git_state_and_one_submit_call(workspace: Workspace,
                                                                grid_launch: tuple[dict, dict]) -> None:
    _, result = grid_launch
    db = sqlite3.connect(Path(workspace.env["ATLAS_SWEEPS_STATE_DIR"]) / "state.db")
    (status, snapshot), = db.execute("SELECT status, snapshot FROM launches WHERE id = ?", (result["launch"],))
    assert status == "submitted" and snapshot == result["snapshot"]
    ids = sorted(r[0] for r in db.execute("SELECT job_id FROM jobs WHERE launch_id = ?", (result["launch"],)))
    assert ids == sorted(j["job_id"] for s in result["sweeps"] for j in s["jobs"])
    assert result["git"] == {"commit": None, "branch": None, "dirty": None}  # the copy is not a git repo
    # preflight (prepares the snapshot) + rsync + submit (freezes it first): fixed, whatever the number of jobs
    assert result["remote_calls"] == 3


def test_second_launch_transfers_only_the_changed_file(workspace: Workspace,
                                                       grid_launch: tuple[dict, dict]) -> None:
    _, first = grid_launch
    main = workspace.project / "main.py"
    main.write_text(main.read_text() + "\n# a one-line change\n")
    second = workspace.launch_json("composite_continued", "--cluster", "sandbox")
    assert second["snapshot_files_transferred"] == 1
    out = workspace.ssh(f"stat -c %i {first['snapshot']}/simple_grid.yml {second['snapshot']}/simple_grid.yml "
                        f"{first['snapshot']}/main.py {second['snapshot']}/main.py")
    same_a, same_b, changed_a, changed_b = out.split()
    assert same_a == same_b and changed_a != changed_b
    # the earlier snapshot is untouched: its jobs keep the code they were launched with
    assert "a one-line change" not in workspace.ssh(f"cat {first['snapshot']}/main.py")
    assert "a one-line change" in workspace.ssh(f"cat {second['snapshot']}/main.py")


def test_hostile_tags_and_values_arrive_verbatim_and_run_no_code(workspace: Workspace) -> None:
    canary = f"/tmp/atlas-canary-{os.getpid()}"
    evil = [f"a;touch {canary}", f"$(touch {canary})", f"`touch {canary}`", "it's \"quoted\"", " two  spaces "]
    tag = f"x;touch {canary} $(touch {canary}) 'q\""
    (workspace.project / "hostile.yml").write_text(json.dumps({
        "program": "main.py", "method": "grid",
        "parameters": {"hp3": {"values": evil}, "subtests": {f"{tag},plain": {"hp1": 1}}},
    }))
    result = workspace.launch_json("hostile", "--cluster", "sandbox", "--nodes", "5")
    [sweep] = result["sweeps"]
    assert sweep["tags"] == [tag, "plain"]
    [job] = sweep["jobs"]
    wait_for_tasks(workspace, [job["job_id"]], len(evil))
    logs = [job["output"].replace("%A", job["job_id"]).replace("%a", str(t)) for t in range(len(evil))]
    records = records_from_logs(workspace, logs)
    assert sorted(r["argv"][r["argv"].index("--hp1=1") + 1] for r in records) == sorted(f"--hp3={v}" for v in evil)
    assert {r["WANDB_TAGS"] for r in records} == {f"{tag},plain"}
    assert "MISSING" in workspace.ssh(f"test -e {canary} && echo PRESENT || echo MISSING")
    assert not Path(canary).exists()


def test_failed_submission_is_recorded_and_resume_finishes_without_duplicates(workspace: Workspace) -> None:
    home = workspace.ssh("echo $HOME").strip()
    wrapper = (
        "#!/bin/bash\n"
        'case " $* " in *" --test-only "*) exec /usr/bin/sbatch "$@" ;; esac\n'
        f"n=$(cat {home}/testbin/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > {home}/testbin/count\n"
        f'if [ -e {home}/testbin/ARMED ] && [ "$n" = 2 ]; then echo "sbatch: error: injected failure" >&2; exit 1; fi\n'
        'exec /usr/bin/sbatch "$@"\n'
    )
    workspace.ssh(f"mkdir -p ~/testbin && rm -f ~/testbin/count && printf %s {shlex_quote(wrapper)} > ~/testbin/sbatch"
                  " && chmod +x ~/testbin/sbatch && touch ~/testbin/ARMED"
                  " && sed -i '1i export PATH=$HOME/testbin:$PATH # atlas-test' ~/.bashrc")
    try:
        failed = workspace.cli("launch", "composite_grid", "--cluster", "sandbox", check=False)
    finally:
        workspace.ssh("sed -i '/# atlas-test$/d' ~/.bashrc; rm -rf ~/testbin")
    assert failed.returncode == 1, failed.stderr
    assert "injected failure" in failed.stderr and "--resume" in failed.stderr
    launch_id = re.search(r"launch (\w+) is incomplete", failed.stderr).group(1)
    db = sqlite3.connect(Path(workspace.env["ATLAS_SWEEPS_STATE_DIR"]) / "state.db")
    assert db.execute("SELECT status FROM launches WHERE id = ?", (launch_id,)).fetchone() == ("partial",)
    assert db.execute("SELECT count(*) FROM jobs WHERE launch_id = ?", (launch_id,)).fetchone() == (1,)
    resumed = workspace.launch_json("--resume", launch_id)
    assert resumed["status"] == "submitted"
    job_ids = [j["job_id"] for s in resumed["sweeps"] for j in s["jobs"]]
    assert len(job_ids) == 2
    assert arrays_on_cluster(workspace, launch_id) == {j["job_name"]: j["job_id"] for s in resumed["sweeps"]
                                                      for j in s["jobs"]}  # nothing submitted twice
    wait_for_tasks(workspace, job_ids, 6)


def test_resume_adopts_jobs_whose_answer_was_lost(workspace: Workspace) -> None:
    result = workspace.launch_json("composite_continued", "--cluster", "sandbox")
    launch_id = result["launch"]
    [job] = result["sweeps"][0]["jobs"]
    db_path = Path(workspace.env["ATLAS_SWEEPS_STATE_DIR"]) / "state.db"
    with sqlite3.connect(db_path) as db:  # as if the connection died after sbatch answered
        db.execute("DELETE FROM jobs WHERE launch_id = ?", (launch_id,))
        db.execute("UPDATE launches SET status = 'partial' WHERE id = ?", (launch_id,))
    resumed = workspace.launch_json("--resume", launch_id)
    assert [j["job_id"] for j in resumed["sweeps"][0]["jobs"]] == [job["job_id"]]
    assert arrays_on_cluster(workspace, launch_id) == {job["job_name"]: job["job_id"]}


def test_preflight_problems_stop_the_launch_before_anything_exists(workspace: Workspace) -> None:
    base = (workspace.sandbox.profiles["sandbox"]).read_text()
    workspace.add_profile("badpart", base.replace('partition = "debug"', 'partition = "nosuchpart"'))
    result = workspace.cli("launch", "composite_grid", "--cluster", "badpart", check=False)
    assert result.returncode == 2, result.stderr
    assert "sbatch --test-only rejected" in result.stderr and "nothing was created" in result.stderr
    workspace.add_profile("nopython", base.replace('interpreter = "python"', 'interpreter = "python-nope"'))
    result = workspace.cli("launch", "composite_grid", "--cluster", "nopython", check=False)
    assert result.returncode == 2 and "'python-nope' is not found" in result.stderr
    db = sqlite3.connect(Path(workspace.env["ATLAS_SWEEPS_STATE_DIR"]) / "state.db")
    clusters = {row[0] for row in db.execute("SELECT cluster FROM launches")}
    assert "badpart" not in clusters and "nopython" not in clusters


def test_unknown_and_changed_host_keys_are_refused(workspace: Workspace, tmp_path: Path) -> None:
    base = workspace.sandbox.profiles["sandbox"].read_text()
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    workspace.add_profile("unknownkey", re.sub(r'known_hosts = ".*"', f'known_hosts = "{empty}"', base))
    result = workspace.cli("launch", "composite_grid", "--cluster", "unknownkey", check=False)
    assert result.returncode == 2 and "--accept-new-host-key" in result.stderr, result.stderr
    other = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    assert other.returncode == 0
    fake = (tmp_path / "k.pub").read_text().split()
    changed = tmp_path / "changed_known_hosts"
    changed.write_text(f"[127.0.0.1]:{workspace.sandbox.port} {fake[0]} {fake[1]}\n")
    workspace.add_profile("changedkey", re.sub(r'known_hosts = ".*"', f'known_hosts = "{changed}"', base))
    result = workspace.cli("launch", "composite_grid", "--cluster", "changedkey", "--accept-new-host-key",
                           check=False)
    assert result.returncode == 2 and "changed" in result.stderr.lower(), result.stderr
    assert empty.read_text() == ""


def test_two_factor_login_authenticates_once_per_launch(workspace: Workspace) -> None:
    import pexpect

    sandbox = workspace.sandbox
    before = sandbox.sshd_log.read_text().count(f"Accepted password for {sandbox.user_2fa}")
    child = pexpect.spawn(CLI[0], [*CLI[1:], "launch", "composite_continued", "--cluster", sandbox.profile_2fa,
                                   "--json"], cwd=str(workspace.project), env=workspace.env, encoding="utf-8",
                          timeout=120)
    child.expect("(?i)password")
    child.sendline(sandbox.password_2fa)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    time.sleep(0.5)
    log = sandbox.sshd_log.read_text()
    assert log.count(f"Accepted password for {sandbox.user_2fa}") - before == 1


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)
