"""``launch --dry-run`` shows the scripts as they would run: remote paths absolute (a quoted ``~`` is never
expanded, by bash or Slurm), with a note, in text and JSON, when the login node's home is only guessed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from atlas_sweeps.launch.layout import LaunchLayout, resolve_root

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "XDG_", "ATLAS_"))}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), ATLAS_SWEEPS_STATE_DIR=str(tmp_path / "state"),
               HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT), NO_COLOR="1", USER="bob", LOGNAME="bob")
    return env


def profile(env: dict[str, str], name: str, text: str) -> None:
    clusters = Path(env["XDG_CONFIG_HOME"]) / "atlas-sweeps" / "clusters"
    clusters.mkdir(parents=True, exist_ok=True)
    (clusters / f"{name}.toml").write_text(text)


def dry_run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "atlas_sweeps", "launch", "composite_grid", "--dry-run", *args],
                          cwd=CONFIGS, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def test_scripts_of_a_login_node_profile_have_absolute_paths_and_the_note_says_the_home_is_a_guess(
        env: dict[str, str]) -> None:
    profile(env, "hpc", 'host = "login.example.org"\nuser = "alice"\nremote_dir = "~/sweeps"\n')
    text = dry_run(env, "--cluster", "hpc").stdout
    assert "'~" not in text and "~/sweeps/" not in text
    assert "cd /home/alice/sweeps/snapshots/DRYRUN" in text
    assert "WANDB_DIR=/home/alice/sweeps/wandb/DRYRUN/" in text
    assert "note: remote_dir ~/sweeps is shown under /home/alice" in text and "resolved there at launch" in text
    doc = json.loads(dry_run(env, "--cluster", "hpc", "--json").stdout)
    assert doc["remote_root"] == "/home/alice/sweeps" and "resolved there at launch" in doc["remote_root_note"]
    for sweep in doc["sweeps"]:
        assert "'~" not in sweep["sbatch_script"] and "~/" not in sweep["sbatch_script"]
        assert sweep["sbatch_script_path"].startswith("/home/alice/sweeps/launches/DRYRUN/")
        assert all("~" not in part for part in sweep["sbatch_commands"])


def test_without_a_profile_the_home_is_the_user_ssh_would_log_in_as(env: dict[str, str]) -> None:
    doc = json.loads(dry_run(env, "--json").stdout)
    assert doc["remote_root"] == "/home/bob/atlas-sweeps" and doc["remote_root_note"]
    assert all("'~" not in s["sbatch_script"] for s in doc["sweeps"])


def test_a_local_profile_or_an_absolute_remote_dir_is_shown_exactly_without_a_note(env: dict[str, str]) -> None:
    profile(env, "here", 'host = "local"\n')
    doc = json.loads(dry_run(env, "--cluster", "here", "--json").stdout)
    assert doc["remote_root"] == f"{env['HOME']}/atlas-sweeps" and doc["remote_root_note"] is None
    profile(env, "abs", 'host = "login.example.org"\nremote_dir = "/scratch/alice/sw"\n')
    done = dry_run(env, "--cluster", "abs")
    assert "cd /scratch/alice/sw/snapshots/DRYRUN" in done.stdout and "note:" not in done.stdout


@pytest.mark.parametrize(("remote_dir", "root"), [("~", "/h/u"), ("~/a b", "/h/u/a b"), ("rel/x", "/h/u/rel/x"),
                                                  ("/abs/x", "/abs/x")])
def test_remote_dir_resolves_as_the_preflight_does(remote_dir: str, root: str) -> None:
    assert resolve_root(remote_dir, home="/h/u") == root


def test_a_layout_refuses_a_root_that_is_not_absolute() -> None:
    with pytest.raises(ValueError, match="not absolute"):
        LaunchLayout(root="~/atlas-sweeps", launch_id="x")
