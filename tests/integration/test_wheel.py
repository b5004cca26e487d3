"""What pipx, `uv tool install` and `pip install atlas-sweeps` do: build the wheel, install it into a fresh
venv, and run the CLI from there (never from this checkout): a dry run of every example in configs/, then
one real launch on the sandbox that finishes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import SandboxCluster
from tests.integration.test_launch import make_workspace, wait_for_tasks

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed_cli(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``atlas-sweeps`` entry point of the wheel, installed into a fresh venv."""
    tmp = tmp_path_factory.mktemp("wheel")
    pip_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp / "dist")],
                   check=True, capture_output=True, env=pip_env)
    [wheel] = (tmp / "dist").glob("atlas_sweeps-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True)
    subprocess.run([str(tmp / "venv" / "bin" / "pip"), "install", "-q", "-c", str(ROOT / "constraints.txt"),
                    str(wheel)], check=True, capture_output=True, env=pip_env)
    return tmp / "venv" / "bin" / "atlas-sweeps"


def test_the_installed_wheel_dry_runs_every_example_and_launches_on_the_sandbox(
        installed_cli: Path, sandbox: SandboxCluster, tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, sandbox)
    del ws.env["PYTHONPATH"]  # the installed package only: this checkout must not be importable
    where = subprocess.run([str(installed_cli.parent / "python"), "-c",
                            "import atlas_sweeps, sys; print(atlas_sweeps.__file__)"],
                           cwd=ws.project, env=ws.env, capture_output=True, text=True, check=True).stdout
    assert str(installed_cli.parents[1]) in where and str(ROOT) not in where

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(installed_cli), *args], cwd=ws.project, env=ws.env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, f"atlas-sweeps {' '.join(args)}: {done.stderr}"
        return done

    examples = sorted(p.stem for p in (ROOT / "configs").glob("*.yml"))
    assert examples
    for name in examples:
        plan = json.loads(cli("launch", name, "--cluster", "sandbox", "--dry-run", "--json").stdout)
        assert plan["sweeps"] and all("#SBATCH" in s["sbatch_script"] for s in plan["sweeps"]), name
    text = cli("launch", "composite_grid", "--cluster", "sandbox", "--dry-run").stdout
    assert "atlas-sweeps" in text and "main.py" in text
    shutil.copy(ROOT / "atlas_sweeps" / "sbatch_templates" / "base.sbatch", ws.project / "mine.sbatch")
    plain = json.loads(cli("launch", "simple_grid", "--cluster", "sandbox", "--dry-run", "--json",
                           "--template", "mine.sbatch").stdout)
    for sweep in plain["sweeps"]:  # the shipped plain template's agent line became the run command
        commands = [line for line in sweep["sbatch_script"].splitlines() if not line.lstrip().startswith("#")]
        assert not any("wandb agent" in line for line in commands) and "mkdir -p logs" in commands
    result = json.loads(cli("launch", "simple_grid", "--cluster", "sandbox", "--json").stdout)
    jobs = [job["job_id"] for sweep in result["sweeps"] for job in sweep["jobs"]]
    states = wait_for_tasks(ws, jobs, result["totals"]["runs"])
    assert set(states.values()) == {"COMPLETED"}, states
    cli("status", "--once")
