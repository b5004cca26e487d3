"""A cloned repository is untrusted: its project file and templates, driven through the real CLI (subprocesses,
dry runs and launches at an address where nothing listens, so "nothing was contacted" is observable)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOSTILE_TEMPLATE = "#!/bin/bash\n{{{{ cycler.__init__.__globals__.os.system('touch {canary}') }}}}\n{{{{ run_command }}}}\n"


class Checkout:
    """A cloned repository (the shipped examples) with the user's own profile 'hpc' beside it."""

    def __init__(self, tmp: Path) -> None:
        self.project = tmp / "repo"
        shutil.copytree(ROOT / "configs", self.project, ignore=shutil.ignore_patterns("__pycache__"))
        self.profile = tmp / "config" / "atlas-sweeps" / "clusters" / "hpc.toml"
        self.profile.parent.mkdir(parents=True)
        # Nothing listens on port 1: a launch that tried to connect would fail with exit code 1.
        self.profile.write_text('host = "127.0.0.1"\nport = 1\nbackend = "local"\n[slurm]\npartition = "cpu"\n')
        self.state = tmp / "state"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "XDG_", "ATLAS_"))}
        self.env.update(XDG_CONFIG_HOME=str(tmp / "config"), ATLAS_SWEEPS_STATE_DIR=str(self.state),
                        HOME=str(tmp / "home"), PYTHONPATH=str(ROOT), NO_COLOR="1", COLUMNS="200")

    def project_file(self, text: str) -> Path:
        path = self.project / "atlas-sweeps.toml"
        path.write_text(text)
        return path

    def launch(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "atlas_sweeps", "launch", "composite_grid", *args],
                              cwd=self.project, env={**self.env, **(env or {})}, capture_output=True, text=True,
                              timeout=120)


@pytest.fixture()
def checkout(tmp_path: Path) -> Checkout:
    return Checkout(tmp_path)


@pytest.mark.parametrize("dry_run", [True, False])
def test_hostile_template_in_the_repository_runs_nothing(checkout: Checkout, tmp_path: Path, dry_run: bool) -> None:
    canary = tmp_path / "CANARY"
    template = checkout.project / "job.sbatch.j2"
    template.write_text(HOSTILE_TEMPLATE.format(canary=canary))
    checkout.project_file('[clusters.hpc]\ntemplate = "job.sbatch.j2"\n')
    result = checkout.launch(*(["--dry-run"] if dry_run else []))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"error: {template}:2: template refused by Jinja2's sandbox" in result.stderr
    assert not canary.exists()
    assert not checkout.state.exists()  # refused before anything was recorded or contacted


@pytest.mark.parametrize(("line", "key", "dry_run"), [
    ('[clusters.hpc.wandb]\nbase_url = "http://collector.example.org"', "wandb.base_url", False),
    ('[clusters.hpc]\nknown_hosts = "known_hosts"', "known_hosts", True),
    ('[clusters.hpc]\nhost = "x$(id)"', "host", False),
])
def test_project_file_setting_a_connection_key_is_refused_with_file_line(checkout: Checkout, line: str, key: str,
                                                                         dry_run: bool) -> None:
    path = checkout.project_file(f"# shipped with the repository\n{line}\n")
    result = checkout.launch(*(["--dry-run"] if dry_run else []))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"error: {path}:3: cluster 'hpc': a project file may not set {key}")
    assert f"in your own profile {checkout.profile}" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and not checkout.state.exists()


def test_job_options_from_the_project_file_are_used_and_named(checkout: Checkout) -> None:
    path = checkout.project_file('[clusters.hpc]\nsetup = ["module load cuda"]\n[clusters.hpc.slurm]\n'
                                 'partition = "gpu"\n')
    result = checkout.launch("--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    assert f"note: the project file {path} sets setup, slurm.partition for cluster 'hpc'" in result.stderr
    script = json.loads(result.stdout)["sweeps"][0]["sbatch_script"].splitlines()
    assert "#SBATCH --partition=gpu" in script and "module load cuda" in script


def test_plain_http_w_and_b_server_is_refused_before_any_key_is_read(checkout: Checkout) -> None:
    result = checkout.launch("--dry-run", "--backend", "wandb",
                             env={"WANDB_BASE_URL": "http://wandb.example.org", "WANDB_API_KEY": "k" * 40})
    assert result.returncode == 2
    assert result.stderr.startswith("error: refusing W&B server http://wandb.example.org (WANDB_BASE_URL): "
                                    "plain http to wandb.example.org would send the W&B API key unencrypted")
    assert "k" * 40 not in result.stderr + result.stdout


@pytest.mark.parametrize("args", [("--test-time", "nan"), ("--test-time", "inf"), ("--test-time", "-1"),
                                  ("--test-time", "0"), ("--partition", "gpu\n#SBATCH --wrap=id"),
                                  ("--time", "soon")])
def test_bad_option_values_are_one_line_usage_errors(checkout: Checkout, args: tuple[str, str]) -> None:
    result = checkout.launch("--dry-run", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"error: {args[0]} ") and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr
