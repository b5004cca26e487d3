"""sbatch templates: the shipped Jinja2 one, the original plain base.sbatch style, and hostile values."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from atlas_sweeps.config.templates import ScriptContext, load_template, render_script
from atlas_sweeps.errors import ConfigError


def _context(**changes: object) -> ScriptContext:
    values: dict[str, object] = dict(
        launch_id="abc123", sweep_name="grid_a-b", backend="local",
        directives=("--partition=debug", "--time=00:10:00"), setup=("source ~/venv/bin/activate",),
        env={"WANDB_TAGS": "a,b", "WANDB_RUN_GROUP": "grid_a-b"}, snapshot="/home/u/atlas/snapshots/abc123",
        run_preamble=("echo pre",), run_command='"${argv[@]}"',
    )
    values.update(changes)
    return ScriptContext(**values)  # type: ignore[arg-type]


def test_default_template_has_directives_setup_before_set_u_then_cd_and_command() -> None:
    text = render_script(load_template(None), _context())
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert "#SBATCH --partition=debug" in lines and "#SBATCH --time=00:10:00" in lines
    assert lines.index("source ~/venv/bin/activate") < lines.index("set -u")
    assert "set -eo pipefail" in lines
    assert "cd /home/u/atlas/snapshots/abc123" in lines
    assert lines[-1] == '"${argv[@]}"'
    assert lines.index("echo pre") == len(lines) - 2


def test_hostile_env_values_are_quoted_and_run_no_code(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    hostile = f"x;touch {canary}; $(touch {canary}) `touch {canary}` 'q\" sp ace"
    text = render_script(load_template(None), _context(env={"WANDB_TAGS": hostile}, setup=(), directives=(),
                                                        snapshot=str(tmp_path), run_preamble=(),
                                                        run_command='printf "%s" "$WANDB_TAGS"'))
    out = subprocess.run(["bash", "-c", text], capture_output=True, text=True, check=True).stdout
    assert out == hostile
    assert not canary.exists()


def test_plain_template_replaces_last_agent_line_keeps_container_prefix(tmp_path: Path) -> None:
    plain = tmp_path / "base.sbatch"
    plain.write_text("#!/bin/bash\n#SBATCH -p gpu\n# wandb agent commented/out\nmodule load x\n"
                     "singularity exec -B /work --nv env.sif \\\n  wandb agent <agent_id>\necho after\n")
    template = load_template(str(plain))
    assert not template.jinja
    text = render_script(template, _context())
    lines = text.splitlines()
    assert "  " + '"${argv[@]}"' in lines  # the agent line, command replaced, indentation kept
    assert "singularity exec -B /work --nv env.sif \\" in lines
    # inserted lines come before the continued container line, not inside it
    assert lines.index("cd /home/u/atlas/snapshots/abc123") < lines.index("singularity exec -B /work --nv env.sif \\")
    assert "export WANDB_TAGS=a,b" in lines
    assert "# wandb agent commented/out" in lines and "echo after" in lines


def test_shipped_base_sbatch_is_the_original_style() -> None:
    template = load_template("base.sbatch")
    text = render_script(template, _context())
    live = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not any("wandb agent" in line for line in live)
    assert live[-1] == '"${argv[@]}"'
    lines = text.splitlines()
    # profile directives first; the template's own come later and so win
    assert lines.index("#SBATCH --partition=debug") < lines.index("#SBATCH -p gpu_long")
    assert "source ~/venv/bin/activate" in lines


def test_plain_template_without_agent_line_is_a_config_error(tmp_path: Path) -> None:
    plain = tmp_path / "x.sbatch"
    plain.write_text("#!/bin/bash\n# wandb agent only in a comment\necho hi\n")
    with pytest.raises(ConfigError, match="no 'wandb agent' line") as info:
        load_template(str(plain))
    assert info.value.exit_code == 2 and str(plain) in str(info.value)


def test_missing_template_names_the_shipped_ones() -> None:
    with pytest.raises(ConfigError, match="default.sbatch.j2"):
        load_template("/nonexistent/tpl.sbatch")


def test_jinja_errors_point_at_the_template_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sbatch.j2"
    bad.write_text("#!/bin/bash\n\n{{ run_command \n")
    with pytest.raises(ConfigError) as info:
        render_script(load_template(str(bad)), _context())
    assert f"{bad}:" in str(info.value)
    unknown = tmp_path / "unknown.sbatch.j2"
    unknown.write_text("#!/bin/bash\n{{ no_such_var }}\n")
    with pytest.raises(ConfigError, match="unknown variable"):
        render_script(load_template(str(unknown)), _context())


HOSTILE = [
    "{{ cycler.__init__.__globals__.os.system('touch CANARY') }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{% set x = env.update({'PATH': 'CANARY'}) %}",  # an immutable sandbox: values cannot be changed either
]


@pytest.mark.parametrize("expression", HOSTILE)
def test_templates_render_in_the_sandbox_and_are_refused_at_load(tmp_path: Path, expression: str) -> None:
    canary = tmp_path / "CANARY"
    template = tmp_path / "evil.sbatch.j2"
    template.write_text("#!/bin/bash\n" + expression.replace("CANARY", str(canary)) + "\n{{ run_command }}\n")
    with pytest.raises(ConfigError, match="refused by Jinja2's sandbox") as info:
        load_template(str(template))
    assert str(info.value).startswith(f"{template}:2: ") and info.value.exit_code == 2
    assert not canary.exists()


def test_a_violation_the_sample_does_not_reach_is_refused_at_render(tmp_path: Path) -> None:
    canary = tmp_path / "CANARY"
    template = tmp_path / "later.sbatch.j2"
    template.write_text("#!/bin/bash\n{% if sweep_name == 'grid_a-b' %}\n"
                        f"{{{{ cycler.__init__.__globals__.os.system('touch {canary}') }}}}\n{{% endif %}}\n")
    loaded = load_template(str(template))  # the sample sweep takes the other branch
    with pytest.raises(ConfigError, match="refused by Jinja2's sandbox") as info:
        render_script(loaded, _context())
    assert str(info.value).startswith(f"{template}:3: ")
    assert not canary.exists()


def test_a_template_failing_on_its_own_is_a_config_error(tmp_path: Path) -> None:
    template = tmp_path / "div.sbatch.j2"
    template.write_text("#!/bin/bash\n{{ (directives | length) // (setup | length - 1) }}\n")
    loaded = load_template(str(template))  # the sample has one setup line too: left to the real render
    with pytest.raises(ConfigError, match="template failed to render: ZeroDivisionError") as info:
        render_script(loaded, _context())
    assert str(info.value).startswith(f"{template}:2: ")
