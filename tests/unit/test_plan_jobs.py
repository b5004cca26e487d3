"""The plan and the job scripts built from it: counts, estimates, and every run's exact argv reaching the
program through the NUL-separated argument files, read back by bash as a job would."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from atlas_sweeps.backends import make_backend
from atlas_sweeps.backends.local import LocalBackend, encode_argv
from atlas_sweeps.config.composite import load_composite
from atlas_sweeps.config.profile import Profile, SlurmOptions
from atlas_sweeps.config.templates import load_template
from atlas_sweeps.errors import UsageError
from atlas_sweeps.launch.jobs import prepare_sweep
from atlas_sweeps.launch.layout import LaunchLayout
from atlas_sweeps.launch.plan import build_plan

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_composite_grid_plan_counts_and_estimate() -> None:
    plan = build_plan(load_composite(CONFIGS / "composite_grid.yml"), backend="local", expand=True, nodes=8, test_time=2.0,
                      gpus_per_job=2)
    assert [s.runs for s in plan.sweeps] == [3, 3]
    assert [s.jobs for s in plan.sweeps] == [3, 3]  # never more concurrent jobs than runs
    assert plan.total_runs == 6 and plan.total_hours == 24
    argv = plan.sweeps[0].run_argv
    assert argv[0][:3] == ("/usr/bin/env", "python", "main.py")
    assert {a for run in argv for a in run if a.startswith("--hp1=")} == {"--hp1=1", "--hp1=2", "--hp1=3"}
    assert all("--seed=42" in run for run in argv)


def test_bad_nodes_and_test_time() -> None:
    composite = load_composite(CONFIGS / "simple_grid.yml")
    with pytest.raises(UsageError):
        build_plan(composite, backend="local", expand=True, nodes=0, test_time=1, gpus_per_job=1)
    with pytest.raises(UsageError):
        build_plan(composite, backend="local", expand=True, nodes=1, test_time=0, gpus_per_job=1)


def test_hostile_values_reach_the_program_verbatim_through_args_files(tmp_path: Path) -> None:
    sweep_file = tmp_path / "hostile.yml"
    canary = tmp_path / "canary"
    sweep_file.write_text(
        "program: prog.py\nmethod: grid\nparameters:\n"
        f"  evil:\n    values: ['a;touch {canary}', '$(touch {canary})', \"it's \\\"q\\\" x\", ' sp  ace ']\n"
        "  subtests:\n"
        f"    'x;touch {canary},$(id)':\n      n: 1\n")
    composite = load_composite(sweep_file)
    plan = build_plan(composite, backend="local", expand=True, nodes=2, test_time=1, gpus_per_job=1)
    sweep = plan.sweeps[0]
    assert ";" not in sweep.name and "$" not in sweep.name and " " not in sweep.name
    layout = LaunchLayout(root=str(tmp_path / "remote"), launch_id="l1")
    prepared = prepare_sweep(sweep, LocalBackend().create(sweep, launch_id="l1", entity=None, project="p"),
                             backend=LocalBackend(), profile=Profile(name="t"), layout=layout,
                             template=load_template(None), launch_id="l1", project="p", entity=None,
                             max_array_size=1001)
    for path, data in prepared.files.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    (tmp_path / "remote" / "snapshots" / "l1").mkdir(parents=True)
    # Run each task's script with the program replaced by printf, as Slurm would (one task id at a time).
    script = prepared.script_text.replace('\n"${argv[@]}"', "\nprintf '%s\\n' \"${argv[@]}\"; echo \"TAGS=$WANDB_TAGS\"")
    seen = []
    for task in range(sweep.runs):
        out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True,
                             env={"SLURM_ARRAY_TASK_ID": str(task), "PATH": "/usr/bin:/bin"}).stdout
        seen.append(out)
        assert out.splitlines()[:-1] == list(sweep.run_argv[task])
        assert out.splitlines()[-1] == f"TAGS=x;touch {canary},$(id)"
    assert not canary.exists()
    assert len(set(seen)) == 4


def test_encode_argv_rejects_nul() -> None:
    assert encode_argv(("a", "b c")) == b"a\0b c\0"
    with pytest.raises(ValueError):
        encode_argv(("a\0b",))


def test_job_env_offline_unless_online_and_no_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "local-secret-key-" + "x" * 30)
    composite = load_composite(CONFIGS / "composite_grid.yml")
    plan = build_plan(composite, backend="local", expand=True, nodes=2, test_time=1, gpus_per_job=1)
    layout = LaunchLayout(root="/r", launch_id="l2")
    for online in (False, True):
        profile = Profile(name="t", wandb_online=online, slurm=SlurmOptions(time="0:10:00"))
        backend = make_backend("local", profile=profile)  # set up from the profile, as a launch does
        prepared = prepare_sweep(plan.sweeps[0], backend.create(plan.sweeps[0], launch_id="l2",
                                 entity="lab", project="proj"), backend=backend, profile=profile,
                                 layout=layout, template=load_template(None), launch_id="l2", project="proj",
                                 entity="lab", max_array_size=1001)
        text = prepared.script_text
        assert ("export WANDB_MODE=offline" in text) is not online
        assert "export WANDB_TAGS=iso_tests,hp1_iso" in text and "export WANDB_ENTITY=lab" in text
        assert "local-secret-key" not in text
        assert "#SBATCH --time=0:10:00" in text
        [sub] = prepared.submissions
        assert sub.job_name == "atlas-l2-composite_grid_iso_tests-hp1_iso"
        assert sub.output == "/r/logs/l2/composite_grid_iso_tests-hp1_iso/%A_%a.out"


def test_envvar_and_args_json_file_resolve_on_the_compute_node(tmp_path: Path) -> None:
    sweep_file = tmp_path / "cmd.yml"
    sweep_file.write_text(
        "program: prog.py\nmethod: grid\nparameters:\n  lr: {values: [0.1, 0.2]}\n"
        "command: ['${env}', '${interpreter}', '${program}', '--cfg', '${args_json_file}', "
        "'--home=${envvar:NODE_HOME}', '${envvar:NOT_SET_X}']\n")
    plan = build_plan(load_composite(sweep_file), backend="local", expand=True, nodes=1, test_time=1, gpus_per_job=1)
    sweep = plan.sweeps[0]
    layout = LaunchLayout(root=str(tmp_path / "remote"), launch_id="l3")
    backend = LocalBackend()
    prepared = prepare_sweep(sweep, backend.create(sweep, launch_id="l3", entity=None, project="p"), backend=backend,
                             profile=Profile(name="t"), layout=layout, template=load_template(None), launch_id="l3",
                             project="p", entity=None, max_array_size=1001)
    for path, data in prepared.files.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    (tmp_path / "remote" / "snapshots" / "l3").mkdir(parents=True)
    script = prepared.script_text.replace('\n"${argv[@]}"', "\nprintf '%s\\n' \"${argv[@]}\"")
    node_home = "/scratch/a b&c $(x)"
    for task, lr in enumerate((0.1, 0.2)):
        out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True,
                             env={"SLURM_ARRAY_TASK_ID": str(task), "PATH": "/usr/bin:/bin",
                                  "NODE_HOME": node_home}).stdout.splitlines()
        json_file = f"{layout.args_dir(sweep.name)}/{task}.json"
        assert out == ["/usr/bin/env", "python", "prog.py", "--cfg", json_file, f"--home={node_home}", "NOT_SET_X"]
        assert json.loads(Path(json_file).read_text()) == {"lr": lr}


@pytest.mark.parametrize(("finish", "program_exit", "recorded"), [
    ("", 0, 0), ("", 3, 3),
    ('atlas_finish() { [ "$1" -eq 0 ] && return 7; return "$1"; }', 0, 7),  # the backend may change it
])
def test_a_jobs_script_writes_its_exit_code_as_it_exits(tmp_path: Path, finish: str, program_exit: int,
                                                          recorded: int) -> None:
    from atlas_sweeps.launch.jobs import exit_record

    log_dir = tmp_path / "logs $(touch pwned)"
    log_dir.mkdir()
    script = "\n".join(["set -eo pipefail", "set -u", *exit_record(str(log_dir), finish=finish),
                        f"python3 -c 'import sys; sys.exit({program_exit})'", "echo never-after-a-failure"])
    env = {"PATH": "/usr/bin:/bin", "SLURM_ARRAY_JOB_ID": "41", "SLURM_ARRAY_TASK_ID": "2"}
    (log_dir / "41_2.exit").write_text("stale\n")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=30)
    assert out.returncode == recorded
    assert (log_dir / "41_2.exit").read_text() == f"{recorded}\n" and not (tmp_path / "pwned").exists()
