"""YAML aliases in sweep files: ordinary anchors and merge keys load; an alias bomb ("billion laughs") and an
alias that contains itself are refused at once with file:line, by the loader and by ``launch --dry-run``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from atlas_sweeps.config.yamlfile import MAX_ALIASED_VALUES, loads_yaml
from atlas_sweeps.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def bomb(levels: int = 9) -> str:
    """A sweep file whose description nests 9 aliases of 9 aliases...: ~300 bytes, 9**9 values expanded."""
    items = ['&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    names = "abcdefghijklmnop"
    for prev, name in zip(names, names[1:levels - 1], strict=False):
        items.append(f"&{name} [{','.join([f'*{prev}'] * 9)}]")
    items.append(f"[{','.join([f'*{names[levels - 2]}'] * 9)}]")
    return f"program: main.py\nmethod: grid\ndescription: [{', '.join(items)}]\nparameters:\n  seed:\n    value: 1\n"


def test_an_alias_bomb_is_refused_with_file_and_line() -> None:
    with pytest.raises(ConfigError) as refused:
        loads_yaml(bomb(), path="sweep.yml")
    assert refused.value.path == "sweep.yml" and refused.value.line == 3
    assert "alias bomb" in str(refused.value) and str(refused.value).startswith("sweep.yml:3: ")


def test_launch_dry_run_refuses_a_bomb_in_the_description(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("print('hi')\n")
    (tmp_path / "bomb.yml").write_text(bomb())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "XDG_", "ATLAS_"))}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), ATLAS_SWEEPS_STATE_DIR=str(tmp_path / "state"),
               HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT), NO_COLOR="1")
    done = subprocess.run([sys.executable, "-m", "atlas_sweeps", "launch", "bomb.yml", "--dry-run"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "bomb.yml:3: " in done.stderr and "alias bomb" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""


def test_anchors_merge_keys_and_a_few_reuses_still_load() -> None:
    text = ("defaults: &defaults\n  lr: 0.1\n  layers: [64, 64, 32]\n"
            "a:\n  <<: *defaults\n  lr: 0.2\n"
            "b: {<<: *defaults, seed: 3}\n"
            "c: *defaults\nd: [*defaults, *defaults, *defaults]\n")
    data, lines = loads_yaml(text)
    assert data["a"] == {"lr": 0.2, "layers": [64, 64, 32]}
    assert data["b"] == {"lr": 0.1, "layers": [64, 64, 32], "seed": 3}
    assert data["d"] == [data["defaults"]] * 3 and lines.line("b") == 7


def test_the_bound_is_on_aliased_values_not_on_the_size_of_a_file() -> None:
    big = "values: [" + ", ".join(str(i) for i in range(MAX_ALIASED_VALUES + 10)) + "]\n"
    assert len(loads_yaml(big)[0]["values"]) == MAX_ALIASED_VALUES + 10  # no alias: any size loads
    just_under = f"x: &x [{', '.join(['1'] * 999)}]\ny: [{', '.join(['*x'] * 99)}]\n"
    assert len(loads_yaml(just_under)[0]["y"]) == 99
    over = f"x: &x [{', '.join(['1'] * 999)}]\ny: [{', '.join(['*x'] * 101)}]\n"
    with pytest.raises(ConfigError, match="alias bomb"):
        loads_yaml(over)


@pytest.mark.parametrize("text", ["a: &a [1, *a]\n", "a: &a\n  b: *a\n"])
def test_an_alias_inside_its_own_anchor_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="contains it") as refused:
        loads_yaml(text, path="f.yml")
    assert refused.value.line is not None
