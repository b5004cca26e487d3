"""The CLI as a user runs it (subprocesses): help, dry runs of the shipped examples, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"


def run_cli(*args: str, cwd: Path = CONFIGS, env: dict[str, str] | None = None,
            python_flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *python_flags, "-m", "atlas_sweeps", *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture()
def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "XDG_", "ATLAS_"))}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), ATLAS_SWEEPS_STATE_DIR=str(tmp_path / "state"),
               HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT), NO_COLOR="1")
    return env


def test_help_lists_commands_and_imports_no_wandb(clean_env: dict[str, str]) -> None:
    result = run_cli("--help", env=clean_env, python_flags=("-X", "importtime"))
    assert result.returncode == 0
    assert "launch" in result.stdout and "sandbox" in result.stdout
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "wandb" not in imported and "paramiko" not in imported and "jinja2" not in imported
    for command in ("launch", "sandbox"):
        sub = run_cli(command, "--help", env=clean_env)
        assert sub.returncode == 0 and "Usage:" in sub.stdout


@pytest.mark.parametrize(("name", "runs"), [("simple_grid", 9), ("simple_grid_plus", 9), ("composite_grid", 6),
                                            ("composite_continued", 3)])
def test_dry_run_of_shipped_examples(name: str, runs: int, clean_env: dict[str, str]) -> None:
    result = run_cli("launch", name, "--dry-run", env=clean_env)
    assert result.returncode == 0, result.stderr
    assert f"num runs: {runs}\n" in result.stdout
    assert f"total gpu hours: {runs}\n" in result.stdout
    assert "no W&B credentials found" in result.stderr
    assert not (Path(clean_env["ATLAS_SWEEPS_STATE_DIR"])).exists()


def test_no_gpus_is_zero_gpu_hours_in_the_launch_summary(clean_env: dict[str, str]) -> None:
    none = run_cli("launch", "simple_grid", "--dry-run", "--gpus", "0", env=clean_env)
    assert none.returncode == 0, none.stderr
    assert "num runs: 9\n" in none.stdout and "total gpu hours: 0\n" in none.stdout and "--gres" not in none.stdout
    two = run_cli("launch", "simple_grid", "--dry-run", "--gpus", "2", env=clean_env)
    assert "total gpu hours: 18\n" in two.stdout and "#SBATCH --gres=gpu:2" in two.stdout


def test_dry_run_json_composite_grid(clean_env: dict[str, str]) -> None:
    result = run_cli("launch", "composite_grid.yml", "--dry-run", "--json", "--nodes", "2", env=clean_env)
    doc = json.loads(result.stdout)
    assert doc["totals"] == {"runs": 6, "gpu_hours": 6}
    assert [s["tags"] for s in doc["sweeps"]] == [["iso_tests", "hp1_iso"], ["iso_tests", "hp2_iso"]]
    for sweep in doc["sweeps"]:
        assert sweep["sweep_config"]["parameters"]["seed"] == {"value": 42}
        assert "#!/bin/bash" in sweep["sbatch_script"]
        assert sweep["sbatch_commands"][0].startswith("sbatch --parsable")
        assert "--array=0-2%2" in sweep["sbatch_commands"][0]


def test_bad_sweep_file_is_one_line_with_file_line_and_exit_2(tmp_path: Path, clean_env: dict[str, str]) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("program: main.py\nmethod: grid\nparameters:\n  lr:\n    values: [1]\n  lr:\n    value: 2\n")
    result = run_cli("launch", str(bad), "--dry-run", env=clean_env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"{bad}:6" in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_file_and_missing_cluster(tmp_path: Path, clean_env: dict[str, str]) -> None:
    result = run_cli("launch", "no_such_sweep", "--dry-run", env=clean_env)
    assert result.returncode == 2 and "not found" in result.stderr
    result = run_cli("launch", "composite_grid", env=clean_env)
    assert result.returncode == 2 and "no cluster profile found" in result.stderr and "sandbox up" in result.stderr
    assert "atlas-sweeps cluster add NAME --host ALIAS" in result.stderr
    assert not Path(clean_env["ATLAS_SWEEPS_STATE_DIR"]).exists()  # nothing recorded for a launch that never began


def test_plain_template_dry_run(tmp_path: Path, clean_env: dict[str, str]) -> None:
    result = run_cli("launch", "composite_grid", "--dry-run", "--template", "base.sbatch", env=clean_env)
    assert result.returncode == 0, result.stderr
    assert "#SBATCH -p gpu_long" in result.stdout
    live = [line for line in result.stdout.splitlines() if not line.lstrip().startswith("#")]
    assert not any("wandb agent" in line for line in live)
    assert '"${argv[@]}" &' in live  # in the background: the batch shell waits, its USR1 trap requeues


def test_dry_run_shows_the_signal_requeue_and_trap_lines(clean_env: dict[str, str]) -> None:
    result = run_cli("launch", "simple_grid", "--dry-run", "--signal-grace", "90", env=clean_env)
    assert result.returncode == 0, result.stderr
    for line in ("#SBATCH --signal=B:USR1@90", "#SBATCH --requeue", "#SBATCH --open-mode=append",
                 "trap atlas_on_usr1 USR1", 'if scontrol requeue "$id"; then exit 0; fi', "atlas_wait"):
        assert line in result.stdout.splitlines() or f"  {line}" in result.stdout.splitlines(), line
    off = run_cli("launch", "simple_grid", "--dry-run", "--no-requeue", env=clean_env)
    assert off.returncode == 0 and "--requeue" not in off.stdout and "atlas_on_usr1" not in off.stdout
    assert '"${argv[@]}"' in off.stdout.splitlines()  # run in the foreground, as before
    bad = run_cli("launch", "simple_grid", "--dry-run", "--signal-grace", "5", env=clean_env)
    assert bad.returncode == 2 and "--signal-grace 5: expected an integer from 10 to 3600" in bad.stderr


def test_launch_from_the_wrong_directory_names_the_program_and_the_fix(clean_env: dict[str, str]) -> None:
    result = run_cli("launch", "configs/composite_grid.yml", "--dry-run", cwd=ROOT, env=clean_env)
    assert result.returncode == 2
    assert "composite_grid.yml:1: program 'main.py' is not in" in result.stderr
    assert "run atlas-sweeps from the directory that holds the program" in result.stderr


def test_top_level_help_and_version_are_clicks_own_without_importing_click(clean_env: dict[str, str]) -> None:
    from atlas_sweeps import __version__
    from atlas_sweeps.cli._commands import HELP_OPTIONS, render_help
    from atlas_sweeps.cli._group import cli

    for width in (50, 78, 120):
        context = click.Context(cli, info_name="atlas-sweeps", terminal_width=width,
                                help_option_names=list(HELP_OPTIONS))
        assert render_help(width=width) == cli.get_help(context) + "\n"
    for columns, width in (("200", 78), ("60", 58), ("30", 50)):
        fast = run_cli("--help", env={**clean_env, "COLUMNS": columns}, python_flags=("-X", "importtime"))
        assert fast.returncode == 0 and fast.stdout == render_help(width=width)
        assert "click" not in {line.split("|")[-1].strip() for line in fast.stderr.splitlines() if "|" in line}
    version = run_cli("--version", env=clean_env)
    assert (version.returncode, version.stdout) == (0, f"atlas-sweeps, version {__version__}\n")
    slow = subprocess.run([sys.executable, "-c", "from atlas_sweeps.cli._group import cli\n"
                           "cli.main(['--version'], prog_name='atlas-sweeps')"], capture_output=True, text=True,
                          env=clean_env)
    assert slow.stdout == version.stdout


def _probe_command() -> click.Command:
    @click.command()
    @click.argument("how")
    def probe(how: str) -> int | None:
        """Answer as asked: return a code, exit with one, or fail."""
        from atlas_sweeps.errors import RemoteError, UsageError

        if how == "return":
            return 3
        if how == "exit":
            sys.exit(4)
        if how == "usage":
            raise UsageError("bad probe", hint="use another")
        if how == "remote":
            raise RemoteError("the cluster went away")
        return None

    return probe


probe = None  # set by the test: the group finds commands as attributes of their module


def test_main_returns_the_commands_code_and_maps_errors_in_one_place(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from atlas_sweeps.cli import main
    from atlas_sweeps.cli._commands import COMMANDS

    monkeypatch.setitem(COMMANDS, "probe", (__name__, "A command for the test."))
    monkeypatch.setattr(sys.modules[__name__], "probe", _probe_command())
    assert [main(["probe", how]) for how in ("return", "exit", "none")] == [3, 4, 0]
    assert main(["probe", "usage"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: bad probe (use another)"
    assert main(["probe", "remote"]) == 1
    assert main(["probe"]) == 2 and "Missing argument" in capsys.readouterr().err
    assert main(["no-such-command"]) == 2
    assert main(["launch", "--help"]) == 0 and "Usage: atlas-sweeps launch" in capsys.readouterr().out


def test_the_session_of_a_local_profile_is_this_machine() -> None:
    from atlas_sweeps.cli._session import remote_factory
    from atlas_sweeps.config.profile import Profile
    from atlas_sweeps.remote import LocalRemote

    remote = remote_factory(accept_new_host_key=False)(Profile(name="here"))
    assert isinstance(remote, LocalRemote) and remote.calls == 0


def test_a_dry_run_renders_every_sweep_and_contacts_nothing(clean_env: dict[str, str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from atlas_sweeps.launch.dry_run import dry_run
    from atlas_sweeps.launch.launcher import LaunchOptions, prepare

    for key, value in clean_env.items():
        monkeypatch.setenv(key, value)
    prepared = prepare(LaunchOptions(config="composite_grid", nodes=2, backend="local"), cwd=CONFIGS, dry_run=True)
    shown = dry_run(prepared)
    assert [s.planned.runs for s in shown.sweeps] == [3, 3]
    assert shown.root.path.endswith("/atlas-sweeps") and shown.root.note
    assert all("/launches/DRYRUN/" in s.script_path for s in shown.sweeps)
    assert all("--array=0-2%2" in s.submissions[0].command() for s in shown.sweeps)


def test_the_text_dry_run_lists_each_runs_command_line_as_a_shell_takes_it(tmp_path: Path,
                                                                           clean_env: dict[str, str]) -> None:
    (tmp_path / "many.yml").write_text("program: train.py\nmethod: grid\nparameters:\n"
                                       "  opt:\n    values: ['adam w', sgd]\n  lr:\n    values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]\n")
    (tmp_path / "train.py").write_text("")
    result = run_cli("launch", "many.yml", "--dry-run", "--backend", "local", cwd=tmp_path, env=clean_env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    runs = lines[lines.index("# runs") + 1:lines.index("# runs") + 22]
    assert runs[0] == " " * 3 + "0  /usr/bin/env python train.py --lr=1 '--opt=adam w'"
    assert runs[19].startswith("  19  ") and runs[20] == "  ... and 2 more (--json lists every run's arguments)"
    assert "runs: 22  jobs: 1  gpu hours: 22" in result.stdout  # the sweep's heading is never cropped
