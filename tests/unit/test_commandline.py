"""build_command against wandb 0.31's own agent: the oracle is Agent._command_run, run for real with
only the process start replaced by a recorder (no program is executed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from atlas_sweeps.config.commandline import args_json, build_command
from atlas_sweeps.config.params import expand_runs
from atlas_sweeps.errors import ConfigError


def _sorted(value: Any) -> Any:
    return {k: _sorted(value[k]) for k in sorted(value)} if isinstance(value, dict) else value


def _wandb_args(value: dict[str, Any]) -> dict[str, Any]:
    return {k: {"value": v} for k, v in value.items()}


def wandb_agent_argv(config: dict[str, Any], run: dict[str, Any], tmp_path: Path,
                     monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The argv wandb's Agent builds for `run`, captured where it would start the process."""
    from wandb import wandb_agent

    captured: list[list[str]] = []

    class Recorder:
        def __init__(self, *, command: list[str] | None = None, **_: Any) -> None:
            captured.append(command or [])

    monkeypatch.setattr(wandb_agent, "AgentProcess", Recorder)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SWEEP_ID", "sw1")
    (tmp_path / "wandb" / "sweep-sw1").mkdir(parents=True, exist_ok=True)
    agent = wandb_agent.Agent(api=None, queue=None, sweep_id="sw1")
    command = config.get("command")
    if command and isinstance(command, list):
        agent._sweep_command = list(command)
    # W&B's server sends args sorted by name at every level (as the sweeps engine nests them)
    args = _wandb_args(_sorted(run))
    agent._command_run({"type": "run", "run_id": "r1", "program": config.get("program"), "args": args})
    assert len(captured) == 1
    return captured[0]


CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("default", {"program": "main.py"},
     {"hp1": 1, "seed": 42, "wdb_entity": "socialiq", "tags": "test"}),
    ("types", {"program": "train.py"},
     {"flag": True, "off": False, "lr": 1e-5, "big": 5000.0, "none": None, "s": "a b;$(x)", "lst": [1, "x"]}),
    ("nested", {"program": "train.py"},
     {"lr": 0.1, "optimizer": {"name": "adam", "betas": {"b1": 0.9, "b2": 0.99}}}),
    ("macros", {"program": "train.py", "command": [
        "${env}", "${interpreter}", "-u", "${program}", "${args_no_hyphens}", "--", "${args_no_boolean_flags}",
        "${args_json}", "${args_append_hydra}", "${args_override_hydra}", "${args_no_equals}", "${unknown}"]},
     {"flag": True, "off": False, "n": 3}),
    ("custom", {"command": ["bash", "run.sh", "${args}", 7, "pre${args}post"]}, {"x": "y"}),
]


@pytest.mark.parametrize("label, config, run", CASES, ids=[c[0] for c in CASES])
def test_matches_wandb_agent(label: str, config: dict[str, Any], run: dict[str, Any], tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    expected = wandb_agent_argv(config, run, tmp_path, monkeypatch)
    assert build_command(config, run) == expected


def test_envvar_macros_match_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_DIR", "/data/x")
    monkeypatch.delenv("UNSET_VAR", raising=False)
    config = {"program": "p.py", "command": [
        "${env}", "${interpreter}", "${program}", "--data=${envvar:DATA_DIR}", "${envvar:UNSET_VAR}",
        "${envvar:DATA_DIR}${envvar:DATA_DIR}", "${envvar:lower}", "${args}"]}
    run = {"a": 1}
    expected = wandb_agent_argv(config, run, tmp_path, monkeypatch)
    assert build_command(config, run) == expected
    assert expected[3:6] == ["--data=/data/x", "UNSET_VAR", "/data/x/data/x"]
    assert build_command(config, run, environ={"DATA_DIR": "/other"})[3] == "--data=/other"


def test_args_json_file_matches_wandb_given_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"program": "p.py", "command": ["${env}", "${interpreter}", "${program}", "${args_json_file}"]}
    run = {"a": 1, "b": "two"}
    expected = wandb_agent_argv(config, run, tmp_path, monkeypatch)
    written = Path(expected[-1]).read_text()
    assert build_command(config, run, args_json_file=expected[-1]) == expected
    assert args_json(run) == written
    with pytest.raises(ConfigError, match=r"\$\{args_json_file\}"):
        build_command(config, run)


def test_default_template_for_the_tutorial_example() -> None:
    config = {"program": "main.py", "method": "grid",
              "parameters": {"hp1": {"values": [1, 2, 3]}, "hp2": {"value": 4}, "seed": {"value": 42}}}
    commands = [build_command(config, run) for run in expand_runs(config)]
    assert commands[0] == ["/usr/bin/env", "python", "main.py", "--hp1=1", "--hp2=4", "--seed=42"]
    assert [c[3] for c in commands] == ["--hp1=1", "--hp1=2", "--hp1=3"]


def test_interpreter_and_env_options() -> None:
    config = {"program": "main.py"}
    assert build_command(config, {"a": 1}, interpreter="python3", env=None) == ["python3", "main.py", "--a=1"]
    assert build_command(config, {}, env="/bin/env") == ["/bin/env", "python", "main.py"]


def test_hostile_values_stay_single_argv_items() -> None:
    argv = build_command({"program": "main.py"}, {"x": "$(rm -rf ~); echo 'hi'"})
    assert argv[-1] == "--x=$(rm -rf ~); echo 'hi'"


def test_program_macro_without_program_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no program"):
        build_command({"method": "grid"}, {"a": 1})
